#!/usr/bin/env bash
# A one-node SLURM cluster on loopback, for testing the `cluster` profile against a real SLURM (see
# tests/test_slurm.py and cluster/README.md). Debian/Ubuntu packages: slurmctld slurmd slurm-client munge.
#
#   cluster_tools/local_slurm.sh install       apt-get install the packages when a command is missing (root)
#   cluster_tools/local_slurm.sh start [DIR]   start munged, slurmctld and slurmd; wait until the node is idle
#   cluster_tools/local_slurm.sh stop [DIR]    cancel its jobs, stop the daemons by their pid files
#   cluster_tools/local_slurm.sh status [DIR]  exit 0 when all three daemons run (and show sinfo)
#   cluster_tools/local_slurm.sh env [DIR]     print `export SLURM_CONF=...` for the SLURM commands
#
# DIR (default $PATHGEO_SLURM_DIR, else /tmp/pathgeo-slurm) holds all of the cluster's state: etc/slurm.conf,
# etc/gres.conf, the munge key and socket, spool and state directories, logs, pid files and the fake GPU
# devices. Nothing is written elsewhere, and a system-wide SLURM or munge is left alone. SLURM commands
# find this cluster through SLURM_CONF=DIR/etc/slurm.conf. Jobs cannot: the SLURM executor plugin's job
# step drops every SLURM_* variable before its nested `srun`, which then reads /etc/slurm/slurm.conf. So
# slurmd (and with it every job) runs in a private mount namespace where DIR/etc is mounted on /etc/slurm;
# outside it, /etc/slurm is untouched.
#
# start and stop are idempotent: start on a running cluster only checks it; stop on a stopped one does
# nothing. Must run as root (the daemons run as root: SlurmUser=root).
#
# The node advertises PATHGEO_SLURM_CPUS CPUs (default 16, whatever the machine has),
# PATHGEO_SLURM_MEM_MB of memory (256000) and PATHGEO_SLURM_GPUS fake GPUs of type PATHGEO_SLURM_GPU_TYPE
# (2 x a100), in two partitions PATHGEO_SLURM_CPU_PARTITION (`cpu`, the default one) and
# PATHGEO_SLURM_GPU_PARTITION (`gpu`): the placeholders of cluster/config.yaml, so that
# `snakemake --profile cluster` runs on this cluster as it is. A third partition, PATHGEO_SLURM_URGENT_PARTITION
# (`urgent`), has a higher PriorityTier: a job sent there preempts (cancels) the jobs it needs room from. Ports:
# PATHGEO_SLURMCTLD_PORT (6817) and PATHGEO_SLURMD_PORT (6818); give other ones to run two clusters side by side.
# MinJobAge: PATHGEO_SLURM_MIN_JOB_AGE (300 s). These are read by start; a running cluster keeps its settings.
#
# Exit status: 0 done; 1 a daemon failed to start or the node did not become idle (the logs are shown);
# 2 usage; 3 this machine cannot run the cluster (not root, packages missing, no mount namespaces).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PACKAGES=(slurmctld slurmd slurm-client munge)
COMMANDS=(munged slurmctld slurmd sinfo squeue sbatch scontrol scancel)

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
DIR="${2:-${PATHGEO_SLURM_DIR:-/tmp/pathgeo-slurm}}"
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac

CPUS="${PATHGEO_SLURM_CPUS:-16}"
MEM_MB="${PATHGEO_SLURM_MEM_MB:-256000}"
GPUS="${PATHGEO_SLURM_GPUS:-2}"
GPU_TYPE="${PATHGEO_SLURM_GPU_TYPE:-a100}"
CTLD_PORT="${PATHGEO_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${PATHGEO_SLURMD_PORT:-6818}"
MIN_JOB_AGE="${PATHGEO_SLURM_MIN_JOB_AGE:-300}"
CPU_PARTITION="${PATHGEO_SLURM_CPU_PARTITION:-cpu}"
GPU_PARTITION="${PATHGEO_SLURM_GPU_PARTITION:-gpu}"
URGENT_PARTITION="${PATHGEO_SLURM_URGENT_PARTITION:-urgent}"
HOST="$(hostname -s)"

export SLURM_CONF="$DIR/etc/slurm.conf"

log() { echo "local_slurm: $*" >&2; }
die() { log "$1"; exit "${2:-1}"; }

missing_commands() {
    local c missing=()
    for c in "${COMMANDS[@]}"; do
        command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("$c")
    done
    echo "${missing[*]}"
}

# The pid in a pid file, when that process is alive and is the named daemon (not a reused pid).
running_pid() {
    local name="$1" file="$DIR/run/$1.pid" pid
    [ -s "$file" ] || return 1
    pid="$(tr -dc '0-9' <"$file")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    echo "$pid"
}

stop_daemon() {
    local name="$1" pid i
    pid="$(running_pid "$name")" || { rm -f "$DIR/run/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/run/$name.pid"
    log "stopped $name (pid $pid)"
}

all_running() {
    running_pid munged >/dev/null && running_pid slurmctld >/dev/null && running_pid slurmd >/dev/null
}

show_logs() {
    local f
    for f in "$DIR"/log/*.log; do
        [ -f "$f" ] || continue
        echo "---- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

node_state() {
    sinfo --noheader --Node --nodes="$HOST" --format=%T 2>/dev/null | head -n 1 | tr -d ' '
}

wait_idle() {
    local i state=""
    for i in $(seq 1 120); do
        state="$(node_state)"
        case "$state" in
            idle | mixed | allocated) return 0 ;;
            drain* | down) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    show_logs
    die "node $HOST did not become idle in 60 s (state: '${state:-no answer from slurmctld}')"
}

render() {
    local gpu_files
    if [ "$GPUS" -gt 1 ]; then gpu_files="$DIR/dev/nvidia[0-$((GPUS - 1))]"; else gpu_files="$DIR/dev/nvidia0"; fi
    sed -e "s|@DIR@|$DIR|g" -e "s|@HOST@|$HOST|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
        -e "s|@GPUS@|$GPUS|g" -e "s|@GPU_TYPE@|$GPU_TYPE|g" -e "s|@GPU_FILES@|$gpu_files|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@MIN_JOB_AGE@|$MIN_JOB_AGE|g" -e "s|@CPU_PARTITION@|$CPU_PARTITION|g" \
        -e "s|@GPU_PARTITION@|$GPU_PARTITION|g" -e "s|@URGENT_PARTITION@|$URGENT_PARTITION|g" "$1"
}

do_install() {
    local missing
    missing="$(missing_commands)"
    [ -z "$missing" ] && { log "SLURM and munge are installed"; return 0; }
    [ "$(id -u)" -eq 0 ] || die "missing: $missing; installing needs root" 3
    command -v apt-get >/dev/null 2>&1 || die "missing: $missing; no apt-get to install ${PACKAGES[*]}" 3
    log "installing ${PACKAGES[*]} (missing: $missing)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    # The packages' own services stay down (no init in containers); this script runs the daemons.
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null \
        || die "apt-get install ${PACKAGES[*]} failed" 3
    missing="$(missing_commands)"
    [ -z "$missing" ] || die "still missing after installing: $missing" 3
}

do_start() {
    local missing i
    [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as SlurmUser=root)" 3
    missing="$(missing_commands)"
    [ -z "$missing" ] || die "missing commands: $missing (apt-get install ${PACKAGES[*]}, or: $0 install)" 3
    export PATH="$PATH:/usr/sbin:/sbin"

    if all_running; then
        wait_idle
        log "already running in $DIR (node $HOST $(node_state))"
        return 0
    fi
    # A half-running cluster (one daemon died): start over.
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged

    # slurmd's private view of /etc/slurm (see the top of this file); needs CAP_SYS_ADMIN.
    unshare --mount --propagation private true 2>/dev/null \
        || die "cannot create a mount namespace (unshare --mount) for slurmd and its jobs" 3
    [ -d /etc/slurm ] || die "/etc/slurm is missing (the slurm-client package makes it)" 3

    mkdir -p "$DIR"/{etc,munge,state/slurmctld,state/slurmd,run,log,dev}
    chmod 755 "$DIR/munge"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        if command -v mungekey >/dev/null 2>&1 || [ -x /usr/sbin/mungekey ]; then
            PATH="$PATH:/usr/sbin" mungekey --create --keyfile="$DIR/munge/munge.key"
        else
            dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        fi
    fi
    chmod 400 "$DIR/munge/munge.key"
    for i in $(seq 0 $((GPUS - 1))); do
        [ -c "$DIR/dev/nvidia$i" ] || { rm -f "$DIR/dev/nvidia$i"; mknod "$DIR/dev/nvidia$i" c 1 3; }
    done
    render "$HERE/slurm.conf.in" >"$DIR/etc/slurm.conf"
    render "$HERE/gres.conf.in" >"$DIR/etc/gres.conf"

    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" || { show_logs; die "munged failed to start"; }
    slurmctld -c -f "$SLURM_CONF" || { show_logs; die "slurmctld failed to start"; }
    unshare --mount --propagation private sh -c 'mount --bind "$1" /etc/slurm && exec slurmd -f /etc/slurm/slurm.conf' \
        sh "$DIR/etc" || { show_logs; die "slurmd failed to start"; }
    # The daemons fork and write their pid files a moment later.
    for i in $(seq 1 50); do
        all_running && break
        sleep 0.2
    done
    all_running || { show_logs; die "a daemon exited right after starting"; }
    wait_idle
    log "started in $DIR: node $HOST, $CPUS CPUs, gpu:$GPU_TYPE:$GPUS," \
        "partitions $CPU_PARTITION (default), $GPU_PARTITION and $URGENT_PARTITION (preempts the others)"
    log "use it with: export SLURM_CONF=$SLURM_CONF"
}

do_stop() {
    if running_pid slurmctld >/dev/null; then
        # Jobs first, so that no slurmstepd outlives its slurmd.
        scancel --user="$(id -un)" >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            [ -z "$(squeue --noheader --states=RUNNING,COMPLETING --format=%i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
}

case "$cmd" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status)
        if all_running; then
            sinfo
            exit 0
        fi
        for d in munged slurmctld slurmd; do
            running_pid "$d" >/dev/null && log "$d running" || log "$d not running"
        done
        exit 1
        ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) usage ;;
esac
