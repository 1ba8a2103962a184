#!/usr/bin/env bash
# The pipeline on the local embedded runtime, as far as it is built: local stack -> generate -> push -> read back.
# Needs only `make setup`. Leaves the local stack running; stop it with `.venv/bin/demand local down`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMAND=.venv/bin/demand
[ -x "$DEMAND" ] || { echo "error: $DEMAND not found; run 'make setup' first" >&2; exit 1; }
export DEMAND_DATA_ROOT=${DEMAND_DATA_ROOT:-.demand}
export DEMAND_LOCAL_PORT=${DEMAND_LOCAL_PORT:-4566}
DEMO="$DEMAND_DATA_ROOT/demo"
unset AWS_ENDPOINT_URL DEMAND_ENDPOINT_URL  # the demo talks to its own local stack only

step() { printf '\n== %s\n' "$*"; }

step "local stack on 127.0.0.1:$DEMAND_LOCAL_PORT (restarted, so the stream starts empty)"
"$DEMAND" local down >/dev/null
"$DEMAND" local up

step "generate a small data set into $DEMO"
"$DEMAND" generate --out "$DEMO" --stores 2 --items 15 --days 120

step "push it to Kinesis (sales-events)"
"$DEMAND" push "$DEMO/events.jsonl" --rejected "$DEMO/rejected.jsonl"

step "read the stream back"
"$DEMAND" stream read --out "$DEMO/stream.jsonl"
echo "(duplicates are the generator's injected 'duplicate' anomalies: the same event_id sent twice, see labels.jsonl)"

cat <<MSG

The local stack is still running on http://127.0.0.1:$DEMAND_LOCAL_PORT.
  status:  $DEMAND local status
  stop:    $DEMAND local down
MSG
