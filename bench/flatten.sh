#!/usr/bin/env bash
# Ingest benchmark: ferry flatten and validate against the parse floor, on the same files and threads.
#
# Generates a large and a small dump (default 100,000 and 10,000 accounts), then measures,
# best of $RUNS interleaved runs each:
#   ignored   serde_json into IgnoredAny: syntax only, the absolute floor
#   typed     serde_json into derived structs of the whole payload
#   flatten*  ferry's flattener into Arrow batches, nothing written
#   ferry     `ferry flatten`: the whole command, Parquet files written
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
# and reports wall seconds, accounts/s, MB/s, peak RSS, and each mode's speed relative to the
# typed floor. Needs GNU time (/usr/bin/time, Debian package `time`) for peak RSS.
#
# Usage: bench/flatten.sh            (ACCOUNTS, SMALL, THREADS, RUNS, MODES, WORK override defaults)
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS=${ACCOUNTS:-100000}
SMALL=${SMALL-10000}  # SMALL= (empty) measures only ACCOUNTS
THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-3}
MODES=${MODES:-ignored typed flatten ferry validate validate+out stage restage create-dry create}
WORK=${WORK:-$(mktemp -d /tmp/ferry-bench.XXXXXX)}
TIME=/usr/bin/time
mkdir -p "$WORK"
[ -x "$TIME" ] || { echo "bench: GNU time is needed for peak RSS (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet --bin ferry --example parse_floor
FERRY=${FERRY:-target/release/ferry}  # FERRY=path/to/other/ferry compares another build
FLOOR=target/release/examples/parse_floor

echo "# ferry flatten benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $THREADS threads, best of $RUNS" >&2
for n in $SMALL $ACCOUNTS; do
  dump="$WORK/dump-$n.ndjson"
  if [ ! -f "$dump" ]; then
    start=$(date +%s.%N)
    "$FERRY" generate --accounts "$n" --seed 1 --error-rate 0.02 --out "$dump" 2>/dev/null
    echo "generated $n accounts in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
  fi
done

# measure MODE DUMP -> "seconds rss_kb"
measure() {
  local mode=$1 dump=$2 out="$WORK/out"
  rm -rf "$out"
  case $mode in
    ferry) "$TIME" -f "%e %M" -o "$WORK/time" "$FERRY" flatten "$dump" --out "$out" --threads "$THREADS" 2>/dev/null || true ;;
    validate) "$TIME" -f "%e %M" -o "$WORK/time" "$FERRY" validate "$dump" --threads "$THREADS" 2>/dev/null || true ;;
    validate+out) "$TIME" -f "%e %M" -o "$WORK/time" "$FERRY" validate "$dump" --out "$out" --threads "$THREADS" 2>/dev/null || true ;;
    stage) rm -rf "$WORK/wd"
      "$TIME" -f "%e %M" -o "$WORK/time" "$FERRY" stage "$dump" --workdir "$WORK/wd" --threads "$THREADS" 2>/dev/null || true ;;
    restage) "$TIME" -f "%e %M" -o "$WORK/time" "$FERRY" stage "$dump" --workdir "$WORK/wd" --threads "$THREADS" 2>/dev/null || true ;;
    create|create-dry)
      local staged="$WORK/wd-staged-$(basename "$dump" .ndjson)" flag=""
      if [ ! -f "$staged/ferry.db" ]; then
        "$FERRY" stage "$dump" --workdir "$staged" >/dev/null 2>&1 || true
        "$FERRY" team add Bench --workdir "$staged" >/dev/null 2>&1
      fi
      rm -rf "$WORK/wd-create"; cp -r "$staged" "$WORK/wd-create"
      [ "$mode" = create-dry ] && flag=--dry-run
      "$TIME" -f "%e %M" -o "$WORK/time" bash -c '
        for s in $("$0" supplier list --json --workdir "$1" | sed -n "s/.*\"code\":\"\([A-Z_0-9]*\)\".*/\1/p"); do
          "$0" create --supplier "$s" --team Bench --all-pending $2 --workdir "$1" >/dev/null 2>&1 || true
        done' "$FERRY" "$WORK/wd-create" "$flag" ;;
    run) rm -rf "$WORK/wd-run"
      printf 'name = "bench"\nworkdir = "wd-run"\nstages = ["validate", "stage", "create"]\n[source]\npaths = ["%s"]\n[create]\nteam = "Bench"\ncreate_team = true\n' \
        "$(basename "$dump")" > "$WORK/bench-pipeline.toml"
      "$TIME" -f "%e %M" -o "$WORK/time" "$FERRY" run "$WORK/bench-pipeline.toml" --threads "$THREADS" 2>/dev/null || true ;;
    *) "$TIME" -f "%e %M" -o "$WORK/time" "$FLOOR" "$dump" "$mode" "$THREADS" >/dev/null ;;
  esac
  tail -n 1 "$WORK/time"  # GNU time notes a non-zero exit (findings) on a line before
}

printf '\n| accounts | MB | mode | wall s | accounts/s | MB/s | vs typed | peak RSS MB |\n'
printf '|---:|---:|---|---:|---:|---:|---:|---:|\n'
for n in $SMALL $ACCOUNTS; do
  dump="$WORK/dump-$n.ndjson"
  mb=$(echo "scale=1; $(stat -c %s "$dump") / 1000000" | bc)
  declare -A best=() rss=()
  for _ in $(seq "$RUNS"); do
    for mode in $MODES; do
      read -r secs kb < <(measure "$mode" "$dump")
      if [ -z "${best[$mode]:-}" ] || [ "$(echo "$secs < ${best[$mode]}" | bc)" = 1 ]; then best[$mode]=$secs; fi
      if [ -z "${rss[$mode]:-}" ] || [ "$kb" -gt "${rss[$mode]}" ]; then rss[$mode]=$kb; fi
    done
  done
  for mode in $MODES; do
    secs=${best[$mode]}
    label=$mode
    [ "$mode" = flatten ] && label="flatten (no write)"
    [ "$mode" = ferry ] && label="ferry flatten"
    [ "$mode" = validate ] && label="ferry validate"
    [ "$mode" = validate+out ] && label="ferry validate --out"
    [ "$mode" = stage ] && label="ferry stage (fresh)"
    [ "$mode" = restage ] && label="ferry stage (again, all 200)"
    [ "$mode" = create ] && label="ferry create (every supplier)"
    [ "$mode" = create-dry ] && label="ferry create --dry-run"
    [ "$mode" = run ] && label="ferry run (validate, stage, create, report)"
    vs_typed=-
    [ -n "${best[typed]:-}" ] && vs_typed=$(printf '%.2f' "$(echo "${best[typed]} / $secs" | bc -l)")
    printf '| %s | %s | %s | %.2f | %.0f | %.0f | %s | %.0f |\n' "$n" "$mb" "$label" "$secs" \
      "$(echo "$n / $secs" | bc -l)" "$(echo "$mb / $secs" | bc -l)" \
      "$vs_typed" "$(echo "${rss[$mode]} / 1024" | bc -l)"
  done
  unset best rss
done
echo "(work files in $WORK)" >&2
