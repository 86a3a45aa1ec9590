#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying and testing `hydra/launcher=slurm`.
#
#   sudo scripts/slurm_local.sh start   # install (Debian/Ubuntu packages) if needed, start
#   sudo scripts/slurm_local.sh status  # sinfo and squeue
#   sudo scripts/slurm_local.sh stop    # take it down again
#
# It runs as root (as CI does) and needs no systemd: munged, slurmdbd, slurmctld and slurmd
# are started directly, with their state under $RLRUN_SLURM_DIR (default /var/lib/rlrun-slurm).
# One node (this host, all its CPUs, half its memory) in one default partition, `local`.
# Accounting (slurmdbd on a MariaDB database on a local socket) is included because submitit
# asks `sacct` for its jobs' states: without it, submitit warns on every poll and never
# notices a job that died without writing its result.
# It writes /etc/slurm/slurm.conf, and refuses to replace one it did not write.
set -euo pipefail

DIR=${RLRUN_SLURM_DIR:-/var/lib/rlrun-slurm}
CONF_DIR=/etc/slurm
MARK="# written by rlrun scripts/slurm_local.sh"
HOST=$(hostname -s)
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

die() { echo "slurm_local.sh: error: $*" >&2; exit 1; }
say() { echo "slurm_local.sh: $*"; }

need_root() { [ "$(id -u)" = 0 ] || die "run it as root (it installs packages and starts daemons)"; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} yourself"
    say "installing ${missing[*]}"
    # policy-rc.d: the packages' maintainer scripts must not start daemons of their own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' RETURN
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

write_conf() {
    if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
        die "$CONF_DIR/slurm.conf exists and was not written by this script: not replacing it"
    fi
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))  # MB, half the RAM
    mkdir -p "$CONF_DIR" "$DIR"/{ctld,d,log,db}
    cat > "$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=rlrun-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
JobCompType=jobcomp/none
KillWait=30
MinJobAge=300
# The main scheduler runs every 60 s by default: a requeued job would wait that long.
SchedulerParameters=sched_interval=2
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    cat > "$CONF_DIR/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=$HOST
SlurmUser=root
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=root
StoragePort=3306
EOF
    chmod 600 "$CONF_DIR/slurmdbd.conf"
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged || die "munged did not start"
    fi
    munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
}

start_db() {
    # A MariaDB of our own (datadir under $DIR), on the default socket only (no TCP port),
    # root by socket auth.
    if [ ! -d "$DIR/db/mysql" ]; then
        mariadb-install-db --user=mysql --datadir="$DIR/db" --auth-root-authentication-method=socket \
            >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: see $DIR/log"
    fi
    chown -R mysql:mysql "$DIR/db"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if ! mariadb-admin ping >/dev/null 2>&1; then
        (mariadbd --user=mysql --datadir="$DIR/db" --skip-networking \
            --pid-file=/run/mysqld/rlrun-slurm.pid --log-error="$DIR/db/mariadb.log" \
            >/dev/null 2>&1 &)
        for _ in $(seq 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
        mariadb-admin ping >/dev/null 2>&1 || die "MariaDB did not start: see $DIR/db/mariadb.log"
    fi
    if ! pgrep -F "$DIR/slurmdbd.pid" >/dev/null 2>&1; then
        slurmdbd || die "slurmdbd did not start: see $DIR/log/slurmdbd.log"
    fi
    # slurmctld exits at once if slurmdbd does not answer yet: wait for it, and register
    # the cluster (root is then allowed to submit).
    for _ in $(seq 40); do timeout 5 sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
    timeout 5 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx rlrun-local \
        || timeout 10 sacctmgr -i add cluster rlrun-local >/dev/null \
        || die "slurmdbd does not answer: see $DIR/log/slurmdbd.log"
}

start_slurm() {
    if ! pgrep -F "$DIR/slurmctld.pid" >/dev/null 2>&1; then
        slurmctld || die "slurmctld did not start: see $DIR/log/slurmctld.log"
    fi
    if ! pgrep -F "$DIR/slurmd.pid" >/dev/null 2>&1; then
        slurmd || die "slurmd did not start: see $DIR/log/slurmd.log"
    fi
    local deadline=$((SECONDS + 40)) state=""
    while ((SECONDS < deadline)); do
        pgrep -F "$DIR/slurmctld.pid" >/dev/null 2>&1 \
            || die "slurmctld stopped: see $DIR/log/slurmctld.log"
        state=$(timeout 5 sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
        case "$state" in idle*|mixed*|alloc*) break ;; esac
        sleep 0.5
    done
    case "$state" in
        idle*|mixed*|alloc*) ;;
        *) die "node $HOST is '${state:-unknown}', not idle: see $DIR/log/slurmctld.log and slurmd.log" ;;
    esac
    timeout 30 srun -N1 -t 1 hostname >/dev/null || die "srun hostname failed: see $DIR/log/"
}

stop_pidfile() {  # stop the daemon whose PID file is $1, wait until it is gone
    local pid
    [ -s "$1" ] || return 0
    pid=$(cat "$1")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    rm -f "$1"
}

case "${1:-}" in
    start)
        need_root
        t0=$(date +%s)
        install_packages
        write_conf
        start_munge
        start_db
        start_slurm
        say "up in $(( $(date +%s) - t0 )) s: partition 'local', $(nproc) CPUs on $HOST"
        sinfo
        ;;
    stop)
        need_root
        if command -v scancel >/dev/null && timeout 5 sinfo >/dev/null 2>&1; then
            timeout 10 scancel -u root 2>/dev/null || true
        fi
        stop_pidfile "$DIR/slurmd.pid"
        stop_pidfile "$DIR/slurmctld.pid"
        stop_pidfile "$DIR/slurmdbd.pid"
        stop_pidfile /run/mysqld/rlrun-slurm.pid
        stop_pidfile /run/munge/munged.pid
        say "stopped"
        ;;
    status)
        sinfo && squeue
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
