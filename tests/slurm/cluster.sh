#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py:
#   tests/slurm/cluster.sh install   Debian's slurm-wlm and munge (needs root and apt-get)
#   tests/slurm/cluster.sh start     write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd; wait for the node
#   tests/slurm/cluster.sh stop      stop the daemons
# Job steps find the cluster only through /etc/slurm/slurm.conf, so the config goes there.
set -euo pipefail
STATE=/tmp/epochbench-slurm

case "${1:-}" in
install)
    command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null && exit 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; }
    ;;
start)
    mkdir -p "$STATE"/{spool,state,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > /etc/slurm/slurm.conf <<CONF
# Written by epochbench tests/slurm/cluster.sh: a one-node test cluster.
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
    [ -s /etc/munge/munge.key ] || mungekey --create --force
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    pgrep -x munged >/dev/null || runuser -u munge -- munged 2>/dev/null || munged --force
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then exit 0; fi
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "SLURM node did not come up; see $STATE/log" >&2
    exit 1
    ;;
stop)
    pkill -x slurmd || true
    pkill -x slurmctld || true
    ;;
*)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
