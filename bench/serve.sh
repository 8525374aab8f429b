#!/usr/bin/env bash
# ferry serve under load, beside the CLI on the same accounts in the same run (loopback only).
#
#   validate  POST validate-account/ at 1, 8 and 40 clients, beside `ferry validate` of the same
#             accounts as a dump (accounts/s)
#   create    POST process/ at 40 clients for every staged account, beside `ferry create
#             --all-pending` on a copy of the same staged work directory
# and the server's peak RSS. The load generator is examples/serve_load.rs (Rust, so that the
# client takes little of the cores the server shares); GNU time (/usr/bin/time) gives peak RSS.
#
# Usage: bench/serve.sh          (ACCOUNTS, default 2000, and WORK override defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS=${ACCOUNTS:-2000}
WORK=${WORK:-$(mktemp -d)}
FERRY=${FERRY:-target/release/ferry}
[ -n "${FERRY_SKIP_BUILD:-}" ] || cargo build --release --quiet --bin ferry --example serve_load
LOAD=${LOAD:-target/release/examples/serve_load}
mkdir -p "$WORK"
DUMP="$WORK/accounts.ndjson"
"$FERRY" generate --accounts "$ACCOUNTS" --seed 13 --error-rate 0 --out "$DUMP" 2>/dev/null
SUPPLIERS=$(python3 -c "import json,sys; print(' '.join(sorted({json.loads(l)['import_supplier'] for l in open(sys.argv[1])})))" "$DUMP")

serve() {  # serve WORKDIR: starts a server, sets PID and BASE
  local log="$WORK/serve.log"
  /usr/bin/time -f "%M" -o "$WORK/serve.rss" "$FERRY" serve --workdir "$1" --listen 127.0.0.1:0 --today 2026-11-27 2>"$log" &
  PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
  BASE=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
}
# SIGTERM to ferry itself (GNU time, its parent, does not pass signals on).
stop() { pkill -TERM -P "$PID"; wait "$PID" || true; echo "server peak RSS $(( $(cat "$WORK/serve.rss") / 1024 )) MB"; }

echo "== validate: $ACCOUNTS accounts"
# The endpoint answers each account's outcome body: --emit outcomes is the same work in bulk;
# --emit none (findings only, no bodies) is the fastest bulk mode.
for emit in none outcomes; do
  START=$(date +%s.%N)
  "$FERRY" validate "$DUMP" --emit "$emit" --today 2026-11-27 >/dev/null 2>&1 || true
  echo "ferry validate --emit $emit (dump): $(python3 -c "print(round($ACCOUNTS / ($(date +%s.%N) - $START), 1))") accounts/s"
done
KEY=$("$FERRY" token add bench --role importer --workdir "$WORK/v" 2>/dev/null)
serve "$WORK/v"
for clients in 1 8 40; do
  "$LOAD" "$BASE" "$KEY" /v1/data-import/validate-account/ "$DUMP" "$clients"
done
stop

echo "== create: $ACCOUNTS accounts, 40 clients"
"$FERRY" stage "$DUMP" --workdir "$WORK/s" --today 2026-11-27 2>/dev/null
"$FERRY" team add Migration --workdir "$WORK/s" 2>/dev/null
cp -r "$WORK/s" "$WORK/cli"
START=$(date +%s.%N)
for s in $SUPPLIERS; do
  "$FERRY" create --all-pending --supplier "$s" --team Migration --workdir "$WORK/cli" --today 2026-11-27 2>/dev/null
done
echo "ferry create (CLI): $(python3 -c "print(round($ACCOUNTS / ($(date +%s.%N) - $START), 1))") accounts/s"
KEY=$("$FERRY" token add bench --role importer --workdir "$WORK/s" 2>/dev/null)
python3 - "$DUMP" > "$WORK/creates.ndjson" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    a = json.loads(line)
    print(json.dumps({"external_account_number": a["external_account_number"], "import_supplier_code": a["import_supplier"],
                      "operations_team_name": "Migration", "dry_run": False}))
PY
serve "$WORK/s"
"$LOAD" "$BASE" "$KEY" /v1/data-import/account-import-process/process/ "$WORK/creates.ndjson" 40
stop
