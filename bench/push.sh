#!/usr/bin/env bash
# ferry push against a local ferry serve (loopback only), beside `ferry create` of the same
# accounts in the same run:
#
#   push     validate + stage + create of every staged account, 40 in flight: accounts/s, the
#            client's wall time, CPU and peak RSS, and the server's CPU over the same interval
#   create   `ferry create --all-pending` on a copy of the same staged work directory
#
# The issue's target: the server, not the client, is the bottleneck (client CPU < 25 % of the
# server's) and the client's peak RSS < 200 MB. GNU time (/usr/bin/time) gives CPU and RSS;
# the server's CPU is read from /proc/PID/stat before and after.
#
# Usage: bench/push.sh          (ACCOUNTS, default 10000, and WORK override defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS=${ACCOUNTS:-10000}
WORK=${WORK:-$(mktemp -d)}
FERRY=${FERRY:-target/release/ferry}
[ -n "${FERRY_SKIP_BUILD:-}" ] || cargo build --release --quiet --bin ferry
mkdir -p "$WORK"
DUMP="$WORK/accounts.ndjson"
"$FERRY" generate --accounts "$ACCOUNTS" --seed 13 --error-rate 0 --out "$DUMP" 2>/dev/null
SUPPLIERS=$(python3 -c "import json,sys; print(' '.join(sorted({json.loads(l)['import_supplier'] for l in open(sys.argv[1])})))" "$DUMP")
TICKS=$(getconf CLK_TCK)

"$FERRY" stage "$DUMP" --workdir "$WORK/client" --today 2026-11-27 2>/dev/null
"$FERRY" team add Migration --workdir "$WORK/client" >/dev/null 2>&1
cp -r "$WORK/client" "$WORK/cli"

echo "== ferry create (CLI) of the same $ACCOUNTS staged accounts"
START=$(date +%s.%N)
for s in $SUPPLIERS; do
  "$FERRY" create --all-pending --supplier "$s" --team Migration --workdir "$WORK/cli" --today 2026-11-27 2>/dev/null
done
MB=$(python3 -c "import os; print(os.path.getsize('$DUMP') / 1e6)")
echo "ferry create: $(python3 -c "t = $(date +%s.%N) - $START; print(f'{$ACCOUNTS / t:.0f} accounts/s, {$MB / t:.1f} MB/s of the dump ({$MB:.0f} MB)')")"

echo "== ferry push to ferry serve: $ACCOUNTS accounts, validate + stage + create, 40 in flight"
"$FERRY" team add Migration --workdir "$WORK/server" >/dev/null 2>&1
"$FERRY" token add bench --role importer --workdir "$WORK/server" 2>/dev/null > "$WORK/key.txt"
"$FERRY" serve --workdir "$WORK/server" --listen 127.0.0.1:0 --today 2026-11-27 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break; sleep 0.1; done
BASE=$(grep -o 'http://[0-9.:]*' "$WORK/serve.log" | head -1)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
BEFORE=$(cpu "$SERVER")
START=$(date +%s.%N)
: > "$WORK/push.time"
for s in $SUPPLIERS; do
  /usr/bin/time -a -o "$WORK/push.time" -f "%e %U %S %M" "$FERRY" push --workdir "$WORK/client" --base-url "$BASE" \
    --supplier "$s" --team Migration --all-pending --token-file "$WORK/key.txt" 2>>"$WORK/push.log"
done
WALL=$(python3 -c "print($(date +%s.%N) - $START)")
AFTER=$(cpu "$SERVER")
kill -TERM "$SERVER"; wait "$SERVER" || true
python3 - "$WORK/push.time" "$ACCOUNTS" "$WALL" "$BEFORE" "$AFTER" "$TICKS" "$MB" <<'PY'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
accounts, wall = int(sys.argv[2]), float(sys.argv[3])
server_cpu = (float(sys.argv[5]) - float(sys.argv[4])) / float(sys.argv[6])
client_cpu = sum(r[1] + r[2] for r in rows)
rss = max(r[3] for r in rows) / 1024
mb = float(sys.argv[7])
print(f"ferry push: {accounts / wall:.0f} accounts/s ({3 * accounts / wall:.0f} requests/s, {mb / wall:.1f} MB/s of the dump), {wall:.1f} s")
print(f"client CPU {client_cpu:.1f} s, server CPU {server_cpu:.1f} s: client/server {client_cpu / server_cpu:.0%}")
print(f"client peak RSS {rss:.0f} MB")
PY
grep -h "accounts selected\|429s" "$WORK/push.log" | head -4
