"""Bring your own datasets: `demand forecast import` checks Forecast-layout CSVs against Forecast's rules, with the
file, row and column of what is wrong, writes them as a dataset build would and runs the workflow on them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from demand.cli import app
from local_stack.stack import ensure_resources

WEEKS = pd.date_range("2023-01-02", periods=80, freq="W-MON")


def _write(tmp_path, target=None, related=None, metadata=None):
    rows = [(item, f"{d:%Y-%m-%d}", 5 + (k % 7) + 3 * n) for n, item in enumerate(("A1", "B2", "C3"))
            for k, d in enumerate(WEEKS)]  # fmt: skip
    target = target if target is not None else pd.DataFrame(rows, columns=["item_id", "timestamp", "demand"])
    future = pd.date_range(WEEKS[0], periods=len(WEEKS) + 8, freq="W-MON")
    if related is None:
        related = pd.DataFrame([(i, f"{d:%Y-%m-%d}", 2.5) for i in ("A1", "B2", "C3") for d in future],
                               columns=["item_id", "timestamp", "price"])  # fmt: skip
    metadata = metadata if metadata is not None else pd.DataFrame({"item_id": ["A1", "B2", "C3"], "category": "toys"})
    paths = {}
    for name, frame in (("target", target), ("related", related), ("metadata", metadata)):
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def _import(settings, paths, *more):
    args = ["--endpoint-url", settings.endpoint_url, "--data-root", str(settings.data_root), "--prefix",
            settings.prefix, "forecast", "import", "--target", str(paths["target"]), "--related",
            str(paths["related"]), "--metadata", str(paths["metadata"]), "--frequency", "W", "--horizon", "8",
            "--json", *more]  # fmt: skip
    return CliRunner().invoke(app, args)


@pytest.mark.slow
def test_good_datasets_are_written_and_forecast(settings, tmp_path):
    ensure_resources(settings)
    result = _import(settings, _write(tmp_path))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "SUCCEEDED" and summary["series"] == 3
    manifest = json.loads((settings.data_root / settings.names.bucket("forecast-input") / summary["manifest_key"])
                          .read_text())  # fmt: skip
    assert manifest["window_end"] == "2024-07-15" and manifest["source"] == "import"
    again = json.loads(_import(settings, _write(tmp_path), "--no-run").stdout.strip().splitlines()[-1])
    assert again["manifest_key"] == summary["manifest_key"]  # the same data: the same place


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("bad_date", "target.csv row 3, column timestamp: '2023-13-16' is not a date"),
        ("sunday", "target.csv row 1, column timestamp: '2023-01-01' is not a Monday"),
        ("text_demand", "target.csv row 2, column demand: 'many' is not a number"),
        ("negative", "target.csv row 5, column demand: '-3' is negative"),
        ("duplicate", "target.csv row 1, column timestamp: '2023-01-02' repeats a item_id and timestamp (2 rows)"),
        ("short_related", "related.csv: series A1 is covered to 2024-07-08, the horizon needs 2024-09-02"),
        ("no_metadata", "metadata.csv: no row for target item(s) ['C3']"),
    ],
)
def test_bad_datasets_are_refused_naming_file_row_and_column(tmp_path, change, message):
    paths = _write(tmp_path)
    target, related = pd.read_csv(paths["target"], dtype=str), pd.read_csv(paths["related"], dtype=str)
    metadata = pd.read_csv(paths["metadata"], dtype=str)
    if change == "bad_date":
        target.loc[2, "timestamp"] = "2023-13-16"
    elif change == "sunday":
        target.loc[0, "timestamp"] = "2023-01-01"
    elif change == "text_demand":
        target.loc[1, "demand"] = "many"
    elif change == "negative":
        target.loc[4, "demand"] = "-3"
    elif change == "duplicate":
        target.loc[1, "timestamp"] = target.loc[0, "timestamp"]
    elif change == "short_related":
        related = related[~((related["item_id"] == "A1") & (related["timestamp"] > "2024-07-08"))]
    else:
        metadata = metadata[metadata["item_id"] != "C3"]
    paths = _write(tmp_path, target, related, metadata)
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path / "root"), "forecast", "import", "--target",
                                      str(paths["target"]), "--related", str(paths["related"]), "--metadata",
                                      str(paths["metadata"]), "--frequency", "W", "--no-run"])  # fmt: skip
    assert result.exit_code == 1
    assert message in result.output, result.output
