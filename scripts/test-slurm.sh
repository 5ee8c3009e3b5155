#!/usr/bin/env bash
# End-to-end test of a sharded sweep on a private one-node Slurm cluster.
#
#   scripts/test-slurm.sh [--compare-unsharded] BASIN_BIN SWEEP_FILE [OUT_DIR]
#
# Starts Slurm with scripts/setup-slurm.sh, submits experiments/sweep.sbatch as a job array
# (--wait), checks that every task wrote OUT_DIR/shard-<I>-of-<N>/results.{parquet,csv},
# merges the shards with `basin merge` into OUT_DIR/merged and checks that the merged CSV
# holds as many rows as the shards together. With --compare-unsharded it also runs the
# whole sweep in one process and requires the merged CSV to be byte-identical to it.
# OUT_DIR defaults to a new directory under /tmp and is kept for inspection.
# Exits non-zero on any failure; stops Slurm at the end unless it was already running.
#
# Environment: BASIN_SLURM_ARRAY (default 0-3), BASIN_SLURM_CPUS (default 1),
# BASIN_SLURM_TIMEOUT_S (default 1800, the limit on the whole job array).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${BASIN_SLURM_DIR:-/tmp/basin-slurm}"
ARRAY="${BASIN_SLURM_ARRAY:-0-3}"
CPUS="${BASIN_SLURM_CPUS:-1}"
TIMEOUT_S="${BASIN_SLURM_TIMEOUT_S:-1800}"

log() { printf 'test-slurm: %s\n' "$*" >&2; }
die() { printf 'test-slurm: FAIL: %s\n' "$*" >&2; exit 1; }
rows() { tail -n +2 "$1" | wc -l; }  # data rows of a CSV with one header line

compare=0
if [[ "${1:-}" == --compare-unsharded ]]; then compare=1; shift; fi
(($# == 2 || $# == 3)) || {
    echo "usage: $0 [--compare-unsharded] BASIN_BIN SWEEP_FILE [OUT_DIR]" >&2
    exit 2
}
BIN="$(realpath "$1")"
SWEEP="$(realpath "$2")"
OUT="${3:-$(mktemp -d /tmp/basin-slurm-test.XXXXXX)}"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
[[ -x "$BIN" ]] || die "not an executable: $BIN"
[[ -f "$SWEEP" ]] || die "no such sweep file: $SWEEP"
if compgen -G "$OUT/shard-*" >/dev/null || [[ -e "$OUT/merged" ]]; then
    die "$OUT already holds shard or merged output; give an empty OUT_DIR"
fi

# Start Slurm; stop it on exit only if this script started it.
was_running=0
[[ -f "$DIR/slurmctld.pid" ]] && kill -0 "$(<"$DIR/slurmctld.pid")" 2>/dev/null && was_running=1
((was_running)) || trap '"$REPO/scripts/stop-slurm.sh" || true' EXIT
eval "$("$REPO/scripts/setup-slurm.sh" | grep '^export SLURM_CONF=')"
[[ -n "${SLURM_CONF:-}" ]] || die "setup-slurm.sh printed no SLURM_CONF"

# The job array.
mkdir -p "$OUT/slurm"
log "sbatch --array=$ARRAY experiments/sweep.sbatch (sweep $SWEEP, out $OUT)"
t0=$(date +%s)
rc=0
timeout "$TIMEOUT_S" sbatch --wait --array="$ARRAY" --cpus-per-task="$CPUS" \
    --chdir="$REPO" --output="$OUT/slurm/%x-%A_%a.out" \
    --export="ALL,SWEEP=$SWEEP,OUT=$OUT,BASIN_BIN=$BIN" \
    "$REPO/experiments/sweep.sbatch" >&2 || rc=$?
for f in "$OUT"/slurm/*.out; do
    [[ -f "$f" ]] && { printf -- '--- %s\n' "${f#"$OUT"/}" >&2; cat "$f" >&2; }
done
((rc == 0)) || die "job array failed (sbatch --wait exit status $rc; 124 = timeout after ${TIMEOUT_S} s)"
log "job array finished in $(($(date +%s) - t0)) s"

# One shard directory per task, all with the same N and complete outputs.
shopt -s nullglob
shards=("$OUT"/shard-*-of-*)
((${#shards[@]})) || die "no shard directories in $OUT"
n="${shards[0]##*-of-}"
((${#shards[@]} == n)) || die "found ${#shards[@]} shard directories, expected $n: ${shards[*]##*/}"
total=0
for s in "${shards[@]}"; do
    [[ "${s##*-of-}" == "$n" ]] || die "shard count differs: ${s##*/} vs $n"
    for f in results.parquet results.csv; do
        [[ -s "$s/$f" ]] || die "missing or empty $s/$f"
    done
    total=$((total + $(rows "$s/results.csv")))
done
log "$n shards, $total result rows"

# Merge and check.
"$BIN" merge "${shards[@]}" --out "$OUT/merged" || die "basin merge failed"
for f in results.parquet results.csv; do
    [[ -s "$OUT/merged/$f" ]] || die "basin merge wrote no $OUT/merged/$f"
done
merged=$(rows "$OUT/merged/results.csv")
((merged == total)) || die "merged CSV has $merged rows, the shards $total"

if ((compare)); then
    log "running the sweep unsharded for comparison"
    (cd "$REPO" && env -u SLURM_ARRAY_TASK_ID -u SLURM_ARRAY_TASK_COUNT \
        "$BIN" sweep "$SWEEP" --out "$OUT/unsharded" --jobs "$(nproc)") ||
        die "unsharded basin sweep failed"
    cmp "$OUT/unsharded/results.csv" "$OUT/merged/results.csv" ||
        die "merged results differ from the unsharded run"
    log "merged results.csv is byte-identical to the unsharded run"
fi
log "PASS: $n shards merged into $OUT/merged ($merged rows)"
