#!/usr/bin/env bash
# A one-node SLURM cluster for the SLURM test: Debian's slurm-wlm and munge, a `ci-cpu` and a `ci-gpu` partition
# on this machine, one fake GPU (gres.conf: File=/dev/null), job records kept (MinJobAge, jobcomp file).
#
#   tests/slurm/start_cluster.sh STATE_DIR     # installs if needed, starts munged, slurmctld, slurmd
#
# Exit status 3 (and one line saying why) when the cluster cannot be set up here: not root, or apt-get
# cannot install the packages. Any other failure is an error.
set -euo pipefail

state=${1:?usage: start_cluster.sh STATE_DIR}
mkdir -p "$state"
state=$(cd "$state" && pwd)

cannot() {
    echo "SLURM test cannot run here: $*" >&2
    exit 3
}

[ "$(id -u)" -eq 0 ] || cannot "it needs root to install and start slurmctld/slurmd (uid $(id -u))"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm-wlm is not installed and there is no apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$state/apt.log" 2>&1 || cannot "apt-get update failed (see $state/apt.log)"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >>"$state/apt.log" 2>&1 \
        || cannot "apt-get install slurm-wlm munge failed (see $state/apt.log)"
fi

host=$(hostname -s)
cpus=$(nproc)
# Memory is not a consumable resource here (CR_Core), but a job asking for more than RealMemory is
# rejected, as on a real cluster: declare what the machine has.
mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512))

mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /var/log/slurm /run/munge
cat >/etc/slurm/slurm.conf <<EOF
# Written by latentsky tests/slurm/start_cluster.sh
ClusterName=latentsky-ci
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
MpiDefault=none
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# Finished jobs stay visible to scontrol/squeue for an hour, and every job is recorded in a file.
MinJobAge=3600
JobCompType=jobcomp/filetxt
JobCompLoc=$state/jobcomp.log
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=ci-cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=ci-gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
echo "NodeName=$host Name=gpu File=/dev/null" >/etc/slurm/gres.conf

# munge: the package's post-install script made /etc/munge/munge.key; make one if it did not.
[ -s /etc/munge/munge.key ] || (umask 077 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null)
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

# (Re)start the daemons so that they read this configuration.
pkill -x slurmd 2>/dev/null || true
pkill -x slurmctld 2>/dev/null || true
sleep 1
slurmctld
slurmd
for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        sinfo
        exit 0
    fi
    sleep 1
done
echo "slurmd did not come up; logs in $state" >&2
sinfo -R >&2 || true
tail -20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
exit 1
