#!/usr/bin/env bash
# Stop the private Slurm cluster started by scripts/setup-slurm.sh: cancels its jobs, stops
# slurmd and slurmctld (by their pid files under $BASIN_SLURM_DIR, default /tmp/basin-slurm)
# and munged if setup-slurm.sh was the one that started it. Safe to run when nothing runs.
set -euo pipefail

DIR="${BASIN_SLURM_DIR:-/tmp/basin-slurm}"
export SLURM_CONF="$DIR/slurm.conf"

log() { printf 'stop-slurm: %s\n' "$*" >&2; }

stop_pid() {  # name pid
    local name=$1 pid=$2
    kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "$name did not exit in 10 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

if [[ -f "$DIR/slurmctld.pid" ]] && kill -0 "$(<"$DIR/slurmctld.pid")" 2>/dev/null; then
    jobs="$(timeout 5 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)"
    if [[ -n "${jobs// /}" ]]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 5 scancel $jobs 2>/dev/null || true
        sleep 1
    fi
fi

for d in slurmd slurmctld; do
    [[ -f "$DIR/$d.pid" ]] && stop_pid "$d" "$(<"$DIR/$d.pid")"
    rm -f "$DIR/$d.pid"
done

if [[ -f "$DIR/munged.started-here" ]]; then
    pid="$(cat /run/munge/munged.pid 2>/dev/null || true)"
    [[ -n "$pid" ]] && stop_pid munged "$pid"
    rm -f "$DIR/munged.started-here"
fi
log "stopped (state and logs kept in $DIR)"
