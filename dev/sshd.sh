#!/usr/bin/env bash
# dev/sshd.sh: a private sshd on 127.0.0.1:2222 that plays the Slurm login node for `inv run.slurm --cluster`.
#
#   bash dev/sshd.sh [up]    host key, client key, authorized_keys, known_hosts, sshd (idempotent)
#   bash dev/sshd.sh status  exit 0 when it accepts our key
#   bash dev/sshd.sh down    stop the sshd this script started (keys stay, so known_hosts stays valid)
#
# Everything lives in MADENGINE_SSHD_DIR (default /var/lib/madengine/sshd): ssh_host_ed25519_key (the server's),
# id_ed25519 (the client's, root may log in with it), known_hosts (the server's key for [127.0.0.1]:PORT, which the
# client verifies: unknown host keys are rejected), sshd_config, sshd.pid, sshd.log. The system sshd is not touched.
set -Eeuo pipefail
umask 077

D=${MADENGINE_SSHD_DIR:-/var/lib/madengine/sshd}
PORT=${MADENGINE_SSHD_PORT:-2222}
APT_LOG=/var/log/madengine-apt.log

say() { printf 'sshd: %s\n' "$*"; }
die() { printf 'sshd: error: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [[ $BASHPID == "$$" ]] && printf "sshd: error: \`%s\` failed (exit %s, line %s)\n" "$BASH_COMMAND" "$rc" "$LINENO" >&2; exit $rc' ERR

# shellcheck source=dev/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

accepts() {
    ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$D/known_hosts" -o ConnectTimeout=5 \
        -i "$D/id_ed25519" -p "$PORT" root@127.0.0.1 true >/dev/null 2>&1
}

up() {
    ensure_pkgs openssh-server rsync
    mkdir -p "$D" /run/sshd
    chmod 700 "$D"
    [[ -s $D/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C madengine-test-host -f "$D/ssh_host_ed25519_key"
    [[ -s $D/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C madengine-test-client -f "$D/id_ed25519"
    cp "$D/id_ed25519.pub" "$D/authorized_keys"
    printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$D/ssh_host_ed25519_key.pub")" >"$D/known_hosts"
    cat >"$D/sshd_config" <<CONF
# Written by madengine dev/sshd.sh
Port $PORT
ListenAddress 127.0.0.1
HostKey $D/ssh_host_ed25519_key
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
CONF
    if alive "$(pid_of "$D/sshd.pid")" sshd && accepts; then say "up on 127.0.0.1:$PORT, nothing to do"; return 0; fi
    down quiet
    /usr/sbin/sshd -t -f "$D/sshd_config" || die "sshd rejects $D/sshd_config"
    /usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log"
    for _ in $(seq 50); do accepts && { say "up on 127.0.0.1:$PORT (client key $D/id_ed25519, known_hosts $D/known_hosts)"; return 0; }; sleep 0.1; done
    tail -n 20 "$D/sshd.log" >&2 || true
    die "sshd on 127.0.0.1:$PORT does not accept $D/id_ed25519 (log: $D/sshd.log)"
}

down() {
    local pid i
    pid=$(pid_of "$D/sshd.pid")
    if alive "$pid" sshd; then
        kill -TERM "$pid"
        for ((i = 0; i < 50; i++)); do alive "$pid" sshd || break; sleep 0.1; done
    fi
    rm -f "$D/sshd.pid"
    [[ ${1:-} == quiet ]] || say "down"
}

case ${1:-up} in
    up) up ;;
    down) down ;;
    status) if accepts; then say "up on 127.0.0.1:$PORT"; else say "not up (run: bash dev/sshd.sh up)"; exit 1; fi ;;
    *) die "usage: bash dev/sshd.sh [up|down|status]" ;;
esac
