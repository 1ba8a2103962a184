"""`demand report`: a static HTML page of the latest run that opens offline: the biggest items' history, forecast band
and outliers as charts (api/charts.py), accuracy by model and backtest window, outliers over time by reason code,
the latest detection's demand anomalies per week, and the tables behind them."""

from __future__ import annotations

import csv
import io
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from api import charts
from api.queries import QueryLayer
from core.object_store import object_store
from core.settings import Settings

CHARTED_ITEMS = 6  # the items with the most forecast units get a history chart each
ANOMALIES_LISTED = 1000  # the most severe anomalies of the latest detection behind the chart
ANOMALIES_SHOWN = 20  # ... and in the table
ANOMALY_COLUMNS = ["severity", "direction", "level", "series", "start_date", "end_date", "actual", "expected",
                   "excess_units", "contributors", "suppressed_by"]  # fmt: skip

STYLE = (
    """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f3f3f3}td.n{text-align:right}
"""
    + charts.STYLE
)


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="n">{value:,.3f}</td>'
    if isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _run_metrics(settings: Settings, run_id: str) -> list[dict]:
    """The run's backtest rows from its export (accuracy-metrics/metrics.csv), none when it has no such file."""
    store, bucket = object_store(settings), settings.names.bucket("forecast-export")
    key = f"exports/{run_id}/accuracy-metrics/metrics.csv"
    if not store.exists(bucket, key):
        return []
    return list(csv.DictReader(io.StringIO(store.get(bucket, key).decode())))


def _item_charts(layer: QueryLayer, items: list[dict]) -> tuple[str, list[dict]]:
    parts, figures = [], []
    for item in items[:CHARTED_ITEMS]:
        forecast = layer.forecast(item["item_id"])
        location = forecast[0]["location"] if forecast else None
        forecast = [r for r in forecast if r["location"] == location]
        history = layer.history(item["item_id"], str(forecast[0]["forecast_date"])) if forecast else []
        outliers = layer.outliers({"item_id": item["item_id"]}, 1000)
        where = f" at {location}" if location else ""
        parts.append(f"<h3>{escape(item['item_id'])}{escape(where)} ({escape(str(item['category']))}, "
                     f"{item['forecast_units']:,.1f} units forecast, {len(outliers)} outliers)</h3>"
                     + charts.history_chart(item["item_id"], history, forecast, outliers))  # fmt: skip
        figures.append({"item_id": item["item_id"], "history": len(history), "forecast": len(forecast),
                        "outliers": len(outliers)})  # fmt: skip
    return "".join(parts), figures


def build_report(settings: Settings, query: QueryLayer | None = None) -> tuple[str, dict]:
    """The report's HTML and the figures behind it (for --json and tests)."""
    layer = query or QueryLayer(settings)
    accuracy = layer.accuracy()
    latest = accuracy[0] if accuracy else None
    metrics = _run_metrics(settings, latest["run_id"]) if latest else []
    weekly = layer.outliers_by_week()
    anomalies = layer.anomalies(limit=ANOMALIES_LISTED)
    items_html, charted = _item_charts(layer, layer.items()) if latest else ("", [])
    figures: dict[str, Any] = {
        "latest_run": latest,
        "runs": accuracy,
        "charted_items": charted,
        "backtest": metrics,
        "outliers_by_week": weekly,
        "widest_items": layer.widest_items(),
        "outliers_by_code": layer.outliers_by_code(),
        "anomalies": anomalies,
    }
    title = f"Forecast run {latest['run_id']}" if latest else "No forecast run yet"
    anomalies_html = (
        charts.anomalies_chart(anomalies) + _table(anomalies[:ANOMALIES_SHOWN], ANOMALY_COLUMNS)
        if anomalies
        else "<p><em>none: `demand anomalies detect` judges a dataset build</em></p>"
    )
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from <code>{escape(settings.names.glue_database)}</code>.</p>
<h2>The biggest items: weekly demand, forecast and outliers</h2>
<p>Grey: weekly demand. Blue band: p10-p90; blue line: p50. Red dots: outlier sales, on the right-hand scale.</p>
{items_html or "<p><em>none</em></p>"}
<h2>Accuracy by model and backtest window (WAPE)</h2>
{charts.accuracy_chart(metrics) if metrics else "<p><em>the run's export has no backtest metrics</em></p>"}
<h2>Accuracy by run (backtest)</h2>
{_table(accuracy, ["run_id", "run_started_at", "backend", "predictor_id", "avg_wql", "wape", "items"])}
<h2>Outliers per week by reason code</h2>
{charts.outliers_chart(weekly) if weekly else "<p><em>none</em></p>"}
<h2>Demand anomalies of the latest detection</h2>
<p>Per week of their start, by level and direction; the table: the {ANOMALIES_SHOWN} most severe (severity 50 is the
threshold; contributors: the series one level below that moved it most).</p>
{anomalies_html}
<h2>Outliers by reason code</h2>
{_table(figures["outliers_by_code"], ["outlier_code", "outliers", "items"])}
<h2>Widest forecasts (mean p90 - p10) in the latest run</h2>
{_table(figures["widest_items"], ["item_id", "category", "band_width", "p50", "outlier_count"])}
</body></html>
"""
    return html, figures


class PngError(RuntimeError):
    """The report's charts could not be written as PNG (no Chromium to draw them)."""


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


def write_pngs(html: str, directory: Path, chromium: str | None = None) -> list[Path]:
    """Each chart of the report as a PNG in `directory` (`NN-<chart>[-<item>].png`, in the page's order): headless
    Chromium draws the page, offline, and each chart is captured at its own size, so the PNGs are the SVGs a browser
    shows. `chromium`: the browser's executable (default: `chromium` on the PATH)."""
    executable = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable or not Path(executable).exists():
        wanted = chromium or "chromium on the PATH"
        raise PngError(
            f"PNG output needs Chromium ({wanted} not found); install it (Debian: apt-get install chromium) "
            "or leave out --png: the HTML report has the same charts"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise PngError("PNG output needs playwright: pip install 'demand-pipeline[png]'") from None

    directory.mkdir(parents=True, exist_ok=True)
    # Playwright's sync API refuses to run inside an event loop (a notebook, a caller's own browser): its own thread.
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(_draw, sync_playwright, executable, html, directory).result()


def _draw(sync_playwright, executable: str, html: str, directory: Path) -> list[Path]:
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.abort())  # the page is self-contained: nothing is fetched
            page.set_content(html)
            for number, chart in enumerate(page.locator("svg.chart").all(), start=1):
                item = chart.get_attribute("data-item")
                name = "-".join(part for part in (f"{number:02d}", chart.get_attribute("data-chart"), item) if part)
                path = directory / f"{_file_safe(name)}.png"
                chart.screenshot(path=str(path))
                written.append(path)
        finally:
            browser.close()
    return written


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
