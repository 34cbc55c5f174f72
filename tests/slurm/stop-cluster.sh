#!/bin/bash
# Stop the test cluster started by start-cluster.sh: cancel jobs, stop the slurmd(s) and slurmctld (by the
# pids in their pid files), stop munged if start-cluster.sh started it, delete the emulated nodes' network
# namespaces and bridge if any, remove STATE_DIR.
#   tests/slurm/stop-cluster.sh [STATE_DIR]     (default /tmp/mpirl-slurm)
set -uo pipefail
dir=${1:-/tmp/mpirl-slurm}
export SLURM_CONF=$dir/slurm.conf
if [[ -f "$SLURM_CONF" ]]; then
    scancel --full --quiet --user=root 2>/dev/null || true
    scontrol shutdown >/dev/null 2>&1 || true
fi
stop_pid() {  # pidfile: TERM, wait up to 10 s, then KILL
    [[ -f "$1" ]] || return 0
    local pid
    pid=$(cat "$1")
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || return 0
        kill -TERM "$pid" 2>/dev/null
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
}
for pidfile in "$dir"/slurmd*.pid; do
    stop_pid "$pidfile"
done
stop_pid "$dir/slurmctld.pid"
if [[ -f "$dir/munged.started-by-us" ]]; then
    stop_pid /run/munge/munged.pid
fi
if [[ -f "$dir/netns" ]]; then
    while read -r ns; do
        ip netns del "$ns" 2>/dev/null || true  # takes the node's end of its veth pair, and so the pair, along
    done <"$dir/netns"
fi
if [[ -f "$dir/bridge" ]]; then
    ip link del "$(cat "$dir/bridge")" 2>/dev/null || true
fi
rm -rf "$dir"
