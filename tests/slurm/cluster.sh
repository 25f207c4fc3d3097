#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py:
#   tests/slurm/cluster.sh install   Debian's slurm-wlm and munge (needs root and apt-get)
#   tests/slurm/cluster.sh start     write the SLURM config, start munged, slurmctld, slurmd; wait for the node
#   tests/slurm/cluster.sh stop      stop the daemons this script started, and remove the config it wrote
# Job steps find the cluster only through /etc/slurm/slurm.conf, so the config goes there.
#
# Safe on a host with a real SLURM: it refuses to touch a slurm.conf that does not
# start with its marker line, and it stops only daemons whose pid files it holds
# (never by name: that would stop a real cluster's daemons too).
# SLURM_CONF (SLURM's own variable) and EPOCHBENCH_SLURM_STATE move the config and
# the state folder, for the tests of this script itself.
set -euo pipefail
STATE=${EPOCHBENCH_SLURM_STATE:-/tmp/epochbench-slurm}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARKER="# Written by epochbench tests/slurm/cluster.sh: a one-node test cluster."

ours() {  # the config is absent, or this script wrote it
    [ ! -e "$CONF" ] || [ "$(head -n 1 "$CONF")" = "$MARKER" ]
}

refuse_unless_ours() {
    if ! ours; then
        echo "cluster.sh: $CONF was not written by this script (no marker line); refusing to touch this host's SLURM" >&2
        exit 3
    fi
}

pid_of() {  # the pid in our pid file for daemon $1, if that process is still that daemon
    local file="$STATE/$1.pid" pid
    [ -s "$file" ] || return 1
    pid=$(cat "$file")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

running() {  # whether process $1 exists and is not a zombie
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d ' ' -f 1)
    [ -n "$state" ] && [ "$state" != Z ]
}

start_daemon() {  # $1: name; the rest: the command that starts it (it daemonizes)
    local name=$1 pid
    shift
    pid_of "$name" >/dev/null && return 0  # ours, from an earlier start
    if pid=$(pgrep -x "$name"); then
        if [ "$name" = munged ]; then return 0; fi  # the host's own munged: use it, never stop it
        echo "cluster.sh: a $name this script did not start is running (pid $pid); refusing to start another" >&2
        exit 3
    fi
    "$@"
}

case "${1:-}" in
install)
    command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null && exit 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; }
    ;;
start)
    refuse_unless_ours
    mkdir -p "$STATE"/{spool,state,log} "$(dirname "$CONF")" /run/munge /var/log/munge /var/lib/munge
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > "$CONF.tmp" <<CONF
$MARKER
ClusterName=epochbench
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmdSpoolDir=$STATE/spool
StateSaveLocation=$STATE/state
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    chmod 644 "$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    [ -s /etc/munge/munge.key ] || mungekey --create --force
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    start_munged() {
        runuser -u munge -- munged 2>/dev/null || munged --force
        cp /run/munge/munged.pid "$STATE/munged.pid"  # munged writes its pid there; kept with ours
    }
    start_daemon munged start_munged
    start_daemon slurmctld slurmctld
    start_daemon slurmd slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then exit 0; fi
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "SLURM node did not come up; see $STATE/log" >&2
    exit 1
    ;;
stop)
    for name in slurmd slurmctld munged; do
        if pid=$(pid_of "$name"); then
            kill "$pid"
            for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
        fi
        rm -f "$STATE/$name.pid"
    done
    if [ -e "$CONF" ] && ours; then rm -f "$CONF"; fi
    ;;
*)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
