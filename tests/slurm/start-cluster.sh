#!/bin/bash
# Start a SLURM cluster on this machine for the tests (root only).
#   tests/slurm/start-cluster.sh [--nodes N] [STATE_DIR]     (default /tmp/mpirl-slurm)
# Installs slurm-wlm and munge (and iproute2 for --nodes) with apt-get if missing, writes
# STATE_DIR/slurm.conf (auth/munge, proctrack/linuxproc, task/none, select/cons_tres, no accounting,
# SlurmdParameters=config_overrides so jobs may oversubscribe the cores), starts munged, slurmctld and slurmd, and waits until the nodes are
# idle. Prints `export SLURM_CONF=...` on success.
#
# Without --nodes (or --nodes 1): one node, this host, CPUs=8.
# With --nodes N (N >= 2): N emulated nodes mpirln1..mpirlnN, CPUs=4 each. Every node's slurmd runs in its
# own network, UTS (hostname) and mount namespace, joined to the host by a veth pair on a bridge
# (10.231.X.0/24), with a bind-mounted /etc/hosts naming all nodes and its own /dev/shm (MPI's shared
# memory segments are per node: a shared /dev/shm made same-named segments of two nodes collide); the
# rest of the filesystem stays shared, as on a cluster with a shared filesystem. Processes of a job see their node's hostname and network only, so MPI
# treats the nodes as separate hosts (traffic between them crosses the bridge when the MPI transport is
# TCP). Node 1 carries one GRES gpu whose device file is /dev/null: `--gpus=1` jobs schedule (on node 1),
# but no CUDA device exists.
# Exit status: 0 started; 77 cannot (reason on stderr: not root, no apt, no namespaces, daemon failure).
# Stop with tests/slurm/stop-cluster.sh STATE_DIR.
set -uo pipefail
nodes=1
if [[ "${1:-}" == --nodes ]]; then
    nodes=${2:?--nodes needs a count}
    shift 2
fi
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
if ((nodes > 1)); then
    if ! command -v ip >/dev/null && command -v apt-get >/dev/null; then
        echo "start-cluster: installing iproute2 with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iproute2 >>"$dir.apt.log" 2>&1 \
            || { apt-get update -q >>"$dir.apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q --no-install-recommends iproute2 >>"$dir.apt.log" 2>&1; }
    fi
    for tool in ip nsenter unshare; do
        command -v "$tool" >/dev/null || skip "emulated nodes need $tool (iproute2, util-linux)"
    done
    # Names and subnet derived from the state dir, so two clusters on one host do not collide.
    tag=$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
    net="10.231.$((tag % 250 + 1))"
    tag=$((tag % 10000))
    bridge="mpirl${tag}br"
    printf '%s\n' "$bridge" >"$dir/bridge"
    { ip link add "$bridge" type bridge && ip addr add "$net.1/24" dev "$bridge" && ip link set "$bridge" up; } \
        2>"$dir/log/net.err" || skip "cannot create the bridge $bridge: $(head -c 300 "$dir/log/net.err")"
    ctl="$host($net.1)"
    {
        printf '127.0.0.1 localhost\n%s.1 %s\n' "$net" "$host"
        for i in $(seq 1 "$nodes"); do printf '%s.%d mpirln%d\n' "$net" $((10 + i)) "$i"; done
    } >"$dir/hosts"
    node_lines=$(for i in $(seq 1 "$nodes"); do
        gres=""; ((i == 1)) && gres=" Gres=gpu:1"
        printf 'NodeName=mpirln%d NodeAddr=%s.%d NodeHostname=mpirln%d CPUs=4%s State=UNKNOWN\n' \
            "$i" "$net" $((10 + i)) "$i" "$gres"
    done)
    part_nodes="mpirln[1-$nodes]"
    printf 'NodeName=mpirln1 Name=gpu File=/dev/null\n' >"$dir/gres.conf"
    gres_types="GresTypes=gpu"
else
    ctl=$host
    node_lines="NodeName=$host CPUs=8 State=UNKNOWN"
    part_nodes=$host
    gres_types=""
fi
cat >"$dir/slurm.conf" <<CONF
ClusterName=mpirltest
SlurmctldHost=$ctl
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
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
MinJobAge=600
$gres_types
$node_lines
PartitionName=debug Nodes=$part_nodes Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
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
if ((nodes > 1)); then
    for i in $(seq 1 "$nodes"); do
        ns="mpirl${tag}n$i"
        mkdir -p "$dir/spool/mpirln$i"
        # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup tree slurmd needs.
        { ip netns add "$ns" && printf '%s\n' "$ns" >>"$dir/netns" \
            && ip link add "${ns}h" type veth peer name "${ns}c" && ip link set "${ns}c" netns "$ns" \
            && ip link set "${ns}h" master "$bridge" up \
            && nsenter --net="/run/netns/$ns" sh -c "ip link set lo up && ip addr add $net.$((10 + i))/24 \
                   dev ${ns}c && ip link set ${ns}c up"; } 2>>"$dir/log/net.err" \
            || skip "cannot create network namespace $ns: $(head -c 300 "$dir/log/net.err")"
        nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private sh -c \
            "hostname mpirln$i && mount --bind '$dir/hosts' /etc/hosts \
             && mount -t tmpfs -o mode=1777,size=4g mpirl-shm /dev/shm && exec slurmd -f '$SLURM_CONF' -N mpirln$i" \
            >"$dir/log/slurmd-mpirln$i.out" 2>&1 || skip "slurmd on mpirln$i failed (see $dir/log/)"
    done
else
    slurmd -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 || skip "slurmd failed (see $dir/log/slurmd-$host.log)"
fi
for _ in $(seq 1 60); do
    states=$(sinfo -h -N -o '%t' 2>/dev/null | sort -u | tr '\n' ' ')
    if [[ "$(sinfo -h -N -o '%N' 2>/dev/null | sort -u | wc -l)" -eq "$nodes" && "$states" == "idle " ]]; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
skip "the $nodes node(s) did not become idle within 30 s (states '${states:-none}'; see $dir/log/)"
