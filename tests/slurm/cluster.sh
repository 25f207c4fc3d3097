#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py:
#   tests/slurm/cluster.sh check        exit 4 with one line if this host runs or is configured for SLURM
#   tests/slurm/cluster.sh install      Debian's slurm-wlm and munge (needs root and apt-get)
#   tests/slurm/cluster.sh start        start munged, slurmctld and slurmd in a fresh private folder and wait
#                                       for the node; prints "state: DIR" first, then "bin: DIR/bin" and
#                                       "conf: DIR/slurm.conf" last
#   tests/slurm/cluster.sh stop DIR     stop the daemons that `start` started in DIR, then remove DIR
#
# It runs as root, so it must not be steered by anyone else, nor disturb a real SLURM:
# - Everything it writes (config, munge key and socket, spool, state, logs, pid records) is in
#   a folder `mktemp -d` makes, owned by root and writable by root alone; nothing under /etc or
#   /run. Clients find the cluster through SLURM_CONF=DIR/slurm.conf, which sbatch passes on to
#   the jobs (--export=ALL). Snakemake's jobstep plugin drops every SLURM_* variable before its
#   nested `srun`, so DIR/bin (first on the jobs' PATH) holds an srun that sets it again.
# - Before it writes anything it refuses (exit 4, one line) where SLURM runs or is configured:
#   a running slurmctld, slurmd or slurmdbd, SLURM_CONF set, a slurm.conf in a standard place,
#   or a configless node's cached config.
# - It stops only the processes it started: their pid and start time are recorded when it
#   starts them, and a process is stopped only if both still match (never by name).
# - A failing `start` stops what it had started and removes its folder before it exits.
# EPOCHBENCH_SLURM_EXTRA_CONFS adds paths to the configurations looked for (for the tests of this script).
set -euo pipefail
umask 022
MARKER="# Written by epochbench tests/slurm/cluster.sh: a one-node test cluster."
HOST_CONFS="/etc/slurm/slurm.conf /etc/slurm-llnl/slurm.conf /usr/local/etc/slurm.conf /run/slurm/conf
    /var/spool/slurmd/conf-cache /var/spool/slurm/d/conf-cache /var/lib/slurm/slurmd/conf-cache
    ${EPOCHBENCH_SLURM_EXTRA_CONFS:-}"
# Stopped in this order: the node, the controller, then the authentication they use.
DAEMONS="slurmd slurmctld munged"

host_slurm() {  # prints why this host counts as a SLURM host, or fails if it does not
    local name pid path
    for name in slurmctld slurmd slurmdbd; do
        for pid in $(pgrep -x "$name"); do  # a zombie is no daemon: it only waits to be reaped
            if running "$pid"; then echo "runs $name (pid $pid)"; return 0; fi
        done
    done
    if [ -n "${SLURM_CONF:-}" ]; then echo "has SLURM_CONF set ($SLURM_CONF)"; return 0; fi
    for path in $HOST_CONFS; do
        if [ -e "$path" ] || [ -L "$path" ]; then echo "has a SLURM configuration ($path)"; return 0; fi
    done
    return 1
}

refuse_on_a_slurm_host() {
    local why
    if why=$(host_slurm); then
        echo "cluster.sh: this host $why; not starting a test cluster beside it" >&2
        exit 4
    fi
}

check_state() {  # $1: a state folder; fails with one line unless it is one `start` made
    local dir=$1 owner mode
    if [ -L "$dir" ] || [ ! -d "$dir" ]; then
        echo "cluster.sh: $dir is not a folder (or is a symlink); not touching it" >&2
        return 1
    fi
    owner=$(stat -c %u "$dir")
    mode=$(stat -c %a "$dir")
    if [ "$owner" != "$(id -u)" ] || { [ "$mode" != 700 ] && [ "$mode" != 711 ]; }; then
        echo "cluster.sh: $dir is owned by uid $owner with mode $mode, not uid $(id -u) with mode 700 or 711; not touching it" >&2
        return 1
    fi
    if [ -L "$dir/slurm.conf" ] || [ "$(head -n 1 "$dir/slurm.conf" 2>/dev/null)" != "$MARKER" ]; then
        echo "cluster.sh: $dir has no slurm.conf written by this script; not touching it" >&2
        return 1
    fi
}

start_time() {  # $1: a pid; the process's start time in clock ticks since boot (field 22 of /proc/PID/stat)
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d ' ' -f 20
}

started() {  # $1: name; $2: pid; record the process as ours
    echo "$2 $(start_time "$2")" > "$STATE/$1.started"
}

our_pid() {  # $1: name; the pid recorded for it, if that process is still the one we started
    local record="$STATE/$1.started" pid when
    [ -f "$record" ] && [ ! -L "$record" ] || return 1
    read -r pid when < "$record" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -n "$when" ] && [ "$(start_time "$pid")" = "$when" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] \
        && echo "$pid"
}

running() {  # whether process $1 exists and is not a zombie
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d ' ' -f 1)
    [ -n "$state" ] && [ "$state" != Z ]
}

launch() {  # $1: name; the rest: its command, in the foreground: its pid is $!, no pid file to trust
    local name=$1
    shift
    # A session of its own (setsid execs, it does not fork here), detached from the caller's pipes.
    setsid "$@" < /dev/null >> "$STATE/log/$name.out" 2>&1 &
    started "$name" $!
}

stop_all() {  # stop what `start` started in $STATE, then remove what it wrote there
    local name pid
    for name in $DAEMONS; do
        if pid=$(our_pid "$name"); then
            kill "$pid"
            for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
        fi
        rm -f "$STATE/$name.started"
    done
    # Only the names `start` creates: never a recursive removal of whatever folder was named.
    rm -rf "$STATE"/{spool,state,log,munge,run,bin}
    rm -f "$STATE/slurm.conf"
    rmdir "$STATE"
}

on_failed_start() {
    local code=$?
    if [ "$code" != 0 ]; then
        echo "cluster.sh: start failed; stopping what it started (logs were in $STATE/log):" >&2
        tail -n 5 "$STATE"/log/* >&2 2>/dev/null || true
        stop_all
    fi
}

case "${1:-}" in
check)
    refuse_on_a_slurm_host
    ;;
install)
    command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null && exit 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; }
    ;;
start)
    refuse_on_a_slurm_host
    STATE=$(mktemp -d -t epochbench-slurm.XXXXXXXX)
    trap on_failed_start EXIT
    trap 'exit 1' INT TERM HUP  # so that a signal, too, goes through on_failed_start
    echo "state: $STATE"
    # Others may pass through (a job submitted through sudo runs as its user, and reads the
    # config, the munge socket and its script in the spool) but neither list nor write.
    chmod 711 "$STATE"
    mkdir -m 755 "$STATE"/{spool,run,bin}
    mkdir -m 700 "$STATE"/{state,log,munge}
    CONF=$STATE/slurm.conf
    export SLURM_CONF=$CONF
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > "$CONF" <<CONF
$MARKER
ClusterName=epochbench
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/run/munge.socket
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
SlurmctldPidFile=$STATE/state/slurmctld.pid
SlurmdPidFile=$STATE/state/slurmd.pid
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    chmod 644 "$CONF"
    srun=$(command -v srun)
    printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$CONF" "$srun" > "$STATE/bin/srun"
    chmod 755 "$STATE/bin/srun"
    mungekey --create --keyfile "$STATE/munge/munge.key"
    launch munged munged --foreground --force --socket "$STATE/run/munge.socket" --key-file "$STATE/munge/munge.key" \
        --pid-file "$STATE/munge/munged.pid" --log-file "$STATE/log/munged.log" --seed-file "$STATE/munge/munged.seed"
    for _ in $(seq 50); do [ -S "$STATE/run/munge.socket" ] && break; sleep 0.1; done
    launch slurmctld slurmctld -D -f "$CONF"
    launch slurmd slurmd -D -f "$CONF"
    for _ in $(seq 60); do
        for name in $DAEMONS; do
            our_pid "$name" > /dev/null || { echo "cluster.sh: $name exited" >&2; exit 1; }
        done
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            trap - EXIT
            echo "bin: $STATE/bin"
            echo "conf: $CONF"
            exit 0
        fi
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "cluster.sh: the SLURM node did not come up within 60 s" >&2
    exit 1
    ;;
stop)
    STATE=${2:?usage: $0 stop STATE_FOLDER (the folder start printed)}
    [ -e "$STATE" ] || [ -L "$STATE" ] || exit 0  # nothing left: a failed start cleaned up after itself
    check_state "$STATE" || exit 3
    stop_all
    ;;
*)
    echo "usage: $0 check|install|start|stop STATE_FOLDER" >&2
    exit 2
    ;;
esac
