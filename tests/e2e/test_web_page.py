"""The dashboard page in headless Chromium: served by uvicorn, pick a product, the SVG chart is drawn."""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from test_api import enriched_stack  # noqa: E402

from api.report import CHROMIUM_ARGS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _served(settings, api_key: str | None = None):
    import uvicorn

    from api.app import create_app

    port = _free_port()
    app = create_app(settings, api_key=api_key)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def settings(spark, moto_server, tmp_path_factory):
    return enriched_stack(spark, moto_server, tmp_path_factory.mktemp("web") / "root", "web")


@pytest.fixture(scope="module")
def base_url(settings):
    with _served(settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page (its own storage) and the script errors it raised, which every test expects to be none."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == []


def test_pick_an_item_and_see_band_line_and_outliers(base_url, page):
    page.goto(base_url + "/")
    page.wait_for_selector("#item option[value='A']", state="attached")
    page.wait_for_selector("#overview table")
    assert "quantity_spike" in page.inner_text("#overview")
    page.select_option("#item", "A")
    page.wait_for_selector("#chart[data-item='A']")
    assert page.locator("#chart polygon.band").count() == 1
    assert page.locator("#chart polyline.p50").count() == 1
    assert page.locator("#chart polyline.hist").count() == 1
    assert page.locator("#chart circle.outlier").count() == 3  # o1, o2, o3 of item A
    points = page.get_attribute("#chart polyline.p50", "points")
    assert len(points.split()) == 2  # two forecast periods
    assert "snacks" in page.inner_text("#meta") and page.inner_text("#err") == ""


def test_a_keyed_api_asks_for_the_key_and_keeps_it_out_of_the_url(settings, page):
    with _served(settings, api_key="s3cret") as url:
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(url + "/")
        page.wait_for_selector("#login", state="visible")  # the first call answered 401
        page.fill("#key", "s3cret")
        page.click("#login button")
        page.wait_for_selector("#item option[value='A']", state="attached")
        assert page.is_hidden("#login")
        page.goto(url + "/#key=s3cret")  # a link with the key in the fragment
        page.wait_for_selector("#item option[value='A']", state="attached")
        assert "s3cret" not in page.url
        assert not any("s3cret" in r for r in requests)  # never in a URL the browser asked for


def test_the_stock_chart_shows_the_projection_and_the_shortages(base_url, page):
    page.goto(base_url + "/")
    page.wait_for_selector("#item option[value='A']", state="attached")
    page.select_option("#item", "A")
    page.fill("#onhand", "6")
    page.click("#stockform button")
    page.wait_for_selector("#stock[data-item='A']")
    # A's forecast: p50 5 then 4, p90 9 then 8; six on hand run short in week two at p50, week one at p90.
    assert len(page.get_attribute("#stock polyline.stock50", "points").split()) == 2
    assert page.locator("#stock circle.short50").count() == 1 and page.locator("#stock circle.shortq").count() == 1
    meta = page.inner_text("#stockmeta")
    assert "shortage at p50: 2024-01-29" in meta and "at p90: 2024-01-22" in meta and "(late)" in meta


def test_the_what_if_chart_moves_the_scenario_line_when_the_price_changes(base_url, page):
    page.goto(base_url + "/")
    page.wait_for_selector("#item option[value='A']", state="attached")
    page.select_option("#item", "A")
    page.fill("#pricefactor", "0.6")
    page.click("#whatifform button")
    page.wait_for_selector("#whatif[data-item='A']")
    base = [tuple(map(float, p.split(","))) for p in page.get_attribute("#whatif polyline.base50", "points").split()]
    scen = [tuple(map(float, p.split(","))) for p in page.get_attribute("#whatif polyline.scen50", "points").split()]
    assert len(base) == len(scen) == 2  # the two forecast weeks
    assert all(s[1] <= b[1] for s, b in zip(scen, base, strict=True))  # SVG y grows downwards: at or above
    assert any(s[1] < b[1] for s, b in zip(scen, base, strict=True))  # a 40 % cut raises the forecast
    meta = page.inner_text("#whatifmeta")
    assert meta.startswith("units ") and "(+" in meta and page.inner_text("#err") == ""


def test_the_drivers_table_names_the_models_and_the_effects(base_url, page):
    page.goto(base_url + "/")
    page.wait_for_selector("#item option[value='A']", state="attached")
    page.select_option("#item", "A")
    page.wait_for_selector("#drivers[data-item='A'] table")
    headers = page.locator("#drivers th").all_inner_texts()
    assert headers == ["ensemble", "recent_demand", "seasonality", "price", "promotion", "holiday", "item_and_store"]
    cells = page.locator("#drivers td").all_inner_texts()
    assert cells[0] == "LightGBM 1.00" and all(float(c) > 0 for c in cells[1:])


def test_the_page_opens_on_the_biggest_item_and_search_narrows_the_list(base_url, page, tmp_path):
    """A (9 units forecast) before B (2): the page shows A's chart without a pick; a search keeps the matches only
    and shows the first of them."""
    page.goto(base_url + "/")
    page.wait_for_selector("#chart[data-item='A']")
    options = page.locator("#item option").all_inner_texts()
    assert [o.split(" (")[0] for o in options] == ["A", "B"] and options[0].endswith(", 9 units)")
    page.screenshot(path=str(tmp_path / "opened.png"))
    assert (tmp_path / "opened.png").stat().st_size > 10_000  # a drawn page, not a blank one
    page.fill("#search", "b")
    page.wait_for_selector("#chart[data-item='B']")
    assert [o.split(" (")[0] for o in page.locator("#item option").all_inner_texts()] == ["B"]


def test_the_totals_chart_draws_each_category_and_they_add_up_to_the_company(base_url, page):
    page.goto(base_url + "/")
    page.wait_for_selector("#totals[data-level='total']")
    assert page.locator("#totals polyline.node").count() == 1
    page.select_option("#level", "category")
    page.wait_for_selector("#totals[data-level='category']")
    lines = page.locator("#totals polyline.node")
    assert [lines.nth(i).get_attribute("data-node") for i in range(lines.count())] == ["snacks", "drinks"]
    assert page.locator("#totals polygon.nodeband").count() == 1
    cells = page.locator("#totalstable table").first.locator("td").all_inner_texts()
    assert cells == ["snacks", "10", "0.794", "drinks", "2.6", "0.206"]  # expected units over the horizon, share
    assert "wls_struct" in page.inner_text("#totalsmeta") and page.inner_text("#err") == ""
    page.select_option("#level", "store")
    page.wait_for_selector("#totalstable em")
    assert "no coherent totals at level store" in page.inner_text("#totalstable")


def test_the_report_opens_offline_and_draws_the_runs_charts(settings, browser, tmp_path):
    """`demand report` written to a file, opened in Chromium with every request refused: the charts are drawn from
    the page alone, the outliers sit on their own scale inside the plot, and the history is not flattened by them."""
    from typer.testing import CliRunner

    from demand.cli import app as cli

    out = tmp_path / "report.html"
    env = {"DEMAND_DATA_ROOT": str(settings.data_root), "DEMAND_PREFIX": settings.prefix}
    result = CliRunner().invoke(cli, ["--endpoint-url", settings.endpoint_url, "report", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    context = browser.new_context()
    requests: list[str] = []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                  else (requests.append(route.request.url), route.abort()))  # fmt: skip
    page = context.new_page()
    page.goto(out.as_uri())
    assert page.locator("svg.chart").count() == 4  # items A and B, accuracy, outliers per week
    history = page.locator("svg[data-chart='history'][data-item='A']")
    box = history.bounding_box()
    assert box and box["width"] > 700 and box["height"] > 200
    dots = history.locator("circle.outlier")
    assert dots.count() == 3
    plot_top, plot_bottom = 14, 260 - 40
    assert all(plot_top <= float(dots.nth(i).get_attribute("cy")) <= plot_bottom for i in range(3))
    ys = [float(p.split(",")[1]) for p in history.locator("polyline.hist").get_attribute("points").split()]
    assert ys[0] < ys[2] and max(ys) - min(ys) > 40  # 10 above 5, and spread over the plot (not squashed by 500s)
    assert page.locator("svg[data-chart='accuracy'] rect").count() == 4
    assert page.locator("svg[data-chart='outliers'] rect").count() >= 3
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 20_000
    assert requests == []  # nothing fetched from anywhere
    context.close()


def test_the_reports_charts_are_written_as_pngs_of_their_own_size_and_a_missing_browser_says_so(settings, tmp_path):
    import struct

    from typer.testing import CliRunner

    from demand.cli import app as cli

    env = {"DEMAND_DATA_ROOT": str(settings.data_root), "DEMAND_PREFIX": settings.prefix}
    base = ["--endpoint-url", settings.endpoint_url, "report", "--out", str(tmp_path / "report.html")]
    result = CliRunner().invoke(cli, [*base, "--png", str(tmp_path / "png"), "--chromium", CHROMIUM], env=env)
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == ["01-history-A.png", "02-history-B.png", "03-accuracy.png", "04-outliers.png"], pngs
    header = (tmp_path / "png" / "01-history-A.png").read_bytes()[:24]
    width, height = struct.unpack(">II", header[16:24])
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and 760 <= width <= 766 and 260 <= height <= 266  # the SVG and its border

    missing = CliRunner().invoke(cli, [*base, "--png", str(tmp_path / "none"), "--chromium", "/no/chromium"], env=env)
    assert missing.exit_code == 1 and "PNG output needs Chromium (/no/chromium not found)" in missing.output
    assert (tmp_path / "report.html").exists() and not (tmp_path / "none").exists()  # the HTML is still written


def _write_anomalies(settings) -> None:
    """A detection's demand_anomalies table, as the detect job lands it: a drop of B, a spike of A, a drop of a
    category."""
    import pandas as pd

    from core.object_store import object_store
    from core.tables import DEMAND_ANOMALIES, write_local_catalog
    from glue_jobs.detect_demand_anomalies import anomalies_parquet

    def row(anomaly_id, level, series, item, category, direction, start, end, severity, actual, expected):
        return {"anomaly_id": anomaly_id, "run_id": "2024-01-22-abc", "detected_at": pd.Timestamp("2024-01-22"),
                "frequency": "W", "level": level, "series": series, "item_id": item, "location": None,
                "category": category, "channel": None, "direction": direction, "start_date": pd.Timestamp(start),
                "end_date": pd.Timestamp(end), "peak_date": pd.Timestamp(end), "periods": 1, "actual": actual,
                "expected": expected, "lower": 0.0, "upper": expected * 2, "excess_units": actual - expected,
                "score": 4.0 * severity / (100 - severity), "severity": severity,
                "contributors": "item=B -6 (100%)" if level == "category" else None, "suppressed_by": None}  # fmt: skip

    frame = pd.DataFrame([
        row("b-drop", "item", "item=B", "B", "snacks", "drop", "2024-01-15", "2024-01-15", 80, 0.0, 6.0),
        row("a-spike", "item", "item=A", "A", "snacks", "spike", "2024-01-08", "2024-01-08", 70, 6.0, 1.5),
        row("snacks-drop", "category", "category=snacks", None, "snacks", "drop", "2024-01-15", "2024-01-15", 55,
            5.0, 11.0),
    ])  # fmt: skip
    store = object_store(settings)
    key = f"{DEMAND_ANOMALIES.prefix}/run_date=2024-01-22/run=2024-01-22-abc/part-00000.parquet"
    store.put(settings.names.bucket(DEMAND_ANOMALIES.bucket_role), key, anomalies_parquet(frame))
    write_local_catalog(settings)


def test_the_anomalies_table_ranks_by_severity_filters_marks_the_chart_and_orders_the_products(
    settings, base_url, page, tmp_path
):
    """Last in the module: the other tests see no anomalies. The table lists the detection most severe first and
    narrows by level and severity; the opened item's chart shades its anomaly; ordering by anomaly puts B first; a
    click on B's row charts B."""
    _write_anomalies(settings)
    page.goto(base_url + "/")
    page.wait_for_selector("#anomalies[data-rows='3']")
    rows = page.locator("#anomalies tr[data-anomaly]")
    assert [rows.nth(i).get_attribute("data-anomaly") for i in range(3)] == ["b-drop", "a-spike", "snacks-drop"]
    assert rows.nth(2).locator("td").all_inner_texts()[-2] == "item=B -6 (100%)"
    page.wait_for_selector("#chart[data-item='A'] rect.anomaly[data-anomaly='a-spike']", state="attached")
    shade = page.locator("#chart rect.anomaly").bounding_box()
    assert shade and 0 < shade["width"] < 400  # one week of a three-week history
    page.screenshot(path=str(tmp_path / "anomalies.png"), full_page=True)
    assert (tmp_path / "anomalies.png").stat().st_size > 10_000
    page.select_option("#anomalylevel", "category")
    page.wait_for_selector("#anomalies[data-rows='1']")
    page.select_option("#anomalylevel", "")
    page.fill("#minseverity", "75")
    page.dispatch_event("#minseverity", "change")
    page.wait_for_selector("#anomalies[data-rows='1'] tr[data-anomaly='b-drop']")
    page.select_option("#order", "severity")
    page.wait_for_selector("#chart[data-item='B']")
    assert page.locator("#item option").first.inner_text().endswith("anomaly 80)")
    page.select_option("#order", "units")
    page.wait_for_selector("#chart[data-item='A']")
    page.click("#anomalies tr[data-anomaly='b-drop']")
    page.wait_for_selector("#chart[data-item='B']")
    assert page.inner_text("#err") == ""

    from typer.testing import CliRunner

    from demand.cli import app as cli

    out = tmp_path / "report.html"  # the report's anomalies: per week by level and direction, and the table
    env = {"DEMAND_DATA_ROOT": str(settings.data_root), "DEMAND_PREFIX": settings.prefix}
    result = CliRunner().invoke(cli, ["--endpoint-url", settings.endpoint_url, "report", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    page.goto(out.as_uri())
    bars = page.locator("svg[data-chart='anomalies'] rect[data-series]")
    drawn = {(bars.nth(i).get_attribute("data-group"), bars.nth(i).get_attribute("data-series"),
              bars.nth(i).get_attribute("data-value")) for i in range(bars.count())}  # fmt: skip
    assert drawn == {("2024-01-15", "item drop", "1"), ("2024-01-08", "item spike", "1"),
                     ("2024-01-15", "category drop", "1")}  # fmt: skip
    assert "item=B -6 (100%)" in page.inner_text("body")
