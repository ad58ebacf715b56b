# Shared helpers of the dev/*.sh scripts (sourced, not run). The caller defines say() and die() for its prefix.
# shellcheck shell=bash

APT_LOG=${APT_LOG:-/var/log/madengine-apt.log}
APT_UPDATED=

now_us() { local t=$EPOCHREALTIME; printf '%s' "${t//[.,]/}"; }
since() { local d=$(( $(now_us) - $1 )); printf '%d.%ds' $((d / 1000000)) $((d / 100000 % 10)); }
is_root() { [[ $(id -u) == 0 ]]; }

# alive PID [NAME]: PID is a running (not zombie) process whose comm is NAME (any comm if NAME is empty).
# PID 1 on this machine kind does not reap orphans, so a dead daemon can linger as a zombie.
alive() {
    local pid=$1 name=${2:-} stat
    [[ $pid =~ ^[0-9]+$ ]] && stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != [ZX]* ]] || return 1
    [[ -z $name || $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]
}
pid_of() { [[ -r $1 ]] && tr -dc '0-9' <"$1" || true; }
pkg_ok() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

# ensure_pkgs PKG...: install the missing Debian packages (root only); apt-get update once per script run.
# Other processes may hold the dpkg lock: wait for it rather than fail.
ensure_pkgs() {
    local p missing=() t
    for p; do pkg_ok "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    is_root || die "missing Debian packages (${missing[*]}); as root run: apt-get install ${missing[*]}"
    t=$(now_us)
    if [[ -z $APT_UPDATED ]]; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=300 -q update >>"$APT_LOG" 2>&1 \
            || die "apt-get update failed: $(tail -n1 "$APT_LOG") (log: $APT_LOG)"
        APT_UPDATED=1
    fi
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
        "${missing[@]}" >>"$APT_LOG" 2>&1 \
        || die "apt-get install ${missing[*]} failed: $(tail -n1 "$APT_LOG") (log: $APT_LOG)"
    say "packages installed in $(since "$t")"
}
