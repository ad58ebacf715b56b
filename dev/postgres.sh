#!/usr/bin/env bash
# dev/postgres.sh: a private PostgreSQL cluster on 127.0.0.1 for the tests (never Debian's default cluster).
#
#   bash dev/postgres.sh [up]    initdb once, start it, ensure role + database `madengine` (idempotent)
#   bash dev/postgres.sh url     print the SQLAlchemy URL of the `madengine` database
#   bash dev/postgres.sh status  exit 0 when the `madengine` role can log in over TCP
#   bash dev/postgres.sh down    stop it (pg_ctl stop -m fast); the data directory stays
#
# Everything lives in MADENGINE_PG_DIR/<port> (default /var/tmp/madengine-postgres/55432): data/ (the cluster),
# socket/ (its unix socket), postgres.log, initdb.log. It listens on 127.0.0.1 only. The role `madengine`
# (password `madengine`, CREATEDB, so tests can make a database each) owns the database `madengine`.
# As root the server runs as the `postgres` system user (created if absent; initdb refuses root); as another user,
# as that user. A second `up` while it answers returns at once; a stale postmaster.pid (crash, kill -9, a reused or
# zombie pid) is removed before starting. Missing binaries are installed from Debian (postgresql-15).
# Environment: MADENGINE_PG_PORT (default 55432), MADENGINE_PG_DIR (default /var/tmp/madengine-postgres),
#   MADENGINE_PG_BIN (default /usr/lib/postgresql/15/bin, else the newest /usr/lib/postgresql/*/bin).
set -Eeuo pipefail
umask 022

PORT=${MADENGINE_PG_PORT:-55432}
D=${MADENGINE_PG_DIR:-/var/tmp/madengine-postgres}/$PORT
DATA=$D/data
SOCK=$D/socket
LOG=$D/postgres.log
APT_LOG=/var/log/madengine-apt.log
ROLE=madengine
URL_TCP="postgresql://$ROLE:$ROLE@127.0.0.1:$PORT/$ROLE"

say() { printf 'postgres: %s\n' "$*"; }
die() { printf 'postgres: error: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [[ $BASHPID == "$$" ]] && printf "postgres: error: \`%s\` failed (exit %s, line %s)\n" "$BASH_COMMAND" "$rc" "$LINENO" >&2; exit $rc' ERR

# shellcheck source=dev/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $PORT =~ ^[0-9]+$ ]] || die "MADENGINE_PG_PORT must be a port number, not '$PORT'"
# The caller's PG* variables (PGHOST, PGSSLMODE, PGOPTIONS, ...) must not redirect or alter our connections.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^PG' || true)
# A locale that exists everywhere, so initdb, pg_ctl and psql never warn about the caller's.
if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then LOC=C.UTF-8; else LOC=C; fi
export LC_ALL=$LOC
cd /   # the server user may not be able to read the caller's working directory

bin_dir() {
    local b
    if [[ -n ${MADENGINE_PG_BIN:-} ]]; then printf '%s' "$MADENGINE_PG_BIN"; return; fi
    [[ -x /usr/lib/postgresql/15/bin/postgres ]] && { printf '%s' /usr/lib/postgresql/15/bin; return; }
    b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    printf '%s' "${b:-/usr/lib/postgresql/15/bin}"
}
BIN=$(bin_dir)

# ready: the `madengine` role logs in over TCP (password auth) and may create databases.
ready() {
    [[ -x $BIN/psql ]] || return 1
    [[ $("$BIN/psql" -X -Atq -c 'SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user' \
        "$URL_TCP?connect_timeout=3" 2>/dev/null) == t ]]
}

# ours PID: PID is the live postmaster of $DATA (not a zombie, not a reused pid).
ours() { alive "$1" postgres && [[ $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) == *" -D $DATA "* ]]; }
lock_pid() { head -n1 "$1" 2>/dev/null | tr -dc '0-9' || true; }
# server_pid: pid of the running postmaster of $DATA, or nothing.
server_pid() {
    local pid
    pid=$(lock_pid "$DATA/postmaster.pid")
    if ours "$pid"; then printf '%s' "$pid"; fi
}

install_bins() {
    local pkg=postgresql-15
    is_root || die "PostgreSQL binaries missing in $BIN; as root run: apt-get install postgresql-15"
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=300 -q update >>"$APT_LOG" 2>&1 || die "apt-get update failed (log: $APT_LOG)"
        APT_UPDATED=1
        apt-cache show "$pkg" >/dev/null 2>&1 || pkg=postgresql
    fi
    ensure_pkgs "$pkg"
    BIN=$(bin_dir)
    [[ -x $BIN/postgres ]] || die "no PostgreSQL binaries in $BIN after installing $pkg (set MADENGINE_PG_BIN)"
}

# AS: the prefix that runs a command as the cluster's owner.
AS=()
server_user() {
    local u
    is_root || return 0
    u=$(stat -c %U "$D" 2>/dev/null || true)
    if [[ -z $u || $u == root || $u == UNKNOWN ]]; then
        u=postgres
        getent passwd postgres >/dev/null ||
            useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home --shell /bin/bash postgres
    fi
    AS=(runuser -u "$u" --)
    mkdir -p "$D"
    chown "$u:" "$D"
}

init_cluster() {
    local new=$D/data.new
    rm -rf "$new"
    # C.UTF-8 (or C): no locale warnings, byte-order collation, UTF8 everywhere.
    "${AS[@]}" "$BIN/initdb" -D "$new" -E UTF8 --locale="$LOC" --auth-local=trust --auth-host=scram-sha-256 \
        --no-sync --no-instructions >"$D/initdb.log" 2>&1 || { tail -n 20 "$D/initdb.log" >&2; die "initdb failed (log: $D/initdb.log)"; }
    echo "include 'madengine.conf'" >>"$new/postgresql.conf"
    mv "$new" "$DATA"   # only a complete cluster ever becomes $DATA
    say "initdb $DATA ($LOC, UTF8) in $(since "$1")"
}

# put FILE CONTENT: write FILE (owned like $DATA) when it differs; returns 0 when it changed.
put() {
    [[ $(cat "$1" 2>/dev/null) == "$2" ]] && return 1
    printf '%s\n' "$2" >"$1.tmp"
    chown --reference="$DATA" "$1.tmp"; chmod 600 "$1.tmp"
    mv -f "$1.tmp" "$1"
}

# The server's settings (included by postgresql.conf) and client authentication.
MCONF="# Written by madengine dev/postgres.sh (included by postgresql.conf). Do not edit by hand.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 200
# A disposable test cluster: no durability (an OS crash may lose it; delete $D and run up again), fast commits
# and CREATE DATABASE.
fsync = off
synchronous_commit = off
full_page_writes = off"
# Unix socket: trust, but the socket directory is 0700 (only the server's user and root reach it).
# 127.0.0.1: password (SCRAM) for every role; the superuser has no password, so only `madengine` logs in there.
HBA="# Written by madengine dev/postgres.sh. Do not edit by hand.
local all all trust
host all all 127.0.0.1/32 scram-sha-256"

# conf_current: the running cluster has these settings (or we cannot read them: another user's cluster).
conf_current() {
    [[ -r $DATA/madengine.conf ]] || return 0
    [[ $(cat "$DATA/madengine.conf") == "$MCONF" && $(cat "$DATA/pg_hba.conf" 2>/dev/null) == "$HBA" ]]
}

# write_conf: returns 0 when a file changed.
write_conf() {
    local changed=1
    put "$DATA/madengine.conf" "$MCONF" && changed=0
    put "$DATA/pg_hba.conf" "$HBA" && changed=0
    return $changed
}

setup_sql() {
    "${AS[@]}" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d postgres >/dev/null <<SQL
SET client_min_messages = warning;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN CREATE ROLE $ROLE; END IF;
END \$\$;
ALTER ROLE $ROLE LOGIN CREATEDB NOSUPERUSER PASSWORD '$ROLE';
SELECT 'CREATE DATABASE $ROLE OWNER $ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$ROLE') \gexec
ALTER DATABASE $ROLE OWNER TO $ROLE;
SQL
}

start() {
    local f pid
    # Stale lock files (a crash, kill -9; the pid may now be a zombie or another process): postgres refuses them.
    for f in "$DATA/postmaster.pid" "$SOCK/.s.PGSQL.$PORT.lock"; do
        [[ -e $f ]] || continue
        pid=$(lock_pid "$f")
        ours "$pid" || { rm -f "$f"; say "removed stale $(basename "$f") (pid ${pid:-?} is not our postmaster)"; }
    done
    [[ ! -f $LOG || $(stat -c %s "$LOG") -lt 10485760 ]] || mv -f "$LOG" "$LOG.1"
    # -l: the server's streams go to the log, so it holds no pipe of our caller; 9>&-: nor our lock.
    "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -s start 9>&- ||
        { tail -n 20 "$LOG" | sed 's/^/  | /' >&2; die "pg_ctl start failed (log: $LOG)"; }
}

up() {
    local t pid i
    t=$(now_us)
    if conf_current && ready; then say "up on 127.0.0.1:$PORT, nothing to do ($(since "$t"))"; return 0; fi
    [[ -x $BIN/postgres && -x $BIN/initdb && -x $BIN/pg_ctl && -x $BIN/psql ]] || install_bins
    # The parent is shared by clusters of several ports and users: sticky and world-writable, like /var/tmp.
    [[ -d ${D%/*} ]] || { mkdir -p "${D%/*}" && chmod 1777 "${D%/*}"; } 2>/dev/null || true
    mkdir -p "$D" 2>/dev/null || die "cannot create $D (set MADENGINE_PG_DIR to a writable directory)"
    server_user
    exec 9>>"$D/.lock"
    flock -w 120 9 || die "another dev/postgres.sh holds $D/.lock"
    [[ -s $DATA/PG_VERSION ]] || init_cluster "$t"
    [[ $(cat "$DATA/PG_VERSION") == "$("$BIN/postgres" -V | sed -E 's/.* ([0-9]+)[.].*/\1/')" ]] ||
        die "$DATA is a PostgreSQL $(cat "$DATA/PG_VERSION") cluster but $BIN is $("$BIN/postgres" -V); remove $D or set MADENGINE_PG_BIN"
    "${AS[@]}" mkdir -p "$SOCK"
    chmod 700 "$SOCK"
    pid=$(server_pid)
    if write_conf && [[ -n $pid ]]; then
        say "configuration changed: restarting (pid $pid)"
        "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 -s stop 9>&-
        pid=
    fi
    [[ -n $pid ]] || start
    for ((i = 0; i < 300; i++)); do "$BIN/pg_isready" -q -h "$SOCK" -p "$PORT" && break; sleep 0.2; done
    setup_sql
    ready || die "the server runs but $URL_TCP does not log in (log: $LOG)"
    say "up on 127.0.0.1:$PORT in $(since "$t") (pid $(server_pid), data $DATA, log $LOG)"
}

down() {
    local pid
    pid=$(server_pid)
    if [[ -z $pid ]]; then say "not running (data in $DATA)"; return 0; fi
    server_user
    "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 -s stop
    say "down (data stays in $DATA)"
}

case ${1:-up} in
    up) up ;;
    down) down ;;
    url) printf 'postgresql+psycopg://%s:%s@127.0.0.1:%s/%s\n' "$ROLE" "$ROLE" "$PORT" "$ROLE" ;;
    status) if ready; then say "up on 127.0.0.1:$PORT ($URL_TCP)"; else say "not up (run: bash dev/postgres.sh up)"; exit 1; fi ;;
    *) die "usage: bash dev/postgres.sh [up|down|url|status]" ;;
esac
