#!/usr/bin/env bash
# Ingest benchmark: ferry beside the honest parse floor and the polars and DuckDB peer scripts,
# on the same file, threads and machine, in one run (issue 15).
#
# Generates a dump (default 100,000 accounts, and 10,000), then measures, best of $RUNS
# interleaved runs each:
#   floor     ../shared/bench/floor: serde_json into borrowed typed structs, $THREADS threads,
#             nothing checked or written: what any Rust loader of this data pays
#   ferry     `ferry flatten`: Parquet tables written, no rules
#   validate  `ferry validate`: every rule, nothing written (summary only)
#   validate+out `ferry validate --out`: every rule, findings.parquet and outcomes.parquet
#             (every account's 200/400 body) written
#   stage     `ferry stage` into a fresh work directory: validate, typed staged Parquet,
#             quarantine, findings, one store transaction, outcomes.parquet
#   restage   `ferry stage` of the same file again into that work directory (all 200s and
#             no new versions, the nightly re-run)
#   create    `ferry create --all-pending` for every supplier, on a copy of a staged work
#             directory (the staging is not timed): read back, re-validate, write records
#   create-dry  the same with --dry-run: all the work, rolled back
#   run       `ferry run` of a pipeline (validate, stage, create, report, manifest) into a
#             fresh work directory: the nightly job end to end
#   polars    ../shared/bench/peers/polars_peer.py (lines + str.json_decode, 15 Parquet
#             tables, a dozen checks), when polars and pyarrow are importable
#   duckdb    ../shared/bench/peers/duckdb_peer.py (explicit schema, 15 Parquet tables, a
#             dozen checks), when duckdb is importable
# and reports wall seconds, accounts/s, MB/s, each mode's speed as a multiple of the floor's
# (1.00 = as fast as parsing alone), and peak RSS. Needs GNU time (/usr/bin/time).
#
# The floor must parse every line, or it is no floor: the generated dump is normalised to the
# floor's typed structs (payment schedule amounts as JSON numbers, `account_campaigns` always
# present; both as the spec allows), and the script stops if the floor still rejects a line.
#
# Usage: bench/flatten.sh   (ACCOUNTS, SMALL, THREADS, RUNS, MODES, WORK, PYTHON, SHARED override)
#   e.g. PYTHON=/work/venv/bin/python MODES="floor validate validate+out stage polars duckdb" bench/flatten.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS=${ACCOUNTS:-100000}
SMALL=${SMALL-10000}  # SMALL= (empty) measures only ACCOUNTS
THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-2}
MODES=${MODES:-floor ferry validate validate+out stage restage create-dry create polars duckdb}
for m in $MODES; do
  case $m in
    floor|ferry|validate|validate+out|stage|restage|create|create-dry|run|polars|duckdb) ;;
    *) echo "bench: unknown mode $m (modes: floor ferry validate validate+out stage restage create create-dry run polars duckdb)" >&2
      exit 2 ;;
  esac
done
WORK=${WORK:-$(mktemp -d /tmp/ferry-bench.XXXXXX)}
PYTHON=${PYTHON:-python3}
SHARED=${SHARED:-../shared/bench}
TIME=/usr/bin/time
mkdir -p "$WORK"
[ -x "$TIME" ] || { echo "bench: GNU time is needed for peak RSS (apt-get install time)" >&2; exit 2; }
[ -d "$SHARED/floor" ] || { echo "bench: the parse floor is not at $SHARED/floor (set SHARED)" >&2; exit 2; }

cargo build --release --quiet --bin ferry
(cd "$SHARED/floor" && cargo build --release --quiet --target-dir "$WORK/floor-target")
FERRY=${FERRY:-target/release/ferry}  # FERRY=path/to/other/ferry compares another build
FLOOR=$WORK/floor-target/release/ndjson-floor

# The peers run only where their libraries are installed.
peers=""
"$PYTHON" -c "import polars, pyarrow" 2>/dev/null && peers="$peers polars"
"$PYTHON" -c "import duckdb" 2>/dev/null && peers="$peers duckdb"
for m in polars duckdb; do
  if [[ " $MODES " == *" $m "* && " $peers " != *" $m "* ]]; then
    echo "bench: $m is not importable by $PYTHON: left out (pip install polars duckdb pyarrow)" >&2
    MODES=$(echo " $MODES " | sed "s/ $m / /")
  fi
done

echo "# ferry ingest benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $THREADS threads, best of $RUNS" >&2
for n in $SMALL $ACCOUNTS; do
  dump="$WORK/dump-$n.ndjson"
  if [ ! -f "$dump" ]; then
    "$FERRY" generate --accounts "$n" --seed 1 --error-rate 0 --out "$dump.raw" 2>/dev/null
    "$PYTHON" - "$dump.raw" "$dump" <<'PY'
import json, sys
with open(sys.argv[1], encoding="utf-8") as src, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in src:
        a = json.loads(line)
        for p in a.get("payment_schedules") or []:
            if isinstance(p.get("amount"), str):
                p["amount"] = float(p["amount"])
        a.setdefault("account_campaigns", [])
        out.write(json.dumps(a, ensure_ascii=False, separators=(",", ":")) + "\n")
PY
    rm -f "$dump.raw"
  fi
  report=$("$FLOOR" typed "$dump" "$THREADS")
  case $report in
    *" bad=0 "*) ;;
    *) echo "bench: the floor rejects lines of $dump, so it is no floor there: $report" >&2; exit 2 ;;
  esac
done

# ferry ARGS..., timed into $WORK/time. Exit 1 (accounts rejected) is a result; anything else
# stops the benchmark, which would otherwise time a failure as a very fast run.
timed_ferry() {
  local rc=0
  "$TIME" -f "%e %M" -o "$WORK/time" "$FERRY" "$@" >/dev/null 2>"$WORK/stderr" || rc=$?
  if [ "$rc" -gt 1 ]; then
    echo "bench: $FERRY $* failed (exit $rc):" >&2
    tail -n 5 "$WORK/stderr" >&2
    return 2
  fi
}

# measure MODE DUMP -> "seconds rss_kb"
measure() {
  local mode=$1 dump=$2 out="$WORK/out"
  rm -rf "$out"
  case $mode in
    ferry) timed_ferry flatten "$dump" --out "$out" --threads "$THREADS" || return 2 ;;
    validate) timed_ferry validate "$dump" --threads "$THREADS" || return 2 ;;
    validate+out) timed_ferry validate "$dump" --out "$out" --threads "$THREADS" || return 2 ;;
    stage) rm -rf "$WORK/wd"
      timed_ferry stage "$dump" --workdir "$WORK/wd" --threads "$THREADS" || return 2 ;;
    restage) timed_ferry stage "$dump" --workdir "$WORK/wd" --threads "$THREADS" || return 2 ;;
    create|create-dry)
      # Staged once per dump and per build (a newer build's store is refused by an older one).
      local build staged flag=""
      build=$(stat -c %Y-%s "$FERRY" | cksum | cut -d' ' -f1)
      staged="$WORK/wd-staged-$(basename "$dump" .ndjson)-$build"
      if [ ! -f "$staged/ferry.db" ]; then
        { "$FERRY" stage "$dump" --workdir "$staged" >/dev/null 2>&1 || [ $? -eq 1 ]; } &&
          "$FERRY" team add Bench --workdir "$staged" >/dev/null 2>&1 ||
          { echo "bench: staging $dump for create failed" >&2; rm -rf "$staged"; return 2; }
      fi
      rm -rf "$WORK/wd-create"; cp -r "$staged" "$WORK/wd-create"
      [ "$mode" = create-dry ] && flag=--dry-run
      "$TIME" -f "%e %M" -o "$WORK/time" bash -c '
        for s in $("$0" supplier list --json --workdir "$1" | sed -n "s/.*\"code\":\"\([A-Z_0-9]*\)\".*/\1/p"); do
          "$0" create --supplier "$s" --team Bench --all-pending $2 --workdir "$1" >/dev/null 2>"$1.stderr" \
            || [ $? -eq 1 ] || { echo "bench: create --supplier $s failed:" >&2; tail -n 5 "$1.stderr" >&2; exit 2; }
        done' "$FERRY" "$WORK/wd-create" "$flag" || return 2 ;;
    run) rm -rf "$WORK/wd-run"
      printf 'name = "bench"\nworkdir = "wd-run"\nstages = ["validate", "stage", "create"]\n[source]\npaths = ["%s"]\n[create]\nteam = "Bench"\ncreate_team = true\n' \
        "$(basename "$dump")" > "$WORK/bench-pipeline.toml"
      timed_ferry run "$WORK/bench-pipeline.toml" --threads "$THREADS" || return 2 ;;
    floor) "$TIME" -f "%e %M" -o "$WORK/time" "$FLOOR" typed "$dump" "$THREADS" >/dev/null || return 2 ;;
    polars) "$TIME" -f "%e %M" -o "$WORK/time" "$PYTHON" "$SHARED/peers/polars_peer.py" "$dump" "$out" --reader json_decode >/dev/null 2>&1 || return 2 ;;
    duckdb) "$TIME" -f "%e %M" -o "$WORK/time" "$PYTHON" "$SHARED/peers/duckdb_peer.py" "$dump" "$out" >/dev/null 2>&1 || return 2 ;;
  esac
  tail -n 1 "$WORK/time"  # GNU time notes a non-zero exit (findings) on a line before
}

printf '\n| accounts | MB | mode | wall s | accounts/s | MB/s | × floor | peak RSS MB |\n'
printf '|---:|---:|---|---:|---:|---:|---:|---:|\n'
for n in $SMALL $ACCOUNTS; do
  dump="$WORK/dump-$n.ndjson"
  mb=$(echo "scale=1; $(stat -c %s "$dump") / 1000000" | bc)
  declare -A best=() rss=()
  for _ in $(seq "$RUNS"); do
    for mode in $MODES; do
      timing=$(measure "$mode" "$dump") || { echo "bench: stopped at $mode on $dump" >&2; exit 2; }
      read -r secs kb <<< "$timing"
      if [ -z "${best[$mode]:-}" ] || [ "$(echo "$secs < ${best[$mode]}" | bc)" = 1 ]; then best[$mode]=$secs; fi
      if [ -z "${rss[$mode]:-}" ] || [ "$kb" -gt "${rss[$mode]}" ]; then rss[$mode]=$kb; fi
    done
  done
  for mode in $MODES; do
    secs=${best[$mode]}
    label=$mode
    [ "$mode" = floor ] && label="floor: serde_json into borrowed typed structs, $THREADS threads"
    [ "$mode" = polars ] && label="polars script (lines + str.json_decode, 15 Parquet tables, a dozen checks)"
    [ "$mode" = duckdb ] && label="DuckDB script (explicit schema, 15 Parquet tables, a dozen checks)"
    [ "$mode" = ferry ] && label="ferry flatten"
    [ "$mode" = validate ] && label="ferry validate"
    [ "$mode" = validate+out ] && label="ferry validate --out"
    [ "$mode" = stage ] && label="ferry stage (fresh)"
    [ "$mode" = restage ] && label="ferry stage (again, all 200)"
    [ "$mode" = create ] && label="ferry create (every supplier)"
    [ "$mode" = create-dry ] && label="ferry create --dry-run"
    [ "$mode" = run ] && label="ferry run (validate, stage, create, report)"
    vs_floor=-
    [ -n "${best[floor]:-}" ] && vs_floor=$(printf '%.2f' "$(echo "${best[floor]} / $secs" | bc -l)")
    printf '| %s | %s | %s | %.2f | %.0f | %.0f | %s | %.0f |\n' "$n" "$mb" "$label" "$secs" \
      "$(echo "$n / $secs" | bc -l)" "$(echo "$mb / $secs" | bc -l)" \
      "$vs_floor" "$(echo "${rss[$mode]} / 1024" | bc -l)"
  done
  unset best rss
done
echo "(work files in $WORK)" >&2
