#!/usr/bin/env bash
# dev/engine.sh: a local Docker engine, madengine base images and a local registry on a
# Debian 12 machine without systemd (see dev/README.md).
#
#   bash dev/engine.sh [up]      engine + madengine-base:busybox + madengine-base:bookworm
#   bash dev/engine.sh registry  engine + busybox image + registry on 127.0.0.1:5000 (+ push/pull check)
#   bash dev/engine.sh status    what is up; exit 0 when an engine answers, 1 when none does
#   bash dev/engine.sh down      stop the dockerd and registry this script started (images, caches stay)
#
# Idempotent: a second run finds everything current and returns in well under a second.
# Environment: DOCKER_HOST (an engine that answers there is used as is),
#   MADENGINE_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   MADENGINE_BASE_INCLUDE (extra packages in the bookworm rootfs, default ca-certificates),
#   MADENGINE_STORAGE_DRIVER (default overlay2), MADENGINE_ENGINE_TIMEOUT (seconds, default 60).
set -Eeuo pipefail
umask 022

# Bump RECIPE whenever the rootfs or image recipe below changes: it is part of every cache key.
RECIPE=madengine-base-1
SUITE=bookworm
VARIANT=minbase
MIRROR=${MADENGINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=$(printf '%s' "${MADENGINE_BASE_INCLUDE-ca-certificates}" | tr ', ' '\n\n' | sed '/^$/d' | sort -u | paste -sd, -)
STORAGE_DRIVER=${MADENGINE_STORAGE_DRIVER:-overlay2}
ENGINE_TIMEOUT=${MADENGINE_ENGINE_TIMEOUT:-60}

DEFAULT_SOCK=/var/run/docker.sock
DOCKERD_PID=/var/run/madengine-dockerd.pid
DOCKERD_LOG=/var/log/madengine-dockerd.log
APT_LOG=/var/log/madengine-apt.log
DEBOOTSTRAP_LOG=/var/log/madengine-debootstrap.log
CACHE_DIR=/var/cache/madengine
STATE_DIR=/var/lib/madengine
REG_DIR=$STATE_DIR/registry
REG_CONF=$REG_DIR/config.yml
REG_PID=/var/run/madengine-registry.pid
REG_LOG=/var/log/madengine-registry.log
REG_ADDR=127.0.0.1:5000
SMOKE_REF=localhost:5000/madengine-smoke:1

IMG_BOOKWORM=madengine-base:$SUITE
IMG_BUSYBOX=madengine-base:busybox
KEY_LABEL=org.madengine.base-key
CA_LABEL=org.madengine.ca-sha256
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
HOST_CA_DIR=/usr/local/share/ca-certificates
BUSYBOX=/bin/busybox

# ---------------------------------------------------------------- helpers
say() { printf 'engine: %s\n' "$*"; }
die() { printf 'engine: error: %s\n' "$*" >&2; exit 1; }
# Anything that fails without a die of its own still ends in one line (printed by the main shell only).
trap 'rc=$?; [[ $BASHPID == "$$" ]] && printf "engine: error: \`%s\` failed (exit %s, line %s)\n" "$BASH_COMMAND" "$rc" "$LINENO" >&2; exit $rc' ERR

TMPDIRS=()
cleanup() {
    local d m
    for d in "${TMPDIRS[@]}"; do
        [[ -d $d ]] || continue
        # debootstrap may leave proc/sys (or a /dev bind) mounted on failure: never delete through a mount.
        while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v p="$d/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r)
        rm -rf --one-file-system "$d" 2>/dev/null || true
    done
}
trap cleanup EXIT

# shellcheck source=dev/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sha() { sha256sum | cut -d' ' -f1; }



# Serialise up/registry/down between concurrent callers (root only; others cannot start anything anyway).
lock() {
    is_root || return 0
    mkdir -p "$STATE_DIR"
    exec 9>>"$STATE_DIR/engine.lock"
    flock -n 9 || { say "waiting for another engine.sh run"; flock -w 900 9 || die "another engine.sh run holds $STATE_DIR/engine.lock"; }
}

# spawn PIDFILE LOG CMD...: run CMD detached in its own session; PIDFILE gets CMD's pid. A small sh
# stays as its parent to reap it (so a dead daemon leaves no zombie behind its pid file).
spawn() {
    local pidfile=$1 log=$2; shift 2
    rm -f "$pidfile"
    setsid -f sh -c 'pf=$1; log=$2; shift 2; cd / || exit 1; "$@" </dev/null >>"$log" 2>&1 & echo $! >"$pf"; wait $!' \
        sh "$pidfile" "$log" "$@" </dev/null >/dev/null 2>&1 9>&-
    local i
    for i in $(seq 50); do [[ -s $pidfile ]] && return 0; sleep 0.1; done
    die "could not start $1 (no pid file $pidfile)"
}

# stop PIDFILE NAME WAIT: SIGTERM, wait up to WAIT s, then SIGKILL. Returns 1 if nothing was running.
stop_pid() {
    local pidfile=$1 name=$2 wait=$3 pid i
    pid=$(pid_of "$pidfile")
    if ! alive "$pid" "$name"; then rm -f "$pidfile"; return 1; fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then say "$name (pid $pid) ignored SIGTERM for ${wait}s, killing it"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
    rm -f "$pidfile"
}

# ---------------------------------------------------------------- engine
engine_ok() { timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
engine_where() { printf '%s' "${DOCKER_HOST:-unix://$DEFAULT_SOCK}"; }

engine_up() {
    local t pid args i
    if ! command -v docker >/dev/null && is_root; then ensure_pkgs docker.io; fi
    if command -v docker >/dev/null && engine_ok; then
        say "engine answers on $(engine_where) (server $(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        return 0
    fi
    if [[ -n ${DOCKER_HOST:-} && $DOCKER_HOST != "unix://$DEFAULT_SOCK" ]]; then
        is_root || die "nothing answers on DOCKER_HOST=$DOCKER_HOST; start that engine, or unset DOCKER_HOST and run this as root"
        say "nothing answers on DOCKER_HOST=$DOCKER_HOST; using the default socket (unset DOCKER_HOST to use it too)"
        export DOCKER_HOST=unix://$DEFAULT_SOCK
        if engine_ok; then say "engine answers on $(engine_where)"; return 0; fi
    fi
    is_root || die "no Docker engine answers on $(engine_where) and starting one needs root: run 'sudo bash dev/engine.sh up'"

    t=$(now_us)
    ensure_pkgs docker.io busybox-static debootstrap
    command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"

    pid=$(pid_of "$DOCKERD_PID")
    if alive "$pid" dockerd; then
        say "dockerd (pid $pid) is running but not answering yet; waiting"
    else
        # Stale state from a killed dockerd: our pid file, dockerd's own pid file (it refuses to start if
        # the pid there exists), containerd's pid file (dockerd would wait on a dead containerd) and the socket.
        rm -f "$DOCKERD_PID"
        alive "$(pid_of /var/run/docker.pid)" dockerd || rm -f /var/run/docker.pid
        alive "$(pid_of /var/run/docker/containerd/containerd.pid)" containerd || rm -f /var/run/docker/containerd/containerd.pid
        if [[ -S $DEFAULT_SOCK ]] && ! pgrep -x dockerd >/dev/null; then rm -f "$DEFAULT_SOCK"; fi
        [[ ! -f $DOCKERD_LOG || $(stat -c %s "$DOCKERD_LOG") -lt 10485760 ]] || mv -f "$DOCKERD_LOG" "$DOCKERD_LOG.1"
        args=(--pidfile /var/run/docker.pid)
        # A storage-driver in daemon.json plus the flag makes dockerd refuse to start.
        grep -qs '"storage-driver"' /etc/docker/daemon.json || args+=("--storage-driver=$STORAGE_DRIVER")
        printf '\n=== %s engine.sh starting dockerd %s\n' "$(date -Is)" "${args[*]}" >>"$DOCKERD_LOG"
        spawn "$DOCKERD_PID" "$DOCKERD_LOG" dockerd "${args[@]}"
        pid=$(pid_of "$DOCKERD_PID")
        say "started dockerd (pid $pid, log $DOCKERD_LOG)"
    fi
    for ((i = 0; i < ENGINE_TIMEOUT * 5; i++)); do
        if engine_ok; then
            say "engine up in $(since "$t") (server $(docker version --format '{{.Server.Version}}'), $(docker info --format '{{.Driver}}' 2>/dev/null), $DEFAULT_SOCK)"
            return 0
        fi
        alive "$pid" "" || break
        sleep 0.2
    done
    printf 'engine: error: dockerd did not answer within %ss; last lines of %s:\n' "$ENGINE_TIMEOUT" "$DOCKERD_LOG" >&2
    tail -n 20 "$DOCKERD_LOG" | sed 's/^/  | /' >&2
    exit 1
}

image_label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_mb() { docker image inspect -f '{{.Size}}' "$1" 2>/dev/null | awk '{printf "%.1f MB", $1 / 1e6}'; }

# retag_cleanup OLD_ID IMAGE: drop the previous image once the tag has moved (best effort).
retag_cleanup() { [[ -n $1 && $1 != "$(image_id "$2")" ]] && docker rmi "$1" >/dev/null 2>&1 || true; }

# ---------------------------------------------------------------- madengine-base:busybox
busybox_key() { { printf 'recipe=%s\n' "$RECIPE"; sha <"$BUSYBOX"; } | sha; }

base_busybox() {
    local key t tmp a old applets
    if ! [[ -x $BUSYBOX ]] || ! pkg_ok busybox-static; then
        if ! is_root && [[ -n $(image_id "$IMG_BUSYBOX") ]]; then say "$IMG_BUSYBOX present (busybox-static not installed here; kept)"; return 0; fi
        ensure_pkgs busybox-static
    fi
    key=$(busybox_key)
    if [[ $(image_label "$IMG_BUSYBOX" "$KEY_LABEL") == "$key" ]]; then
        say "$IMG_BUSYBOX is current ($(image_mb "$IMG_BUSYBOX"))"
    else
        t=$(now_us)
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/madengine-busybox.XXXXXX"); TMPDIRS+=("$tmp")
        mkdir -p "$tmp/root/bin" "$tmp/root/etc" "$tmp/root/root" "$tmp/root/tmp"
        chmod 1777 "$tmp/root/tmp"; chmod 700 "$tmp/root/root"
        cp "$BUSYBOX" "$tmp/root/bin/busybox"
        # Same result as `busybox --install -s /bin` run inside the image: one symlink per applet.
        for a in $("$BUSYBOX" --list); do [[ $a == busybox ]] || ln -s busybox "$tmp/root/bin/$a"; done
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$tmp/root/etc/passwd"
        printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/root/etc/group"
        old=$(image_id "$IMG_BUSYBOX")
        tar --numeric-owner --owner=0 --group=0 -C "$tmp/root" -c . |
            docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' -c "LABEL $KEY_LABEL=$key" - "$IMG_BUSYBOX" >/dev/null
        retag_cleanup "$old" "$IMG_BUSYBOX"
        say "built $IMG_BUSYBOX in $(since "$t") ($(image_mb "$IMG_BUSYBOX"))"
    fi
    applets=$("$BUSYBOX" --list)
    if grep -qx bash <<<"$applets"; then say "note: busybox has a bash applet"
    else say "note: Debian's busybox has no bash applet: use sh in $IMG_BUSYBOX"; fi
}

# ---------------------------------------------------------------- madengine-base:bookworm
# Key of the cached debootstrap tarball (and the image label): the debootstrap inputs + recipe version.
base_key() { printf 'suite=%s\nvariant=%s\nmirror=%s\ninclude=%s\nrecipe=%s\n' "$SUITE" "$VARIANT" "$MIRROR" "$INCLUDE" "$RECIPE" | sha; }
# The host CAs are layered in at import time, so a CA change re-imports without re-running debootstrap.
ca_key() {
    [[ -r $HOST_CA_BUNDLE ]] || { echo none; return; }
    {
        sha256sum "$HOST_CA_BUNDLE"
        if [[ -d $HOST_CA_DIR ]]; then (cd "$HOST_CA_DIR" && find -L . -type f -name '*.crt' -print0 | sort -z | xargs -0r sha256sum); fi
    } | sha
}
rootfs_tar() { printf '%s/%s-%s-%s.tar' "$CACHE_DIR" "$SUITE" "$VARIANT" "$1"; }

build_rootfs() {
    local key=$1 out work r t b sec f
    out=$(rootfs_tar "$key")
    is_root || die "the $SUITE rootfs cache ($out) is missing and building it needs root (debootstrap): run 'sudo bash dev/engine.sh up' once"
    ensure_pkgs debootstrap
    mkdir -p "$CACHE_DIR"
    work=$(mktemp -d "$CACHE_DIR/work.XXXXXX"); TMPDIRS+=("$work")
    r=$work/rootfs
    t=$(now_us)
    say "debootstrap --variant=$VARIANT $SUITE from $MIRROR${INCLUDE:+ (+ $INCLUDE)}: 30-60 s, log $DEBOOTSTRAP_LOG"
    debootstrap --variant="$VARIANT" ${INCLUDE:+"--include=$INCLUDE"} "$SUITE" "$r" "$MIRROR" >"$DEBOOTSTRAP_LOG" 2>&1 ||
        die "debootstrap failed: $(grep -E '^(E|W):' "$DEBOOTSTRAP_LOG" | tail -n1 || tail -n1 "$DEBOOTSTRAP_LOG") (log: $DEBOOTSTRAP_LOG)"
    say "debootstrap done in $(since "$t")"
    for b in bash timeout sleep tail sed grep; do
        [[ -e $r/usr/bin/$b || -e $r/bin/$b ]] || die "the $SUITE rootfs lacks $b"
    done
    # apt caches and lists out; derived Dockerfiles run apt-get update first, as with any Debian image.
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/archives/partial/* "$r"/var/cache/apt/*.bin \
        "$r"/var/lib/apt/lists/* "$r"/tmp/* "$r"/var/tmp/*
    mkdir -p "$r/var/lib/apt/lists/partial" "$r/etc/ssl/certs" "$r/usr/local/share/ca-certificates"
    if [[ $MIRROR == */debian ]]; then
        sec=${MIRROR%/debian}/debian-security
        printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
            "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$sec" "$SUITE" >"$r/etc/apt/sources.list"
    fi
    printf '%s\n' '// madengine base image: keep no downloaded packages or binary caches in image layers' \
        'Binary::apt::APT::Keep-Downloaded-Packages "false";' 'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
        >"$r/etc/apt/apt.conf.d/90madengine-clean"
    : >"$r/etc/resolv.conf"   # debootstrap copied the host's; docker mounts its own
    echo localhost >"$r/etc/hostname"
    rm -f "$CACHE_DIR/$SUITE-$VARIANT"-*.tar   # tarballs under other keys are stale
    tar --numeric-owner -C "$r" -cf "$out.tmp" .
    mv -f "$out.tmp" "$out"
    say "cached rootfs $out ($(du -m "$out" | cut -f1) MB)"
}

base_bookworm() {
    local key ca tar t tmp old rel paths=() changes=() f
    key=$(base_key); ca=$(ca_key)
    if [[ $(image_label "$IMG_BOOKWORM" "$KEY_LABEL") == "$key" && $(image_label "$IMG_BOOKWORM" "$CA_LABEL") == "$ca" ]]; then
        say "$IMG_BOOKWORM is current (key ${key:0:12}, $(image_mb "$IMG_BOOKWORM"))"
        return 0
    fi
    tar=$(rootfs_tar "$key")
    if [[ -s $tar ]]; then say "reusing cached rootfs $tar"; else build_rootfs "$key"; fi
    t=$(now_us)
    if [[ -w $CACHE_DIR ]]; then tmp=$(mktemp -d "$CACHE_DIR/import.XXXXXX"); else tmp=$(mktemp -d "${TMPDIR:-/tmp}/madengine-import.XXXXXX"); fi
    TMPDIRS+=("$tmp")
    changes=(-c 'CMD ["/bin/bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        -c 'ENV LANG=C.UTF-8' -c "LABEL $KEY_LABEL=$key" -c "LABEL $CA_LABEL=$ca")
    if [[ $ca != none ]]; then
        # Layer the host CAs over the cached rootfs: the bundle itself (HTTPS through the TLS-intercepting
        # egress) and the local CAs as files, so an update-ca-certificates in a derived image keeps them.
        cp --reflink=auto "$tar" "$tmp/rootfs.tar"
        mkdir -p "$tmp/ca/etc/ssl/certs" "$tmp/ca/usr/local/share/ca-certificates"
        cp "$HOST_CA_BUNDLE" "$tmp/ca/etc/ssl/certs/ca-certificates.crt"
        paths=(./etc/ssl/certs/ca-certificates.crt)
        if [[ -d $HOST_CA_DIR ]]; then
            while IFS= read -r -d '' f; do
                rel=./usr/local/share/ca-certificates/host-$(basename "$f")
                cp "$f" "$tmp/ca/$rel"; paths+=("$rel")
            done < <(find -L "$HOST_CA_DIR" -type f -name '*.crt' -print0 | sort -z)
        fi
        chmod 644 "$tmp/ca/etc/ssl/certs/ca-certificates.crt" "$tmp"/ca/usr/local/share/ca-certificates/* 2>/dev/null || true
        # dockerd rejects a layer tar that holds a path twice: drop the rootfs's own bundle, then append.
        tar --delete -f "$tmp/rootfs.tar" ./etc/ssl/certs/ca-certificates.crt 2>/dev/null || true
        tar --numeric-owner --owner=0 --group=0 -C "$tmp/ca" -rf "$tmp/rootfs.tar" "${paths[@]}"
        tar=$tmp/rootfs.tar
        changes+=(-c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
            -c 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt')
    else
        say "warning: no $HOST_CA_BUNDLE on this host; $IMG_BOOKWORM keeps Debian's CA bundle"
    fi
    old=$(image_id "$IMG_BOOKWORM")
    docker import "${changes[@]}" "$tar" "$IMG_BOOKWORM" >/dev/null
    retag_cleanup "$old" "$IMG_BOOKWORM"
    say "imported $IMG_BOOKWORM in $(since "$t") ($(image_mb "$IMG_BOOKWORM"), key ${key:0:12})"
}

# ---------------------------------------------------------------- registry
registry_answers() { curl -sf -m 3 -o /dev/null "http://$REG_ADDR/v2/"; }

registry_up() {
    local t pid i
    command -v curl >/dev/null || ensure_pkgs curl
    if registry_answers; then
        say "registry answers on $REG_ADDR"
    else
        is_root || die "no registry answers on $REG_ADDR and starting one needs root: run 'sudo bash dev/engine.sh registry'"
        t=$(now_us)
        ensure_pkgs docker-registry
        pid=$(pid_of "$REG_PID")
        if ! alive "$pid" docker-registry; then
            mkdir -p "$REG_DIR/data"
            cat >"$REG_CONF" <<EOF
# written by dev/engine.sh: local registry for madengine development (plain HTTP, loopback only)
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REG_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
            [[ ! -f $REG_LOG || $(stat -c %s "$REG_LOG") -lt 10485760 ]] || mv -f "$REG_LOG" "$REG_LOG.1"
            spawn "$REG_PID" "$REG_LOG" docker-registry serve "$REG_CONF"
            pid=$(pid_of "$REG_PID")
            say "started docker-registry (pid $pid, config $REG_CONF, log $REG_LOG)"
        fi
        for ((i = 0; i < 150; i++)); do
            registry_answers && break
            alive "$pid" "" || break
            sleep 0.2
        done
        registry_answers || {
            printf 'engine: error: registry did not answer on %s; last lines of %s:\n' "$REG_ADDR" "$REG_LOG" >&2
            tail -n 10 "$REG_LOG" | sed 's/^/  | /' >&2
            exit 1
        }
        say "registry up on $REG_ADDR in $(since "$t")"
    fi
    registry_smoke
}

# Push madengine-base:busybox through the registry and pull it back (127.0.0.0/8 is insecure-by-default).
registry_smoke() {
    local t out want
    t=$(now_us)
    want=$(image_id "$IMG_BUSYBOX")
    docker tag "$IMG_BUSYBOX" "$SMOKE_REF"
    out=$(docker push "$SMOKE_REF" 2>&1) || die "push of $SMOKE_REF failed: $(tail -n1 <<<"$out")"
    docker rmi "$SMOKE_REF" >/dev/null
    out=$(docker pull "$SMOKE_REF" 2>&1) || die "pull of $SMOKE_REF failed: $(tail -n1 <<<"$out")"
    [[ $(image_id "$SMOKE_REF") == "$want" ]] || die "pulled $SMOKE_REF differs from $IMG_BUSYBOX"
    say "push/pull of $SMOKE_REF ok in $(since "$t")"
}

# ---------------------------------------------------------------- status, down
status() {
    local pid key ca label rc=0 f
    pid=$(pid_of "$DOCKERD_PID")
    if command -v docker >/dev/null && engine_ok; then
        say "$(docker info --format 'dockerd {{.ServerVersion}}, storage {{.Driver}}, data-root {{.DockerRootDir}}, cgroup v{{.CgroupVersion}}' 2>/dev/null) on $(engine_where)$(alive "$pid" dockerd && printf ', pid %s (started by engine.sh)' "$pid")"
        key=$(base_key); ca=$(ca_key)
        label=$(image_label "$IMG_BOOKWORM" "$KEY_LABEL")
        if [[ -z $label ]]; then say "image $IMG_BOOKWORM: missing"
        elif [[ $label == "$key" && $(image_label "$IMG_BOOKWORM" "$CA_LABEL") == "$ca" ]]; then say "image $IMG_BOOKWORM: current, $(image_mb "$IMG_BOOKWORM")"
        else say "image $IMG_BOOKWORM: stale (run up), $(image_mb "$IMG_BOOKWORM")"; fi
        label=$(image_label "$IMG_BUSYBOX" "$KEY_LABEL")
        if [[ -z $label ]]; then say "image $IMG_BUSYBOX: missing"
        elif [[ ! -r $BUSYBOX || $label == "$(busybox_key)" ]]; then say "image $IMG_BUSYBOX: current, $(image_mb "$IMG_BUSYBOX")"
        else say "image $IMG_BUSYBOX: stale (run up), $(image_mb "$IMG_BUSYBOX")"; fi
    else
        if alive "$pid" dockerd; then say "no engine answers on $(engine_where), though dockerd (pid $pid) runs: starting up, or not reachable by $(id -un)"
        elif [[ -n $pid ]]; then say "no engine answers on $(engine_where) (stale pid file $DOCKERD_PID: $pid)"
        else say "no engine answers on $(engine_where)"; fi
        rc=1
    fi
    for f in "$CACHE_DIR/$SUITE-$VARIANT"-*.tar; do
        if [[ -e $f ]]; then say "rootfs cache: $f ($(du -m "$f" | cut -f1) MB)"; fi
    done
    pid=$(pid_of "$REG_PID")
    if command -v curl >/dev/null && registry_answers; then
        say "registry: up on $REG_ADDR$(alive "$pid" docker-registry && printf ', pid %s' "$pid"), repositories: $(curl -sf -m 3 "http://$REG_ADDR/v2/_catalog" | tr -d '\n ' || true)"
    else
        say "registry: down"
    fi
    return $rc
}

down() {
    local stopped=0
    if stop_pid "$REG_PID" docker-registry 10; then say "stopped docker-registry"; stopped=1; fi
    if stop_pid "$DOCKERD_PID" dockerd 40; then say "stopped dockerd (images and caches kept)"; stopped=1
    elif pgrep -x dockerd >/dev/null; then say "a dockerd not started by engine.sh is running; left alone"; fi
    ((stopped)) || say "nothing started by engine.sh was running"
}

usage() { sed -n '5,8s/^# \{0,1\}//p' "$0"; }

# ---------------------------------------------------------------- main
main() {
    local cmd=${1:-up} t
    t=$(now_us)
    case $cmd in
    up) lock; engine_up; base_busybox; base_bookworm; say "up: done in $(since "$t")" ;;
    registry) lock; engine_up; base_busybox; registry_up; say "registry: done in $(since "$t")" ;;
    status) status || exit 1 ;;
    down) lock; down ;;
    -h | --help | help) usage ;;
    *) usage >&2; die "unknown command '$cmd' (up, registry, status, down)" ;;
    esac
}
main "$@"
