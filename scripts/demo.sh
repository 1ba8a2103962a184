#!/usr/bin/env bash
# The pipeline on the local embedded runtime: local stack -> generate -> push -> read back -> Flink split ->
# landing -> dataset build (Spark) -> forecast workflow (statsforecast) -> enrichment -> query.
# Needs only `make setup`. Leaves the local stack running; stop it with `.venv/bin/demand local down`.
#
# Environment (defaults in brackets):
#   DEMO_STORES [2], DEMO_ITEMS [12]   stores and items generated
#   DEMO_DAYS [728]                    days of sales from 2023-01-02; the weekly dataset ends at the last full
#                                      week. The forecast backtest needs more than 41 weeks (horizon 8 x
#                                      (3 backtest + 2 conformal windows) + 1): at least 294 days.
#   DEMAND_DATA_ROOT [.demand]         where everything is written (wiped of earlier demo output first)
#   DEMAND_LOCAL_PORT [4566]           port of the local moto server
set -euo pipefail
cd "$(dirname "$0")/.."
DEMAND=.venv/bin/demand
[ -x "$DEMAND" ] || { echo "error: $DEMAND not found; run 'make setup' first" >&2; exit 1; }
export DEMAND_DATA_ROOT=${DEMAND_DATA_ROOT:-.demand}
export DEMAND_LOCAL_PORT=${DEMAND_LOCAL_PORT:-4566}
STORES=${DEMO_STORES:-2}
ITEMS=${DEMO_ITEMS:-12}
DAYS=${DEMO_DAYS:-728}
START=2023-01-02  # a Monday: weekly periods start on Mondays
for var in STORES ITEMS DAYS; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || { echo "error: DEMO_$var must be a positive integer, got '${!var}'" >&2; exit 2; }
done
# The dataset window ends (exclusive) at the Monday after the last full week of sales.
WINDOW_END=$(.venv/bin/python -c 'import datetime as d, sys; print(d.date.fromisoformat(sys.argv[1]) + d.timedelta(days=int(sys.argv[2])))' "$START" $((DAYS / 7 * 7)))
DEMO="$DEMAND_DATA_ROOT/demo"
unset AWS_ENDPOINT_URL DEMAND_ENDPOINT_URL  # the demo talks to its own local stack only

step() { printf '\n== %s\n' "$*"; }

step "local stack on 127.0.0.1:$DEMAND_LOCAL_PORT (restarted, so the stream starts empty)"
"$DEMAND" local down --reset >/dev/null
rm -rf "$DEMO" "$DEMAND_DATA_ROOT"/demand-*  # a demo starts from nothing: no old buckets, runs or champion
"$DEMAND" local up

step "generate $DAYS days of sales into $DEMO ($STORES stores x $ITEMS items, 1% labelled anomalies)"
"$DEMAND" generate --out "$DEMO" --stores "$STORES" --items "$ITEMS" --days "$DAYS" --start "$START"

step "push it to Kinesis (sales-events)"
"$DEMAND" push "$DEMO/events.jsonl" --rejected "$DEMO/rejected.jsonl"

step "read the stream back"
"$DEMAND" stream read --out "$DEMO/stream.jsonl"
echo "(duplicates are the generator's injected 'duplicate' anomalies: the same event_id sent twice, see labels.jsonl)"

step "Flink outlier split on the PyFlink mini-cluster"
"$DEMAND" flink run --input "$DEMO/stream.jsonl" --out "$DEMO/split"

step "land the split as parquet (local Firehose) in the staged / analysis / rejected buckets"
"$DEMAND" land "$DEMO/split"

step "build the forecast datasets on local Spark (weekly, horizon 8)"
"$DEMAND" glue run build-forecast-inputs --window-start "$START" --window-end "$WINDOW_END" --frequency W --horizon 8

step "demand anomalies of the build (every level), and their alerts (alerts.jsonl, the local SNS topic)"
"$DEMAND" anomalies detect
"$DEMAND" anomalies list --limit 10

step "forecast workflow: import, train, accuracy gate, forecast, export, notify, enrichment"
"$DEMAND" forecast run

step "query the enriched forecasts (Athena SQL, run locally in DuckDB)"
"$DEMAND" query --named next_period_forecast
"$DEMAND" query --named outliers_by_code

step "report of the run"
"$DEMAND" report --out "$DEMAND_DATA_ROOT/report.html"

cat <<MSG

Where to look:
  events and labels:   $DEMO/events.jsonl, $DEMO/labels.jsonl
  split outputs:       $DEMO/split/{clean,outliers,rejected,reference}/
  buckets:             $DEMAND_DATA_ROOT/demand-*/ (staged, analysis, forecast-input, forecast-export, enriched)
  more queries:        $DEMAND query --named list
  report:              $DEMAND_DATA_ROOT/report.html
  demand anomalies:    $DEMAND anomalies list; alerts sent: $DEMAND_DATA_ROOT/alerts.jsonl
  API and dashboard:   $DEMAND serve   (then open http://127.0.0.1:8000/)

The local stack is still running on http://127.0.0.1:$DEMAND_LOCAL_PORT.
  status:  $DEMAND local status
  stop:    $DEMAND local down
MSG
