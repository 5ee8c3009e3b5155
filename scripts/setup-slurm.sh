#!/usr/bin/env bash
# Start a private single-node Slurm cluster on this machine, for testing job arrays.
#
#   eval "$(scripts/setup-slurm.sh | grep '^export ')"   # or copy the printed export line
#   sbatch --array=0-3 --wait experiments/sweep.sbatch
#   scripts/stop-slurm.sh
#
# Debian 12's slurm-wlm 22.05 + munge, run as root (the recipe in /work/shared/STACK.md):
# apt-installs the packages when missing, makes a munge key when there is none, starts
# munged when no munge daemon answers, writes a private slurm.conf under $BASIN_SLURM_DIR
# (default /tmp/basin-slurm: state, spool, pid and log files all live there), starts
# slurmctld and slurmd on private ports (16817/16818; override with BASIN_SLURM_PORT_CTLD /
# BASIN_SLURM_PORT_D) and waits (BASIN_SLURM_WAIT_S, default 30 s) until `sinfo` shows the
# node idle. Nothing touches /etc/slurm or a system Slurm; every command needs
# SLURM_CONF=$BASIN_SLURM_DIR/slurm.conf, which the script prints last.
#
# Idempotent: when both daemons from an earlier run are alive and answer, it only prints the
# export line. scripts/stop-slurm.sh stops what this script started.
set -euo pipefail

DIR="${BASIN_SLURM_DIR:-/tmp/basin-slurm}"
CONF="$DIR/slurm.conf"
PORT_CTLD="${BASIN_SLURM_PORT_CTLD:-16817}"
PORT_D="${BASIN_SLURM_PORT_D:-16818}"
WAIT_S="${BASIN_SLURM_WAIT_S:-30}"
NODE="$(hostname -s)"
export SLURM_CONF="$CONF"

log() { printf 'setup-slurm: %s\n' "$*" >&2; }
die() { printf 'setup-slurm: error: %s\n' "$*" >&2; exit 1; }
alive() { [[ -f "$1" ]] && kill -0 "$(<"$1")" 2>/dev/null; }
node_state() { timeout 5 sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1; }
show_logs() {
    local f
    for f in "$DIR/slurmctld.log" "$DIR/slurmd.log"; do
        [[ -f "$f" ]] && { printf -- '--- tail of %s\n' "$f" >&2; tail -n 15 "$f" >&2; }
    done
    return 0
}

((EUID == 0)) || die "run as root: this private cluster uses SlurmUser=root"

# Already running with this configuration?
if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" &&
    [[ "$(node_state)" =~ ^(idle|mix|alloc|comp) ]]; then
    log "already running (node $NODE: $(node_state))"
    echo "export SLURM_CONF=$CONF"
    exit 0
fi

# Packages.
missing=()
for pkg in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]} (apt-get update first)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# Munge: a key, and a daemon that answers.
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p "$DIR"
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    install -d -o munge -g munge -m 755 /run/munge
    # munge's own directories; a munged once run as root may have left root-owned files.
    chown -R munge:munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged --force || # as the munge user, like Debian's systemd unit
        die "munged failed to start (see /var/log/munge/munged.log)"
    touch "$DIR/munged.started-here"  # so stop-slurm.sh stops it again
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# Leftovers from a half-started or crashed run.
for d in slurmctld slurmd; do
    if alive "$DIR/$d.pid"; then
        log "stopping stale $d (pid $(<"$DIR/$d.pid"))"
        kill "$(<"$DIR/$d.pid")" || true
        sleep 1
    fi
done
for port in "$PORT_CTLD" "$PORT_D"; do  # (checked only where iproute2's ss exists)
    ! command -v ss >/dev/null || ! ss -Hltn "sport = :$port" | grep -q . ||
        die "port $port is in use by another process (set BASIN_SLURM_PORT_CTLD/BASIN_SLURM_PORT_D)"
done

# Configuration: the node exactly as `slurmd -C` detects it, one default partition.
mkdir -p "$DIR/state" "$DIR/spool"
node_line="$(slurmd -C | grep -m1 '^NodeName=')" ||
    die "'slurmd -C' printed no NodeName line"
[[ "$node_line" =~ CPUs=([0-9]+) ]] || die "no CPUs in 'slurmd -C' output: $node_line"
cpus=${BASH_REMATCH[1]}
cat >"$CONF.tmp" <<EOF
# Private single-node cluster written by scripts/setup-slurm.sh; SLURM_CONF=$CONF
ClusterName=basin
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT_CTLD
SlurmdPort=$PORT_D
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.tmp" "$CONF"

log "starting slurmctld and slurmd (conf $CONF, logs in $DIR)"
rm -f "$DIR/slurmctld.pid" "$DIR/slurmd.pid"
slurmctld -f "$CONF" || { show_logs; die "slurmctld failed to start"; }
slurmd -f "$CONF" || { show_logs; die "slurmd failed to start"; }

state=""
for ((i = 0; i < WAIT_S * 2; i++)); do
    state="$(node_state)"
    [[ "$state" == idle ]] && break
    sleep 0.5
done
if [[ "$state" != idle ]]; then
    show_logs
    die "node $NODE not idle after ${WAIT_S} s (sinfo state: '${state:-no answer}');" \
        "daemons left running for inspection, scripts/stop-slurm.sh stops them"
fi
log "node $NODE idle with $cpus CPUs; stop with scripts/stop-slurm.sh"
echo "export SLURM_CONF=$CONF"
