"""`python -m bench NAME [--quick]` runs one benchmark; `python -m bench all [--quick]` runs every one."""

from __future__ import annotations

import argparse
import importlib

# Benchmark name -> module in this package that defines run(quick: bool).
BENCHES = {
    "producer": "producer",
    "flink_split": "flink_split",
    "flink_accuracy": "flink_split",  # and real_split (the online_retail lines)
    "build_inputs": "build_inputs",
    "forecast": "forecast",
    "forecast_accuracy": "forecast",
    "forecast_scale": "forecast_scale",
    "enrich": "enrich",
    "query": "enrich",
    "api": "api",
    "whatif": "whatif",
    "reconcile": "reconcile",
    "anomaly_accuracy": "anomaly_accuracy",
    "split_forecast_value": "real_split",
    "uci_pipeline": "uci_pipeline",
    "uci_pipeline_2x": "uci_pipeline",  # the year and the same year again, a year later
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", help=f"one of: all, {', '.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="small data, finishes in under a minute")
    args = parser.parse_args()
    if args.name == "all":
        names = list(dict.fromkeys(BENCHES.values()))
        for mod in names:
            importlib.import_module(f"bench.{mod}").run(quick=args.quick, only=None)
        return
    if args.name not in BENCHES:
        parser.error(f"unknown benchmark {args.name!r}; choose one of: all, {', '.join(BENCHES)}")
    importlib.import_module(f"bench.{BENCHES[args.name]}").run(quick=args.quick, only=args.name)


if __name__ == "__main__":
    main()
