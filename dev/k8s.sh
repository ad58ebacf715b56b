#!/usr/bin/env bash
# dev/k8s.sh: a real single-node Kubernetes 1.20.2 cluster on 127.0.0.1, built from Debian's source package
# (see /work/shared/notes/k8s-local.md and README.md "Kubernetes").
#
#   bash dev/k8s.sh build        install Debian packages, build the server binaries (cached; 10-25 min once)
#   bash dev/k8s.sh [up]         build when the cache is absent, then start the cluster (~20 s); idempotent
#   bash dev/k8s.sh status       what is up; exit 0 when the API server answers and the node is Ready
#   bash dev/k8s.sh load IMG...  copy Docker images (from the engine at DOCKER_HOST) into the cluster's containerd
#   bash dev/k8s.sh kubeconfig   print the kubeconfig path
#   bash dev/k8s.sh down         stop everything up started (by pid) and wipe the cluster state (binaries stay)
#
# Binaries are cached outside the repository in /var/cache/madengine/k8s-<sha256 of the .orig.tar.gz>/ and are
# rebuilt only when the source changes. The cluster's containerd is its own instance (own root, state and socket),
# separate from the Docker engine's. Only 127.0.0.1 and the pod bridge k8stest0 (10.244.7.0/24) are used; image
# pulls are pointed at 127.0.0.1:9 so that nothing leaves the machine: images are imported (`load`).
# Environment: MADENGINE_K8S_DIR (state, default /var/lib/madengine/k8s), MADENGINE_K8S_TIMEOUT (s, default 120).
set -Eeuo pipefail
umask 022

# Bump RECIPE whenever the build below changes: a cache built by another recipe is rebuilt.
RECIPE=madengine-k8s-2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_ROOT=/var/cache/madengine
SRC_DIR=$CACHE_ROOT/k8s-src
W=${MADENGINE_K8S_DIR:-/var/lib/madengine/k8s}
P=$W/pki
RUN=$W/run
SOCK=$W/ctd/containerd.sock
KUBECONFIG_FILE=$W/kubeconfig
BUILD_DIR=/var/tmp/madengine-k8s-build
APT_LOG=/var/log/madengine-apt.log
BUILD_LOG=/var/log/madengine-k8s-build.log
TIMEOUT=${MADENGINE_K8S_TIMEOUT:-120}
TOKEN=madengine-test-token
PKGS=(golang-go etcd-server containerd runc containernetworking-plugins busybox-static rsync iptables gcc libc6-dev make
    openssl curl iproute2 python3 golang-github-modern-go-reflect2-dev)
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2

say() { printf 'k8s: %s\n' "$*"; }
die() { printf 'k8s: error: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [[ $BASHPID == "$$" ]] && printf "k8s: error: \`%s\` failed (exit %s, line %s)\n" "$BASH_COMMAND" "$rc" "$LINENO" >&2; exit $rc' ERR

# shellcheck source=dev/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Serialise build/up/down between concurrent callers.
lock() {
    mkdir -p "$CACHE_ROOT" "$W"
    exec 9>>"$W/../k8s.lock"
    flock -n 9 || { say "waiting for another k8s.sh run"; flock -w 1800 9 || die "another k8s.sh run holds $W/../k8s.lock"; }
}

# ---------------------------------------------------------------- build
# The source tarball (downloaded once with a private apt configuration; /etc/apt is untouched).
src_tarball() {
    local f
    f=$(ls "$SRC_DIR"/kubernetes_*.orig.tar.gz 2>/dev/null | head -n1 || true)
    if [[ -z $f ]]; then
        local t a
        t=$(now_us)
        mkdir -p "$SRC_DIR/apt/lists/partial"
        printf 'deb-src http://deb.debian.org/debian bookworm main\n' >"$SRC_DIR/apt/src.list"
        a=(-o "Dir::Etc::SourceList=$SRC_DIR/apt/src.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$SRC_DIR/apt/lists")
        (cd "$SRC_DIR" && apt-get "${a[@]}" -q update >>"$APT_LOG" 2>&1 && apt-get "${a[@]}" -q source --download-only kubernetes >>"$APT_LOG" 2>&1) \
            || die "could not download Debian's kubernetes source package: $(tail -n1 "$APT_LOG")"
        f=$(ls "$SRC_DIR"/kubernetes_*.orig.tar.gz | head -n1)
        say "source $(basename "$f") downloaded in $(since "$t")" >&2
    fi
    printf '%s' "$f"
}
cache_dir() {
    local f sum
    f=$(src_tarball) && sum=$(sha256sum <"$f" | cut -c1-64) && [[ -n $sum ]] || die "cannot checksum the source tarball in $SRC_DIR"
    printf '%s/k8s-%s' "$CACHE_ROOT" "$sum"
}
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
cache_ok() {
    local c=$1 b
    for b in "${BINS[@]}"; do [[ -x $c/bin/$b ]] || return 1; done
    [[ -s $c/images/pause.tar && -s $c/images/busybox.tar ]] && grep -qx "recipe=$RECIPE" "$c/KEY" 2>/dev/null
}

build() {
    ensure_pkgs "${PKGS[@]}"
    local c t tarball top
    c=$(cache_dir)
    if cache_ok "$c"; then say "binaries cached in $c"; return 0; fi
    is_root || die "building needs root"
    t=$(now_us)
    tarball=$(src_tarball)
    rm -rf "$BUILD_DIR"; mkdir -p "$BUILD_DIR"
    tar xzf "$tarball" -C "$BUILD_DIR"
    top=$(find "$BUILD_DIR" -mindepth 1 -maxdepth 1 -type d | head -n1)
    # The vendored reflect2 1.0.1 breaks map iteration with Go >= 1.18 (the API server dies with "fatal error:
    # fault" in UnsafeMapType.UnsafeIterate when it pretty-prints JSON); Debian's reflect2 1.0.2 fixes it.
    [[ -f $REFLECT2/reflect2.go ]] || die "missing $REFLECT2 (package golang-github-modern-go-reflect2-dev)"
    rm -f "$top/vendor/github.com/modern-go/reflect2/"*.go "$top/vendor/github.com/modern-go/reflect2/"*.s
    cp "$REFLECT2"/*.go "$REFLECT2"/*.s "$top/vendor/github.com/modern-go/reflect2/"
    rm -f "$top/vendor/github.com/modern-go/reflect2/"*_test.go
    say "building ${BINS[*]} from $(basename "$tarball") (log: $BUILD_LOG; 10-25 min on 2 cores)"
    (cd "$top" && env CGO_ENABLED=0 KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet") >"$BUILD_LOG" 2>&1 \
        || die "make failed: $(tail -n1 "$BUILD_LOG") (log: $BUILD_LOG)"
    rm -rf "$c.tmp"; mkdir -p "$c.tmp/bin" "$c.tmp/images"
    for b in "${BINS[@]}"; do cp "$top/_output/bin/$b" "$c.tmp/bin/"; done
    # Images without a registry: pause from its C source, busybox from the static host binary.
    gcc -Os -static -o "$c.tmp/images/pause" "$top/build/pause/linux/pause.c" >>"$BUILD_LOG" 2>&1 || die "could not compile pause (log: $BUILD_LOG)"
    python3 "$ROOT/tests/k8s/mkimage.py" "$c.tmp/images" "$c.tmp/images/pause" /bin/busybox >>"$BUILD_LOG" 2>&1 \
        || die "could not write the pause/busybox image tars (log: $BUILD_LOG)"
    printf 'recipe=%s\nsource=%s\n' "$RECIPE" "$(basename "$tarball")" >"$c.tmp/KEY"
    rm -rf "$c"; mv "$c.tmp" "$c"
    rm -rf "$BUILD_DIR"
    say "built and cached in $c in $(since "$t")"
}

# ---------------------------------------------------------------- up
# spawn NAME CMD...: run CMD detached in its own session; $RUN/NAME.pid gets its pid, $RUN/NAME.log its output.
spawn() {
    local name=$1 pidfile=$RUN/$1.pid log=$RUN/$1.log i; shift
    rm -f "$pidfile"
    setsid -f sh -c 'pf=$1; log=$2; shift 2; cd / || exit 1; "$@" </dev/null >>"$log" 2>&1 & echo $! >"$pf"; wait $!' \
        sh "$pidfile" "$log" "$@" </dev/null >/dev/null 2>&1 9>&-
    for i in $(seq 50); do [[ -s $pidfile ]] && return 0; sleep 0.1; done
    die "could not start $name (no pid file $pidfile)"
}
# wait_for WHAT SECONDS CMD...: poll CMD every 0.2 s.
wait_for() {
    local what=$1 secs=$2 i; shift 2
    for ((i = 0; i < secs * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what not ready after ${secs}s (logs: $RUN/*.log)"
}
# A curl User-Agent makes the API server pretty-print JSON, through the json-iterator path that crashes 1.20 built
# with Go >= 1.18 unless reflect2 is >= 1.0.2 (see build); a neutral agent keeps the check away from it anyway.
api() { curl -sf -m 5 -A madengine-k8s.sh --cacert "$P/ca.crt" -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:6443$1"; }
node_ready() {
    api /api/v1/nodes/localhost | python3 -c 'import json,sys; c=json.load(sys.stdin)["status"].get("conditions") or []; sys.exit(0 if any(x["type"]=="Ready" and x["status"]=="True" for x in c) else 1)'
}
running() { local n; for n in etcd containerd apiserver kcm sched kubelet; do alive "$(pid_of "$RUN/$n.pid")" || return 1; done; }

pki() {
    [[ -f $P/ca.crt ]] && return 0
    mkdir -p "$P"
    (
        cd "$P"
        openssl genrsa -out sa.key 2048
        openssl rsa -in sa.key -pubout -out sa.pub
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=madengine-test-ca
        for n in apiserver:kube-apiserver kubelet:localhost akc:kube-apiserver-kubelet-client; do
            f=${n%%:*}; cn=${n#*:}
            openssl req -newkey rsa:2048 -nodes -keyout "$f.key" -out "$f.csr" -subj "/CN=$cn/O=system:masters"
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$f.ext"
            openssl x509 -req -in "$f.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$f.crt" -days 3650 -extfile "$f.ext"
        done
        echo "$TOKEN,admin,admin,system:masters" >tokens.csv
    ) >/dev/null 2>&1 || die "openssl failed writing $P"
}

configs() {
    mkdir -p "$RUN" "$W/etcd" "$W/cni/net.d" "$W/ctd/certs.d/_default" "$W/kubelet"
    cat >"$KUBECONFIG_FILE" <<K
apiVersion: v1
kind: Config
clusters: [{name: madengine-local, cluster: {server: "https://127.0.0.1:6443", certificate-authority: $P/ca.crt}}]
users: [{name: admin, user: {token: $TOKEN}}]
contexts: [{name: madengine-local, context: {cluster: madengine-local, user: admin}}]
current-context: madengine-local
K
    cat >"$W/cni/net.d/10-podnet.conflist" <<K
{"cniVersion":"0.4.0","name":"podnet","plugins":[{"type":"bridge","bridge":"k8stest0","isGateway":false,"ipMasq":false,
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.7.0/24"}]],"routes":[],"dataDir":"$W/cni/ipam"}},{"type":"loopback"}]}
K
    printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' >"$W/ctd/certs.d/_default/hosts.toml"
    cat >"$W/ctd/config.toml" <<K
version = 2
root = "$W/ctd/root"
state = "$W/ctd/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.2"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$W/ctd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
K
    cat >"$W/kubelet/config.yaml" <<K
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $P/kubelet.crt
tlsPrivateKeyFile: $P/kubelet.key
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: $P/ca.crt}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 5s
K
}

up() {
    is_root || die "the cluster needs root"
    local t c B
    t=$(now_us)
    if running && node_ready; then say "cluster already up (KUBECONFIG=$KUBECONFIG_FILE)"; return 0; fi
    build
    c=$(cache_dir); B=$c/bin
    down quiet
    pki; configs
    spawn etcd etcd --data-dir "$W/etcd" --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster default=http://127.0.0.1:2380
    spawn containerd containerd --config "$W/ctd/config.toml"
    wait_for etcd 30 curl -sf -m 2 http://127.0.0.1:2379/health
    spawn apiserver "$B/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
        --secure-port=6443 --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
        --token-auth-file="$P/tokens.csv" --authorization-mode=AlwaysAllow --service-cluster-ip-range=10.96.0.0/16 \
        --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
        --kubelet-client-certificate="$P/akc.crt" --kubelet-client-key="$P/akc.key" --kubelet-certificate-authority="$P/ca.crt" \
        --kubelet-preferred-address-types=Hostname --feature-gates=TTLAfterFinished=true
    wait_for "kube-apiserver" "$TIMEOUT" api /readyz
    say "apiserver ready after $(since "$t")"
    spawn kcm "$B/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --bind-address=127.0.0.1 --port=0 \
        --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" --feature-gates=TTLAfterFinished=true
    spawn sched "$B/kube-scheduler" --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --bind-address=127.0.0.1 --port=0
    wait_for containerd 30 ctr -a "$SOCK" version
    local i
    for i in "$c/images/pause.tar" "$c/images/busybox.tar"; do
        ctr -a "$SOCK" -n k8s.io images import "$i" >/dev/null || die "could not import $i"
    done
    spawn kubelet "$B/kubelet" --config="$W/kubelet/config.yaml" --kubeconfig="$KUBECONFIG_FILE" --root-dir="$W/kubelet/root" \
        --cert-dir="$W/kubelet/pki" --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
        --hostname-override=localhost --pod-infra-container-image=registry.k8s.io/pause:3.2
    wait_for "node localhost" "$TIMEOUT" node_ready
    wait_for "service account default" "$TIMEOUT" api /api/v1/namespaces/default/serviceaccounts/default
    say "up: node Ready after $(since "$t") (KUBECONFIG=$KUBECONFIG_FILE, containerd socket $SOCK)"
}

# ---------------------------------------------------------------- load, status, down
load() {
    (($#)) || die "usage: dev/k8s.sh load IMAGE..."
    alive "$(pid_of "$RUN/containerd.pid")" containerd || die "the cluster's containerd is not running; run: bash dev/k8s.sh up"
    local img t
    for img; do
        t=$(now_us)
        docker image inspect "$img" >/dev/null 2>&1 || die "image $img is not in the Docker engine; build it first (madengine build)"
        docker save "$img" | ctr -a "$SOCK" -n k8s.io images import - >/dev/null || die "could not import $img into $SOCK"
        say "loaded $img in $(since "$t")"
    done
}

status() {
    local n pid rc=0
    for n in etcd containerd apiserver kcm sched kubelet; do
        pid=$(pid_of "$RUN/$n.pid")
        if alive "$pid"; then say "$n: running, pid $pid"; else say "$n: down"; rc=1; fi
    done
    if node_ready; then say "node localhost Ready (KUBECONFIG=$KUBECONFIG_FILE)"; else say "node not Ready"; rc=1; fi
    if [[ -f $SRC_DIR/apt/src.list ]] && ls "$SRC_DIR"/kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
        if cache_ok "$(cache_dir)"; then say "binaries: cached in $(cache_dir)"
        elif [[ -d $(cache_dir)/bin ]]; then say "binaries: $(cache_dir) is from another recipe than $RECIPE (run build)"
        else say "binaries: not built (run build)"; fi
    else
        say "binaries: source not downloaded (run build)"
    fi
    return $rc
}

# stop NAME WAIT: SIGTERM (twice: the apiserver may ignore the first), then SIGKILL; checks the pid is gone.
stop() {
    local name=$1 wait=$2 pid i
    pid=$(pid_of "$RUN/$name.pid")
    alive "$pid" || { rm -f "$RUN/$name.pid"; return 1; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do alive "$pid" || break; ((i == 20)) && kill -TERM "$pid" 2>/dev/null; sleep 0.1; done
    alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; }
    rm -f "$RUN/$name.pid"
}

down() {
    local quiet=${1:-} stopped=0 n t C
    [[ -d $RUN ]] || { [[ -n $quiet ]] || say "nothing to stop"; return 0; }
    for n in kubelet sched kcm; do stop "$n" 10 && stopped=1; done
    C=(ctr -a "$SOCK" -n k8s.io)
    if alive "$(pid_of "$RUN/containerd.pid")"; then
        for t in $("${C[@]}" tasks ls -q 2>/dev/null); do "${C[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
        sleep 1
        for t in $("${C[@]}" tasks ls -q 2>/dev/null); do "${C[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true; done
        for t in $("${C[@]}" containers ls -q 2>/dev/null); do "${C[@]}" containers delete "$t" >/dev/null 2>&1 || true; done
    fi
    for n in containerd apiserver etcd; do stop "$n" 10 && stopped=1; done
    awk -v p="$W/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ip link del k8stest0 2>/dev/null || true
    for n in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns del "$n" 2>/dev/null || true; done
    for n in /sys/fs/cgroup/*/kubepods; do [[ -d $n ]] && find "$n" -depth -type d -exec rmdir {} + 2>/dev/null; done
    # A fresh cluster every time: stale Jobs must not come back. PKI and images (in containerd's root) stay.
    rm -rf "$W/etcd" "$W/kubelet/root" "$W/kubelet/pki" "$W/cni/ipam"
    [[ -n $quiet ]] || { ((stopped)) && say "stopped the cluster" || say "nothing was running"; }
}

usage() { sed -n '5,10s/^# \{0,1\}//p' "$0"; }

main() {
    local cmd=${1:-up} t
    t=$(now_us)
    case $cmd in
    build) lock; build ;;
    up) if running && node_ready; then say "cluster already up (KUBECONFIG=$KUBECONFIG_FILE)"; else lock; up; fi ;;
    status) status || exit 1 ;;
    load) shift; load "$@" ;;
    kubeconfig) printf '%s\n' "$KUBECONFIG_FILE" ;;
    down) lock; down ;;
    -h | --help | help) usage ;;
    *) usage >&2; die "unknown command '$cmd' (build, up, status, load, kubeconfig, down)" ;;
    esac
}
main "$@"
