#!/usr/bin/env bash
# Create throughput on the shared PostgreSQL store beside the embedded SQLite store, in one run
# on one machine (issue 20).
#
# Generates a clean dump (default 4,000 accounts), stages it once per store, then times only
# the creation of every account:
#   sqlite     `ferry create --all-pending` for each supplier in turn, embedded store
#   pg-W       W create workers at once on one PostgreSQL database (W = 1, 2, 4): each has its
#              own work directory (a copy of the staged files, as W machines would) and its
#              share of every supplier's accounts (`--accounts FILE`, split round-robin), and the
#              workers of a supplier run at the same time
# The PostgreSQL server is a throwaway cluster of the machine's PostgreSQL (as the tests make
# it: unix socket, fsync off), sharing the cores with ferry. Reports wall seconds, accounts/s,
# the server's CPU seconds and the largest peak RSS of one ferry process per run.
#
# Then the same over HTTP: `ferry serve` on the embedded store, and 1 and 2 instances on one
# PostgreSQL (SERVE), each with its own work directory, the staged files shared through
# `--staging file://…` (the second instance fetches them); `examples/create_load.rs` sends one
# create per account with 40 in flight in all, spread over the instances, and retries a 429 after
# its Retry-After. Reports accounts/s, the 429s and each instance's peak RSS.
#
# Usage: bench/store.sh   (ACCOUNTS, WORKERS, SERVE, WORK, PGBIN override)
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS=${ACCOUNTS:-4000}
WORKERS=${WORKERS:-"1 2 4"}
SERVE=${SERVE:-"1 2"}
WORK=${WORK:-$(mktemp -d /tmp/ferry-store-bench.XXXXXX)}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
FERRY=$PWD/target/release/ferry
PORT=54331

cargo build --release --quiet
cargo build --release --quiet --example create_load
LOAD=$PWD/target/release/examples/create_load
[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL (initdb) found; set PGBIN" >&2; exit 2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

mkdir -p "$WORK/pg" && chmod 711 "$WORK"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U ferry --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
  -o "-c listen_addresses='' -k $WORK/pg -p $PORT -c fsync=off -c synchronous_commit=off -c max_connections=200" \
  start >/dev/null
trap 'as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
psql_() { psql -X -q -h "$WORK/pg" -p $PORT -U ferry "$@"; }
dsn() { echo "host=$WORK/pg port=$PORT user=ferry dbname=$1"; }
# CPU seconds (user + system) of every server process so far.
server_cpu() {
  local ticks=0 pid
  for pid in $(pgrep -u postgres -f "postgres" || true); do
    [ -r /proc/$pid/stat ] || continue
    ticks=$((ticks + $(awk '{print $14 + $15 + $16 + $17}' /proc/$pid/stat)))
  done
  echo "$ticks"
}

"$FERRY" generate --accounts "$ACCOUNTS" --seed 7 --error-rate 0 --out "$WORK/dump.ndjson" >/dev/null 2>&1
SUPPLIERS=$(grep -o '"import_supplier":"[A-Z_]*"' "$WORK/dump.ndjson" | cut -d'"' -f4 | sort -u)

# Runs a command, appending its peak RSS in KiB to $1 (GNU time; nothing without it).
timed() { local out=$1; shift; if [ -x /usr/bin/time ]; then /usr/bin/time -f %M -a -o "$out" "$@"; else "$@"; fi; }
peak_mb() { sort -n "$1" 2>/dev/null | tail -1 | awk '{ printf "%d", $1 / 1024 }'; }
printf '%-8s %8s %10s %12s %14s %14s\n' store workers "wall s" accounts/s "server CPU s" "peak RSS MB"

# SQLite: one workdir, suppliers in turn.
unset FERRY_STORE
"$FERRY" stage "$WORK/dump.ndjson" --workdir "$WORK/sqlite" >/dev/null 2>&1 || true
"$FERRY" team add Migration --workdir "$WORK/sqlite" >/dev/null 2>&1
start=$(date +%s.%N)
for s in $SUPPLIERS; do
  timed "$WORK/rss-sqlite" "$FERRY" create --supplier "$s" --team Migration --all-pending --workdir "$WORK/sqlite" 2>>"$WORK/sqlite.log" >/dev/null || true
done
end=$(date +%s.%N)
created=$(awk '$1 == 201 && $2 == "created" { n += $3 } END { print n + 0 }' "$WORK/sqlite.log")
awk -v s="$start" -v e="$end" -v n="$created" -v rss="$(peak_mb "$WORK/rss-sqlite")" \
  'BEGIN { w = e - s; printf "%-8s %8d %10.2f %12.0f %14s %14s\n", "sqlite", 1, w, n / w, "-", rss }'

for W in $WORKERS; do
  db=bench_$W
  psql_ -d postgres -c "CREATE DATABASE $db"
  export FERRY_STORE
  FERRY_STORE=$(dsn $db)
  "$FERRY" stage "$WORK/dump.ndjson" --workdir "$WORK/pg-$W-0" >/dev/null 2>&1 || true
  "$FERRY" team add Migration --workdir "$WORK/pg-$W-0" >/dev/null 2>&1
  for i in $(seq 1 $((W - 1))); do
    mkdir -p "$WORK/pg-$W-$i" && cp -r "$WORK/pg-$W-0/staging" "$WORK/pg-$W-$i/"
  done
  for s in $SUPPLIERS; do
    psql_ -d $db -At -c "SELECT external_account_number FROM import_processes
                         WHERE import_supplier = '$s' AND status = 'STAGED' ORDER BY 1" |
      awk -v w="$W" -v dir="$WORK" -v s="$s" -v W="$W" '{ print > (dir "/accounts-" W "-" s "-" (NR % w)) }'
  done
  cpu0=$(server_cpu)
  start=$(date +%s.%N)
  for s in $SUPPLIERS; do
    for i in $(seq 0 $((W - 1))); do
      f="$WORK/accounts-$W-$s-$i"
      [ -s "$f" ] || continue
      timed "$WORK/rss-pg-$W" "$FERRY" create --supplier "$s" --team Migration --accounts "$f" --concurrency $((40 / W)) \
        --workdir "$WORK/pg-$W-$i" >/dev/null 2>&1 &
    done
    wait
  done
  end=$(date +%s.%N)
  cpu1=$(server_cpu)
  created=$(psql_ -d $db -At -c "SELECT count(*) FROM import_processes WHERE status = 'IMPORTED'")
  awk -v s="$start" -v e="$end" -v n="$created" -v W="$W" -v cpu="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" \
    -v rss="$(peak_mb "$WORK/rss-pg-$W")" \
    'BEGIN { w = e - s; printf "%-8s %8d %10.2f %12.0f %14.1f %14s\n", "postgres", W, w, n / w, cpu / hz, rss }'
done

# ---- over HTTP: ferry serve ----
SERVERS=()
stop_servers() { for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; SERVERS=(); }
trap 'stop_servers; as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
# Starts `ferry serve` on work directory $1 and appends its base URL to URLS.
serve() {
  "$FERRY" serve --listen 127.0.0.1:0 --workdir "$1" >/dev/null 2>"$1.serve.log" &
  SERVERS+=($!)
  local url
  for _ in $(seq 1 200); do
    url=$(sed -n 's/^listening on //p' "$1.serve.log" | head -1)
    [ -n "$url" ] && { URLS+=("$url"); return; }
    sleep 0.05
  done
  echo "ferry serve on $1 did not start: $(cat "$1.serve.log")" >&2; exit 1
}
peak_rss_mb() { for p in "${SERVERS[@]}"; do awk '/VmHWM/ { printf "%d ", $2 / 1024 }' /proc/$p/status; done; }
# Times the load over the URLs given; prints the row.
load() {
  local label=$1 n=$2 accounts=$3 key=$4; shift 4
  local out cpu0 cpu1
  cpu0=$(server_cpu)
  out=$("$LOAD" "$accounts" "$key" 40 "$@")
  cpu1=$(server_cpu)
  awk -v l="$label" -v n="$n" -v o="$out" -v cpu="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" -v rss="$(peak_rss_mb)" '
    BEGIN { split(o, kv, " "); for (i in kv) { split(kv[i], p, "="); v[p[1]] = p[2] }
            printf "%-8s %8d %10.2f %12.0f %14s %6d  %s\n", l, n, v["wall_s"], v["accounts_per_s"],
                   (l == "sqlite" ? "-" : sprintf("%.1f", cpu / hz)), v["retried_429"], rss }'
  stop_servers
}

echo
printf '%-8s %8s %10s %12s %14s %6s  %s\n' "serve on" instances "wall s" accounts/s "server CPU s" 429s "peak RSS MB each"
unset FERRY_STORE FERRY_STAGING
wd="$WORK/serve-sqlite"
"$FERRY" stage "$WORK/dump.ndjson" --workdir "$wd" >/dev/null 2>&1 || true
"$FERRY" team add Migration --workdir "$wd" >/dev/null 2>&1
"$FERRY" token add bench --role importer --workdir "$wd" > "$WORK/sqlite.key" 2>/dev/null
sqlite3 -separator $'\t' "$wd/ferry.db" "SELECT import_supplier, external_account_number FROM import_processes
                                         WHERE status = 'STAGED' ORDER BY 2" > "$WORK/serve-accounts-sqlite"
URLS=()
serve "$wd"
load sqlite 1 "$WORK/serve-accounts-sqlite" "$WORK/sqlite.key" "${URLS[@]}"

for N in $SERVE; do
  db=serve_$N
  psql_ -d postgres -c "CREATE DATABASE $db"
  export FERRY_STORE FERRY_STAGING
  FERRY_STORE=$(dsn $db)
  FERRY_STAGING="file://$WORK/shared-$N"
  "$FERRY" stage "$WORK/dump.ndjson" --workdir "$WORK/serve-$N-0" >/dev/null 2>&1 || true
  "$FERRY" team add Migration --workdir "$WORK/serve-$N-0" >/dev/null 2>&1
  "$FERRY" token add bench --role importer --workdir "$WORK/serve-$N-0" > "$WORK/pg-$N.key" 2>/dev/null
  psql_ -d $db -At -F $'\t' -c "SELECT import_supplier, external_account_number FROM import_processes
                                WHERE status = 'STAGED' ORDER BY 2" > "$WORK/serve-accounts-$N"
  URLS=()
  for i in $(seq 0 $((N - 1))); do serve "$WORK/serve-$N-$i"; done
  load postgres "$N" "$WORK/serve-accounts-$N" "$WORK/pg-$N.key" "${URLS[@]}"
  created=$(psql_ -d $db -At -c "SELECT count(*) FROM import_processes WHERE status = 'IMPORTED'")
  [ "$created" = "$(wc -l < "$WORK/serve-accounts-$N")" ] || echo "  only $created of $(wc -l < "$WORK/serve-accounts-$N") imported" >&2
done
unset FERRY_STAGING
echo "($ACCOUNTS accounts, $(nproc) cores, $(date -u +%FT%TZ), work in $WORK)"
