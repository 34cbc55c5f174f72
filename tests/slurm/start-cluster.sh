#!/bin/bash
# Start a one-node SLURM cluster on this machine for the tests (root only).
#   tests/slurm/start-cluster.sh [STATE_DIR]     (default /tmp/mpirl-slurm)
# Installs slurm-wlm and munge with apt-get if missing, writes STATE_DIR/slurm.conf naming this
# host (auth/munge, proctrack/linuxproc, task/none, select/cons_tres, no accounting, CPUs=8 with
# SlurmdParameters=config_overrides so jobs may oversubscribe the cores), starts munged, slurmctld
# and slurmd, and waits until the node is idle. Prints `export SLURM_CONF=...` on success.
# Exit status: 0 started; 77 cannot (reason on stderr: not root, no apt, install or daemon failure).
# Stop with tests/slurm/stop-cluster.sh STATE_DIR.
set -uo pipefail
dir=${1:-/tmp/mpirl-slurm}
skip() { echo "start-cluster: cannot start SLURM: $*" >&2; exit 77; }

[[ $(id -u) -eq 0 ]] || skip "not root (the daemons and apt-get need root)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
        || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || skip "slurm-wlm/munge missing and apt-get unavailable"
    echo "start-cluster: installing slurm-wlm and munge with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends slurm-wlm munge >"$dir.apt.log" 2>&1 \
        || { apt-get update -q >>"$dir.apt.log" 2>&1 && \
             apt-get install -y -q --no-install-recommends slurm-wlm munge >>"$dir.apt.log" 2>&1; } \
        || skip "apt-get install slurm-wlm munge failed (see $dir.apt.log)"
fi

host=$(hostname -s)
mkdir -p "$dir"/{state,spool,log}
cat >"$dir/slurm.conf" <<CONF
ClusterName=mpirltest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=30
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldPort=${MPIRL_SLURMCTLD_PORT:-6817}
SlurmdPort=${MPIRL_SLURMD_PORT:-6818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
MinJobAge=600
NodeName=$host CPUs=8 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$dir/slurm.conf

# munge: a key, then the daemon (--force: runs as root and ignores a stale socket).
if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null 2>&1
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; fi
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    munged --force >"$dir/log/munged.out" 2>&1 || skip "munged failed to start (see $dir/log/munged.out)"
    sleep 0.5
    munge -n | unmunge >/dev/null 2>&1 || skip "munge credentials do not round-trip"
    touch "$dir/munged.started-by-us"
fi

slurmctld -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 || skip "slurmctld failed (see $dir/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 || skip "slurmd failed (see $dir/log/slurmd.log)"
for _ in $(seq 1 60); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n1)
    if [[ "$state" == idle* ]]; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
skip "node $host did not become idle within 30 s (state '${state:-none}'; see $dir/log/)"
