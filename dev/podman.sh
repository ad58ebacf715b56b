#!/usr/bin/env bash
# dev/podman.sh: podman's Docker-compatible API on a socket, for running madengine on podman
# (DOCKER_HOST=unix:///run/madengine-podman/podman.sock madengine run.local ...).
#
#   bash dev/podman.sh [up]    install podman (Debian), start `podman system service`, copy the base image (idempotent)
#   bash dev/podman.sh status  exit 0 when the socket answers
#   bash dev/podman.sh down    stop the service this script started (images stay)
#
# No systemd here: the service runs with the cgroupfs manager and file events. This machine kind refuses the very
# high default ulimits podman asks for, so /etc/containers/containers.conf sets nofile to the host's hard limit and
# nproc to at most 32768. The base image comes from the Docker engine (`bash dev/engine.sh up` first).
set -Eeuo pipefail

D=/run/madengine-podman
SOCK=$D/podman.sock
PIDF=/var/run/madengine-podman.pid
LOG=/var/log/madengine-podman.log
CONF=/etc/containers/containers.conf
BASE=madengine-base:bookworm
PODMAN=(podman --cgroup-manager=cgroupfs --events-backend=file)

say() { printf 'podman: %s\n' "$*"; }
die() { printf 'podman: error: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [[ $BASHPID == "$$" ]] && printf "podman: error: \`%s\` failed (exit %s, line %s)\n" "$BASH_COMMAND" "$rc" "$LINENO" >&2; exit $rc' ERR

# shellcheck source=dev/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

answers() { curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

up() {
    is_root || die "run as root (rootful podman, like the Docker engine of dev/engine.sh)"
    ensure_pkgs podman curl
    if ! grep -qs '# madengine dev/podman.sh' "$CONF"; then
        mkdir -p "$(dirname "$CONF")"
        local nproc; nproc=$(ulimit -Hu); [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
        printf '# madengine dev/podman.sh: ulimits this machine kind accepts\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
            "$(ulimit -Hn)" "$(ulimit -Hn)" "$nproc" "$nproc" >"$CONF"
    fi
    if ! answers; then
        mkdir -p "$D"
        rm -f "$SOCK"
        nohup "${PODMAN[@]}" system service --time=0 "unix://$SOCK" >>"$LOG" 2>&1 &
        echo $! >"$PIDF"
        local i
        for i in $(seq 50); do answers && break; sleep 0.2; done
        answers || die "podman system service did not answer on $SOCK (log: $LOG)"
    fi
    local want have
    want=$(docker image inspect --format '{{.Id}}' "$BASE" 2>/dev/null) ||
        die "no $BASE on the Docker engine: run 'bash dev/engine.sh up' first"
    have=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$BASE" 2>/dev/null || true)
    if [[ sha256:${have#sha256:} != "$want" ]]; then
        say "copying $BASE from the Docker engine"
        docker image save "$BASE" | "${PODMAN[@]}" load -q >/dev/null
    fi
    say "up: DOCKER_HOST=unix://$SOCK ($("${PODMAN[@]}" --version))"
}

down() {
    local pid; pid=$(pid_of "$PIDF")
    if [[ -n $pid ]] && alive "$pid"; then kill "$pid"; fi
    rm -f "$PIDF" "$SOCK"
    say "down"
}

case "${1:-up}" in
    up) up ;;
    status) answers && say "up on $SOCK" || { say "not running"; exit 1; } ;;
    down) down ;;
    *) die "usage: bash dev/podman.sh [up|status|down]" ;;
esac
