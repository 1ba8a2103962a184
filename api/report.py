"""`demand report`: a static HTML summary of the latest run (accuracy, widest forecasts, outliers by code)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from api.queries import QueryLayer
from core.settings import Settings

STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f3f3f3}td.n{text-align:right}"""


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


def build_report(settings: Settings, query: QueryLayer | None = None) -> tuple[str, dict]:
    """The report's HTML and the figures behind it (for --json and tests)."""
    layer = query or QueryLayer(settings)
    accuracy = layer.accuracy()
    figures: dict[str, Any] = {
        "latest_run": accuracy[0] if accuracy else None,
        "runs": accuracy,
        "widest_items": layer.widest_items(),
        "outliers_by_code": layer.outliers_by_code(),
    }
    latest = figures["latest_run"]
    title = f"Forecast run {latest['run_id']}" if latest else "No forecast run yet"
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from <code>{escape(settings.names.glue_database)}</code>.</p>
<h2>Accuracy by run (backtest)</h2>
{_table(accuracy, ["run_id", "run_started_at", "backend", "predictor_id", "avg_wql", "wape", "items"])}
<h2>Widest forecasts (mean p90 - p10) in the latest run</h2>
{_table(figures["widest_items"], ["item_id", "category", "band_width", "p50", "outlier_count"])}
<h2>Outliers by reason code</h2>
{_table(figures["outliers_by_code"], ["outlier_code", "outliers", "items"])}
</body></html>
"""
    return html, figures
