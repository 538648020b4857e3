#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine for the tests of backend-slurm: munged,
# slurmctld and slurmd in the background (no systemd), one partition `test`, and two fake GPUs
# of type h100 (character devices made with mknod, enough for Slurm's scheduling and for
# CUDA_VISIBLE_DEVICES; nothing runs on them).
#
# Usage: scripts/start-test-slurm.sh            start it (idempotent: a running cluster is kept)
#        scripts/start-test-slurm.sh --stop     stop what this script started
#
# Needs root and Debian's `slurm-wlm` and `munge` packages (22.05). State, logs and the fake
# devices live under $PERF_RUNNER_SLURM_DIR (default /run/perf-runner-slurm). Exit 0 once
# `sinfo` shows the node idle; 1 otherwise, with the daemons' log tails.
set -euo pipefail

dir=${PERF_RUNNER_SLURM_DIR:-/run/perf-runner-slurm}
conf=/etc/slurm/slurm.conf
node=$(hostname -s)
cpus=$(nproc)

log() { printf 'start-test-slurm: %s\n' "$*" >&2; }

stop() {
    for d in slurmd slurmctld munged; do
        if [ -f "$dir/$d.pid" ]; then
            kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
            rm -f "$dir/$d.pid"
        fi
    done
}

if [ "${1:-}" = "--stop" ]; then
    stop
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    log "needs root (it starts the daemons and makes device nodes)"
    exit 1
fi
for p in munged slurmctld slurmd sinfo; do
    command -v "$p" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
    command -v "$p" >/dev/null 2>&1 || { log "$p not found (apt-get install slurm-wlm munge)"; exit 1; }
done

if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    log "a cluster is already up: $(sinfo -h -o '%N %T %G' | tr '\n' ' ')"
    exit 0
fi

start=$(date +%s.%N)
mkdir -p "$dir/state" "$dir/spool" "$dir/dev"

# munge: its key (the package makes one; make it if missing), run as the munge user.
if ! pgrep -u munge -x munged >/dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
    chown -R munge: /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0700 /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --force
    pgrep -u munge -x munged >"$dir/munged.pid" || true
fi

# Two fake GPUs: character devices with NVIDIA's major number (empty files are refused).
for i in 0 1; do
    [ -c "$dir/dev/nvidia$i" ] || { rm -f "$dir/dev/nvidia$i"; mknod "$dir/dev/nvidia$i" c 195 "$i"; }
done

mkdir -p /etc/slurm
cat >"$dir/gres.conf" <<EOF
NodeName=$node Name=gpu Type=h100 File=$dir/dev/nvidia[0-1]
EOF
cat >"$dir/slurm.conf" <<EOF
# Written by scripts/start-test-slurm.sh: a one-node test cluster.
ClusterName=perfrunner
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=1
MailProg=/bin/true
GresTypes=gpu
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=30
KillWait=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus Gres=gpu:h100:2 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
cp "$dir/slurm.conf" "$conf"
cp "$dir/gres.conf" /etc/slurm/gres.conf

(setsid slurmctld -D -f "$conf" >>"$dir/slurmctld.out" 2>&1 &)
(setsid slurmd -D -f "$conf" -N "$node" >>"$dir/slurmd.out" 2>&1 &)

for _ in $(seq 1 150); do
    if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        end=$(date +%s.%N)
        log "up in $(echo "$end - $start" | bc 2>/dev/null || echo '?') s: $(sinfo -h -o '%P %N %T %G' | tr '\n' ' ')"
        exit 0
    fi
    sleep 0.2
done
log "the node did not become idle within 30 s"
sinfo 2>&1 || true
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/slurmctld.out" "$dir/slurmd.out" 2>/dev/null || true
exit 1
