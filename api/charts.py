"""The report's charts as inline SVG (no script, no font or file to fetch: the page opens offline).

Each chart carries its data on its elements (`data-*`), so a test or a reader's script can check what is drawn.
- history_chart: an item's weekly demand, the forecast's p10-p90 band and p50, and its outlier sales marked on a
  scale of their own on the right (an outlier of 500 units would flatten a history of tens).
- accuracy_chart: WAPE by model and backtest window (grouped bars), the ensemble's summary marked.
- outliers_chart: outliers per week by reason code (stacked bars).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from html import escape
from typing import Any

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 56, 14, 40
COLORS = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#d6616b", "#8c6d31", "#17becf")
STYLE = """svg.chart{border:1px solid #ddd;background:#fff;margin:.3em 0 1em}.axis{font-size:11px;fill:#555}
.band{fill:#9ecae1;opacity:.55}.p50{fill:none;stroke:#08519c;stroke-width:2}.hist{fill:none;stroke:#444;stroke-width:1.5}
.outlier{fill:#d62728}.grid{stroke:#eee}.legend{font-size:11px}"""


def _tick(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _time(value: Any) -> float:
    text = str(value)[:19].replace(" ", "T")
    return datetime.fromisoformat(text).timestamp()


class _Frame:
    """The plot area's scales: x over [t0, t1], y over [0, y1] (and a right-hand y over [0, r1])."""

    def __init__(self, t0: float, t1: float, y1: float, r1: float | None = None):
        self.t0, self.t1 = t0, t1 if t1 > t0 else t0 + 1
        self.y1, self.r1 = max(y1, 1e-9) * 1.05, None if r1 is None else max(r1, 1e-9) * 1.05

    def x(self, t: float) -> float:
        return round(LEFT + (t - self.t0) / (self.t1 - self.t0) * (WIDTH - LEFT - RIGHT), 2)

    def y(self, v: float) -> float:
        return round(HEIGHT - BOTTOM - v / self.y1 * (HEIGHT - TOP - BOTTOM), 2)

    def right(self, v: float) -> float:
        return round(HEIGHT - BOTTOM - v / (self.r1 or 1.0) * (HEIGHT - TOP - BOTTOM), 2)

    def axes(self, y_label: str, right_label: str | None = None, dates: bool = True) -> str:
        parts = [f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{self.y(v)}" y2="{self.y(v)}"/>'
                 f'<text class="axis" x="4" y="{self.y(v) + 4}">{_tick(v)}</text>'
                 for v in (0, self.y1 / 2.1, self.y1 / 1.05)]  # fmt: skip
        if self.r1 is not None:
            parts += [f'<text class="axis" x="{WIDTH - RIGHT + 6}" y="{self.right(v) + 4}" fill="#d62728">'
                      f"{_tick(v)}</text>" for v in (0, self.r1 / 1.05)]  # fmt: skip
            parts.append(f'<text class="axis" x="{WIDTH - 4}" y="{TOP - 2}" text-anchor="end" fill="#d62728">'
                         f"{escape(right_label or '')}</text>")  # fmt: skip
        for t in (self.t0, self.t1) if dates else ():
            day = datetime.fromtimestamp(t).strftime("%Y-%m-%d")
            parts.append(f'<text class="axis" x="{self.x(t) - 30}" y="{HEIGHT - BOTTOM + 16}">{day}</text>')
        parts.append(f'<text class="axis" x="{LEFT}" y="{TOP - 2}">{escape(y_label)}</text>')
        return "".join(parts)


def _svg(kind: str, label: str, body: str, **data: Any) -> str:
    attributes = "".join(f' data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in data.items())
    return (f'<svg class="chart" data-chart="{kind}"{attributes} width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">{body}</svg>')  # fmt: skip


def history_chart(item_id: str, history: list[dict], forecast: list[dict], outliers: list[dict]) -> str:
    """`history`: period, demand; `forecast`: forecast_date, p10, p50, p90 (one location); `outliers`: event_time,
    quantity, outlier_code."""
    hist = [(_time(r["period"]), float(r["demand"])) for r in history]
    band = [(_time(r["forecast_date"]), float(r["p10"]), float(r["p50"]), float(r["p90"])) for r in forecast]
    outs = [(_time(o["event_time"]), abs(float(o["quantity"])), str(o["outlier_code"])) for o in outliers]
    times = [t for t, _ in hist] + [t for t, *_ in band] + [t for t, *_ in outs]
    if not times:
        return _svg("history", f"{item_id}: nothing to draw", "", item=item_id)
    demand_max = max([v for _, v in hist] + [hi for *_, hi in band] + [1.0])
    frame = _Frame(min(times), max(times), demand_max, max([q for _, q, _ in outs], default=None))
    body = [frame.axes("units a week", "outlier units" if outs else None)]
    if band:
        upper = [f"{frame.x(t)},{frame.y(hi)}" for t, _, _, hi in band]
        lower = [f"{frame.x(t)},{frame.y(lo)}" for t, lo, _, _ in reversed(band)]
        body.append(f'<polygon class="band" points="{" ".join(upper + lower)}"/>')
        points = " ".join(f"{frame.x(t)},{frame.y(mid)}" for t, _, mid, _ in band)
        body.append(
            f'<polyline class="p50" points="{points}" data-values="{" ".join(f"{m:g}" for _, _, m, _ in band)}"/>'
        )
    if hist:
        points = " ".join(f"{frame.x(t)},{frame.y(v)}" for t, v in hist)
        body.append(f'<polyline class="hist" points="{points}" data-values="{" ".join(f"{v:g}" for _, v in hist)}"/>')
    for t, quantity, code in outs:
        body.append(f'<circle class="outlier" cx="{frame.x(t)}" cy="{frame.right(quantity)}" r="4" '
                    f'data-quantity="{quantity:g}" data-code="{escape(code)}"><title>{escape(code)}: '
                    f"{quantity:g} units</title></circle>")  # fmt: skip
    return _svg("history", f"{item_id}: history, forecast band and outliers", "".join(body), item=item_id)


def _bars(kind: str, label: str, groups: list[str], series: list[str], value, y_label: str, stacked: bool) -> str:
    """Bars per group (x) and series (colour), side by side or stacked; value(group, series) -> float | None."""
    totals = [sum(value(g, s) or 0.0 for s in series) if stacked else max([value(g, s) or 0.0 for s in series] + [0])
              for g in groups]  # fmt: skip
    frame = _Frame(0, max(len(groups), 1), max(totals + [1e-9]))
    slot = (WIDTH - LEFT - RIGHT) / max(len(groups), 1)
    width = slot * 0.8 / (1 if stacked else max(len(series), 1))
    body = [frame.axes(y_label, dates=False)]
    for gi, group in enumerate(groups):
        base = 0.0
        for si, name in enumerate(series):
            v = value(group, name)
            if v is None:
                continue
            x = LEFT + gi * slot + slot * 0.1 + (0 if stacked else si * width)
            top, bottom = frame.y(base + v), frame.y(base)
            body.append(f'<rect x="{x:.2f}" y="{top}" width="{width:.2f}" height="{max(bottom - top, 0):.2f}" '
                        f'fill="{COLORS[si % len(COLORS)]}" data-group="{escape(group)}" data-series="{escape(name)}" '
                        f'data-value="{v:g}"><title>{escape(group)} {escape(name)}: {v:g}</title></rect>')  # fmt: skip
            base += v if stacked else 0.0
        body.append(f'<text class="axis" x="{LEFT + gi * slot + slot * 0.1:.2f}" y="{HEIGHT - 6}">'
                    f"{escape(group[:12])}</text>")  # fmt: skip
    for si, name in enumerate(series):
        body.append(f'<text class="legend" x="{LEFT + 8 + si * 110}" y="{TOP + 10}" fill="{COLORS[si % len(COLORS)]}">'
                    f"{escape(name)}</text>")  # fmt: skip
    return _svg(kind, label, "".join(body))


def accuracy_chart(metrics: list[dict]) -> str:
    """`metrics`: the export's accuracy rows (window, model, WAPE): one group per model, one bar per window."""
    rows = [r for r in metrics if r.get("WAPE") not in (None, "") and str(r["window"]) != "summary"]
    models = sorted({str(r["model"]) for r in rows}, key=lambda m: (m != "ensemble", m))
    windows = sorted({str(r["window"]) for r in rows}, key=lambda w: int(w) if w.isdigit() else 0)
    wape = {(str(r["model"]), str(r["window"])): float(r["WAPE"]) for r in rows}
    return _bars("accuracy", "WAPE by model and backtest window", models, [f"window {w}" for w in windows],
                 lambda m, w: wape.get((m, w.removeprefix("window "))), "WAPE", stacked=False)  # fmt: skip


def anomalies_chart(anomalies: list[dict]) -> str:
    """`anomalies`: rows of latest_anomalies: stacked bars of the anomalies starting each week, by level and
    direction (a category's drops beside its items' spikes)."""

    def week(row: dict) -> str:
        start = date.fromisoformat(str(row["start_date"])[:10])
        return (start - timedelta(days=start.weekday())).isoformat()

    counts: dict[tuple[str, str], float] = {}
    for row in anomalies:
        key = (week(row), f"{row['level']} {row['direction']}")
        counts[key] = counts.get(key, 0.0) + 1.0
    weeks = sorted({w for w, _ in counts})
    kinds = sorted({k for _, k in counts})
    return _bars("anomalies", "demand anomalies per week by level and direction", weeks, kinds,
                 lambda w, k: counts.get((w, k)), "anomalies", stacked=True)  # fmt: skip


def outliers_chart(weekly: list[dict]) -> str:
    """`weekly`: week, outlier_code, outliers: stacked bars per week."""
    weeks = sorted({str(r["week"])[:10] for r in weekly})
    codes = sorted({str(r["outlier_code"]) for r in weekly})
    counts = {(str(r["week"])[:10], str(r["outlier_code"])): float(r["outliers"]) for r in weekly}
    return _bars("outliers", "outliers per week by reason code", weeks, codes, lambda w, c: counts.get((w, c)),
                 "outliers", stacked=True)  # fmt: skip
