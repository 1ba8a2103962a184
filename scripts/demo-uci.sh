#!/usr/bin/env bash
# The pipeline on the real data set users try first: the UCI Online Retail II year in ../shared/data (or
# DEMO_UCI_FILE: the UCI .xlsx, a CSV export or parquet) through the local stack -> push -> read back -> Flink split
# -> landing -> daily dataset build (GB holidays, 28 days of horizon) -> forecast workflow -> enrichment -> query.
# About 10 minutes on 2 cores. Leaves the local stack running; stop it with `.venv/bin/demand local down`.
#
# Environment (defaults in brackets):
#   DEMO_UCI_FILE [../shared/data/online_retail_ii_2009_2010.parquet]
#   DEMAND_DATA_ROOT [.demand-uci]     where everything is written (wiped of earlier demo output first)
#   DEMAND_LOCAL_PORT [4566]           port of the local moto server
set -euo pipefail
cd "$(dirname "$0")/.."
DEMAND=.venv/bin/demand
[ -x "$DEMAND" ] || { echo "error: $DEMAND not found; run 'make setup' first" >&2; exit 1; }
FILE=${DEMO_UCI_FILE:-../shared/data/online_retail_ii_2009_2010.parquet}
[ -f "$FILE" ] || { echo "error: no data set at $FILE (set DEMO_UCI_FILE)" >&2; exit 2; }
export DEMAND_DATA_ROOT=${DEMAND_DATA_ROOT:-.demand-uci}
export DEMAND_LOCAL_PORT=${DEMAND_LOCAL_PORT:-4566}
export DEMAND_COUNTRY=GB
DEMO="$DEMAND_DATA_ROOT/demo"
unset AWS_ENDPOINT_URL DEMAND_ENDPOINT_URL  # the demo talks to its own local stack only

step() { printf '\n== %s\n' "$*"; }

step "local stack on 127.0.0.1:$DEMAND_LOCAL_PORT (restarted, so the stream starts empty)"
"$DEMAND" local down --reset >/dev/null
rm -rf "$DEMO" "$DEMAND_DATA_ROOT"/demand-*
"$DEMAND" local up

step "replay $FILE as contract events (cancellations matched to their orders, non-merchandise rejected)"
"$DEMAND" replay-uci "$FILE" --out "$DEMO"

step "push it to Kinesis (sales-events)"
"$DEMAND" push "$DEMO/events.jsonl" --rejected "$DEMO/push-rejected.jsonl"

step "read the stream back"
"$DEMAND" stream read --out "$DEMO/stream.jsonl"

step "Flink outlier split on the PyFlink mini-cluster"
"$DEMAND" flink run --input "$DEMO/stream.jsonl" --out "$DEMO/split"

step "land the split as parquet in the staged / analysis / rejected buckets (month partitions)"
"$DEMAND" land "$DEMO/split"

step "build the daily forecast datasets on local Spark (horizon 28 days, GB holidays)"
WINDOW_END=$(.venv/bin/python - "$DEMO/split/clean" <<'PY'
import datetime as d, json, pathlib, sys
newest = max(json.loads(l)["event_time"][:10] for p in pathlib.Path(sys.argv[1]).glob("part*") for l in p.open())
print(d.date.fromisoformat(newest) + d.timedelta(days=1))
PY
)
"$DEMAND" glue run build-forecast-inputs --window-start 2009-12-01 --window-end "$WINDOW_END" --frequency D --horizon 28

step "demand anomalies of the build (every level), and their alerts (alerts.jsonl, the local SNS topic)"
"$DEMAND" anomalies detect
"$DEMAND" anomalies list --limit 10

step "forecast workflow: import, train, accuracy gate, forecast, export, notify, enrichment"
"$DEMAND" forecast run

step "query the enriched forecasts (Athena SQL, run locally in DuckDB)"
"$DEMAND" query --named next_period_forecast --max-rows 20
"$DEMAND" query --named outliers_by_code

step "report of the run"
"$DEMAND" report --out "$DEMAND_DATA_ROOT/report.html"

cat <<MSG

Where to look:
  events:              $DEMO/events.jsonl, rejected rows $DEMO/rejected.jsonl
  split outputs:       $DEMO/split/{clean,outliers,rejected,reference}/
  buckets:             $DEMAND_DATA_ROOT/demand-*/
  report:              $DEMAND_DATA_ROOT/report.html
  demand anomalies:    $DEMAND anomalies list; alerts sent: $DEMAND_DATA_ROOT/alerts.jsonl
  API and dashboard:   DEMAND_DATA_ROOT=$DEMAND_DATA_ROOT $DEMAND serve   (then open http://127.0.0.1:8000/)
The local stack is still running on http://127.0.0.1:$DEMAND_LOCAL_PORT (stop: $DEMAND local down).
MSG
