#!/usr/bin/env bash
# dev/slurm.sh: a real local Slurm cluster on this Debian 12 machine (no systemd), for `inv run.slurm` and its tests.
#
#   bash dev/slurm.sh [up]    munged + slurmctld + NODES virtual nodes (`slurmd -N n1`, `-N n2`, ...) with fake GPUs
#   bash dev/slurm.sh status  what is up; exit 0 when every node answers idle/alloc/mix, 1 otherwise
#   bash dev/slurm.sh down    stop the daemons this script started (by pid file); state and job history stay
#
# Idempotent: a second `up` with the same configuration finds everything running and returns at once; a changed
# configuration restarts all daemons together (slurmd refuses a slurm.conf that differs from slurmctld's).
# Job state and ExitCode are queryable without slurmdbd: `sacct -c` (jobcomp/filetxt) and `squeue -t all`.
# Environment: NODES (default 2), CPUS per node (default 8), GPUS per node (default 2; fake GPUs are character
#   devices, so Slurm sets CUDA_VISIBLE_DEVICES), MADENGINE_SLURM_DIR (default /var/lib/madengine/slurm).
set -Eeuo pipefail
umask 022

NODES=${NODES:-2}
CPUS=${CPUS:-8}
GPUS=${GPUS:-2}
D=${MADENGINE_SLURM_DIR:-/var/lib/madengine/slurm}
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
APT_LOG=/var/log/madengine-apt.log

# shellcheck source=dev/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
say() { printf 'slurm: %s\n' "$*"; }
die() { printf 'slurm: error: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [[ $BASHPID == "$$" ]] && printf "slurm: error: \`%s\` failed (exit %s, line %s)\n" "$BASH_COMMAND" "$rc" "$LINENO" >&2; exit $rc' ERR



# stop_pid PIDFILE NAME: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
    local pid i
    pid=$(pid_of "$1")
    alive "$pid" "$2" || { rm -f "$1"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" "$2" || break; sleep 0.1; done
    alive "$pid" "$2" && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

render_conf() {
    local n gres_node=""
    [[ $GPUS -gt 0 ]] && gres_node="Gres=gpu:$GPUS"
    cat <<CONF
# Written by madengine dev/slurm.sh: a local test cluster of $NODES virtual nodes. Do not edit by hand.
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/jobcomp.log
MinJobAge=300
KillWait=10
ReturnToService=2
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
GresTypes=gpu
CONF
    for n in $(seq 1 "$NODES"); do
        echo "NodeName=n$n NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((17000 + n)) CPUs=$CPUS RealMemory=4000 $gres_node State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
}

render_gres() {
    local n
    [[ $GPUS -gt 0 ]] || return 0
    echo "AutoDetect=off"
    for n in $(seq 1 "$NODES"); do echo "NodeName=n$n Name=gpu File=$D/gpu/n$n-nvidia[0-$((GPUS - 1))]"; done
}

nodes_ready() {
    local states
    states=$(sinfo -h -N -o '%N %t' 2>/dev/null | awk '{print $2}' | sort -u | tr '\n' ' ')
    [[ $(sinfo -h -N -o '%N' 2>/dev/null | sort -u | wc -l) == "$NODES" ]] || return 1
    [[ -n $states && $states =~ ^((idle|alloc|mix|comp)\ )+$ ]]
}

daemons_alive() {
    local n
    alive "$(pid_of "$D/slurmctld.pid")" slurmctld || return 1
    for n in $(seq 1 "$NODES"); do alive "$(pid_of "$D/slurmd-n$n.pid")" slurmd || return 1; done
}

munge_up() {
    [[ -s /etc/munge/munge.key ]] || { mungekey --create >/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    mkdir -p /run/munge && chown munge:munge /run/munge
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "munged did not start (see /var/log/munge/munged.log)"
}

hosts_entry() {
    # Virtual node names must resolve (MASTER_ADDR comes from the nodelist): map them to 127.0.0.1.
    local n missing=()
    for n in $(seq 1 "$NODES"); do getent hosts "n$n" >/dev/null || missing+=("n$n"); done
    ((${#missing[@]})) || return 0
    echo "127.0.0.1 ${missing[*]}" >>/etc/hosts
    say "added '127.0.0.1 ${missing[*]}' to /etc/hosts"
}

up() {
    local n g t0=$EPOCHREALTIME new_conf new_gres
    ensure_pkgs slurmctld slurmd slurm-client munge
    mkdir -p "$D/state" "$D/spool" "$D/log" /etc/slurm
    if [[ $GPUS -gt 0 ]]; then
        mkdir -p "$D/gpu"
        for n in $(seq 1 "$NODES"); do
            for g in $(seq 0 $((GPUS - 1))); do
                [[ -c $D/gpu/n$n-nvidia$g ]] || { rm -f "$D/gpu/n$n-nvidia$g"; mknod "$D/gpu/n$n-nvidia$g" c 195 $(((n - 1) * GPUS + g)); }
            done
        done
    fi
    hosts_entry
    munge_up
    new_conf=$(render_conf)
    new_gres=$(render_gres)
    if [[ $new_conf == "$(cat "$CONF" 2>/dev/null)" && $new_gres == "$(cat "$GRES_CONF" 2>/dev/null)" ]] && daemons_alive; then
        if nodes_ready; then say "up: $NODES node(s) ($(sinfo -h -o '%D %t' | paste -sd' ')), nothing to do"; return 0; fi
    else
        down quiet
        printf '%s\n' "$new_conf" >"$CONF"
        printf '%s\n' "$new_gres" >"$GRES_CONF"
        slurmctld
        for n in $(seq 1 "$NODES"); do slurmd -N "n$n"; done
    fi
    for _ in $(seq 150); do
        if nodes_ready; then
            # nodes that were DOWN from an earlier run come back on their own (ReturnToService=2)
            say "up: $NODES node(s), $CPUS CPUs and $GPUS fake GPU(s) each, in $(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $t0}") s"
            return 0
        fi
        sleep 0.2
    done
    for n in $(seq 1 "$NODES"); do scontrol update NodeName="n$n" State=RESUME 2>/dev/null || true; done
    for _ in $(seq 50); do nodes_ready && { say "up (nodes resumed)"; return 0; }; sleep 0.2; done
    tail -n 20 "$D"/log/*.log >&2 || true
    die "nodes not ready: $(sinfo -h -N -o '%N %t' 2>&1 | paste -sd' ') (logs in $D/log)"
}

down() {
    local f
    for f in "$D"/slurmd-*.pid; do [[ -e $f ]] && stop_pid "$f" slurmd; done
    stop_pid "$D/slurmctld.pid" slurmctld
    [[ ${1:-} == quiet ]] || say "down (munged keeps running; state in $D)"
}

status() {
    if daemons_alive && nodes_ready; then
        sinfo -N -o '%N %t %c %G'
        return 0
    fi
    say "not up (run: bash dev/slurm.sh up)"
    return 1
}

case ${1:-up} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: bash dev/slurm.sh [up|down|status]" ;;
esac
