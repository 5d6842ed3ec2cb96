#!/usr/bin/env bash
# sharegwd test lab: one hypervisor, two guests, one backend host, all in network
# namespaces on this machine. Real share servers (nfs-ganesha, samba), real clients
# (libnfs-utils, smbclient); no kernel NFS/CIFS client is needed anywhere.
#
#   sgwlab-g1 (guest 1, domain acme)                  sgwlab-gw (hypervisor: sharegwd runs here)
#   tenant0 198.19.0.5/24 (ifb/dummy)
#   tun0    169.254.1.2/30 ===veth===  sgwt-g1  UP, no address: sharegwd adds 169.254.1.1 peer 169.254.1.2
#   route 198.18.0.0/24 via 169.254.1.1                                                       |
#                                                                                                |
#   sgwlab-g2 (guest 2, domain beta)                                                             |
#   tenant0 198.19.1.5/24                                                                        |
#   tun0    169.254.2.2/30 ===veth===  sgwt-g2  UP, no address: sharegwd adds 169.254.2.1 peer 169.254.2.2
#   route 198.18.0.0/24 via 169.254.2.1                                                          |
#                                                                                                |
#                                      vb 198.18.0.1/24   (+ .11 = acme source IP, .12 = beta source IP)
#                                       ||
#                                      veth
#                                       ||
#   sgwlab-be (backends)              eb 198.18.0.100/24  acme server      (NFS /export/acme, /export/acme-private; SMB [acme])
#                                        198.18.0.101/24  beta server      (NFS /export/beta;  SMB [beta])
#                                        198.18.0.102/24  second acme server (for a share acme's guest is NOT granted)
#                                     route 169.254.0.0/16 via 198.18.0.1  (routed baseline benchmark only)
#
# Listening in sgwlab-be: ganesha *:2049 (NFSv3+v4) and *:20048 (mountd), rpcbind *:111,
# smbd 198.18.0.100-102:445, iperf3 198.18.0.100:5201. One ganesha and one smbd serve all
# three "servers": access control is by client address (198.18.0.11 vs .12), exactly
# what the per-domain source IP of sharegwd must produce.
# sgwlab-gw gets ip_forward=1 and conntrack accounting, but NO addresses on sgwt-gN and NO
# iptables rules: those belong to the daemon under test.
#
# Only 169.254.0.0/16, 198.18.0.0/15 and 127.0.0.0/8 are used, and only inside the
# namespaces created here.
#
# Usage: lab.sh install | up | down [--purge] | status | bigdata
#   state: /var/lib/sgwlab/{data,etc,log,run,samba,ganesha,be-run}
set -euo pipefail

LAB=/var/lib/sgwlab
DATA=$LAB/data
ETC=$LAB/etc
LOG=$LAB/log
RUN=$LAB/run            # pid files
BERUN=$LAB/be-run       # private /run of the backend's rpcbind + ganesha (see BE_RUN_WRAP)
PW=labpass123
USER_TAG="sgwlab test user"   # GECOS marker: purge deletes only users carrying it

NS_GW=sgwlab-gw
NS_BE=sgwlab-be
NS_G1=sgwlab-g1
NS_G2=sgwlab-g2
ALL_NS="$NS_GW $NS_BE $NS_G1 $NS_G2"

# name:namespace of every daemon this script starts (pid file $RUN/<name>.pid)
DAEMONS="rpcbind:$NS_BE ganesha:$NS_BE smbd:$NS_BE iperf3:$NS_BE"
# tcp ports that must listen in sgwlab-be for the lab to count as healthy
BE_PORTS="111 2049 20048 445 5201"

PKGS="iptables conntrack iperf3 socat haproxy libnfs-utils smbclient samba nfs-ganesha
      nfs-ganesha-vfs nfs-ganesha-proxy-v4 rpcbind iproute2 procps systemd python3
      libnfs-dev gcc libc6-dev samba-testsuite"
# nfs-ops: the writes libnfs-utils lacks (mkdir, rename, chmod, ...) on the same client library
NFS_OPS_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/nfs-ops.c"
NFS_OPS=/var/lib/sgwlab/bin/nfs-ops

log() { echo "lab: $*" >&2; }
die() { echo "lab: ERROR: $*" >&2; exit 1; }

# run a chatty command; show its output only if it fails
quiet() {
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    [ $rc = 0 ] || printf '%s\n' "$out" >&2
    return $rc
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# ---------------------------------------------------------------- install
cmd_install() {
    local missing="" p
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        log "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        quiet apt-get update -qq
        # shellcheck disable=SC2086
        quiet apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
    fi
    if [ ! -x "$NFS_OPS" ] || [ "$NFS_OPS_SRC" -nt "$NFS_OPS" ]; then
        mkdir -p "$(dirname "$NFS_OPS")"
        quiet gcc -O2 -Wall -Wextra -o "$NFS_OPS.tmp" "$NFS_OPS_SRC" -lnfs
        mv "$NFS_OPS.tmp" "$NFS_OPS"
    fi
}

# ---------------------------------------------------------------- helpers
ns_exists() { [ -e "/run/netns/$1" ]; }

# PID 1 on this VM reaps orphans only every ~2 s, and kill -0 succeeds on a zombie: treat
# a zombie as gone, or every stop waits 2 s for nothing
running() {
    local st
    st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# True if the pid in $RUN/<name>.pid is alive AND lives in the expected namespace:
# the namespace check makes a recycled pid harmless.
pid_ok() {
    local name=$1 ns=$2 pid
    [ -s "$RUN/$name.pid" ] || return 1
    pid=$(cat "$RUN/$name.pid")
    running "$pid" || return 1
    [ "$(ip netns identify "$pid" 2>/dev/null)" = "$ns" ]
}

listening() {   # ns port
    local ns=$1 port=$2
    ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep . >/dev/null
}

wait_listen() { # ns port name timeout_s
    local ns=$1 port=$2 name=$3 t=${4:-20} i
    for ((i = 0; i < t * 10; i++)); do
        listening "$ns" "$port" && return 0
        pid_ok "$name" "$ns" || die "$name died before listening on $port; see $LOG/$name.*"
        sleep 0.1
    done
    die "$name did not listen on $ns:$port within ${t}s; see $LOG/$name.*"
}

# Start a long-running daemon in a namespace, in its own session (smbd --no-process-group
# signals its whole process group on exit: it would kill us), with stdin/stdout/stderr on
# files and every other inherited fd closed. A daemon holding the caller's pipe makes
# `lab.sh up | tail` or a Node execFile() hang forever.
spawn() {       # name ns cmd...
    local name=$1 ns=$2; shift 2
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        # not a process-group leader (no job control here), so setsid does not fork:
        # $! below is the daemon's own pid
        exec setsid ip netns exec "$ns" "$@" </dev/null >>"$LOG/$name.out" 2>&1
    ) &
    echo $! >"$RUN/$name.pid"
    disown $!
}

# SIGTERM, wait up to $2 s, then SIGKILL
stop_pid() {
    local pid=$1 t=${2:-10} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < t * 10; i++)); do
        running "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.1
}

# ---------------------------------------------------------------- data
write_if_differs() {  # file content
    [ -f "$1" ] && [ "$(cat "$1")" = "$2" ] && return 0
    printf '%s\n' "$2" >"$1"
}

random_file() {       # path size(head -c syntax) bytes
    local f=$1 size=$2 bytes=$3
    [ -f "$f" ] && [ "$(stat -c %s "$f")" = "$bytes" ] && return 0
    log "creating $f ($size random)"
    head -c "$size" /dev/urandom >"$f.tmp"   # tmp + mv: an interrupted run never leaves a short file
    mv "$f.tmp" "$f"
}

make_data() {
    mkdir -p "$DATA/acme" "$DATA/beta" "$DATA/acme-private"
    write_if_differs "$DATA/acme/hello.txt" "hello from acme"
    write_if_differs "$DATA/beta/hello.txt" "hello from beta"
    write_if_differs "$DATA/acme-private/hello.txt" "hello from acme-private"
    random_file "$DATA/acme/blob64m" 64M $((64 << 20))
    # guests act as root (squash off) or usera/userb; everyone may write in the lab
    chmod -R a+rwX "$DATA"
}

cmd_bigdata() {
    need_root
    mkdir -p "$DATA/acme"
    random_file "$DATA/acme/big1g" 1G $((1 << 30))
    chmod a+rw "$DATA/acme/big1g"
}

# ---------------------------------------------------------------- topology
make_topology() {
    local ns i
    for ns in $ALL_NS; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done

    for i in 1 2; do
        local g=sgwlab-g$i
        # the tunnel: guest end is tun0, hypervisor end sgwt-gN (adopted by sharegwd)
        ip link add "sgwt-g$i" netns "$NS_GW" type veth peer name tun0 netns "$g"
        ip -n "$g" addr add "169.254.$i.2/30" dev tun0
        ip -n "$g" link set tun0 up
        ip -n "$NS_GW" link set "sgwt-g$i" up
        # the gateway address does not exist until sharegwd adds it; the /30 makes the
        # next hop on-link so the route can be installed now
        ip -n "$g" route add 198.18.0.0/24 via "169.254.$i.1" dev tun0
        # tenant address, for "foreign source" tests. This kernel has no dummy driver,
        # so fall back to ifb: also a sink-only device, up with carrier.
        ip -n "$g" link add tenant0 type dummy 2>/dev/null \
            || ip -n "$g" link add tenant0 type ifb
        ip -n "$g" addr add "198.19.$((i - 1)).5/24" dev tenant0
        ip -n "$g" link set tenant0 up
    done

    ip link add vb netns "$NS_GW" type veth peer name eb netns "$NS_BE"
    ip -n "$NS_GW" addr add 198.18.0.1/24 dev vb
    ip -n "$NS_GW" addr add 198.18.0.11/24 dev vb    # acme source IP
    ip -n "$NS_GW" addr add 198.18.0.12/24 dev vb    # beta source IP
    ip -n "$NS_GW" link set vb up
    ip -n "$NS_BE" addr add 198.18.0.100/24 dev eb   # acme server
    ip -n "$NS_BE" addr add 198.18.0.101/24 dev eb   # beta server
    ip -n "$NS_BE" addr add 198.18.0.102/24 dev eb   # second acme server (not granted)
    ip -n "$NS_BE" link set eb up
    ip -n "$NS_BE" route add 169.254.0.0/16 via 198.18.0.1 dev eb

    ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$NS_GW" sysctl -qw net.netfilter.nf_conntrack_acct=1 2>/dev/null || true
}

# ---------------------------------------------------------------- backend servers
write_ganesha_conf() {
    mkdir -p "$LAB/ganesha/recovery"
    cat >"$ETC/ganesha-be.conf" <<EOF
# generated by test/lab/lab.sh: backend NFS server for all three "servers"
NFS_CORE_PARAM {
    Protocols = 3, 4;
    NFS_Port = 2049;
    MNT_Port = 20048;          # fixed, so the gateway can forward it like 2049
    Enable_NLM = false;        # no statd/NLM in the lab
    Enable_RQUOTA = false;
    Enable_UDP = false;        # TCP only, like the gateway
    mount_path_pseudo = true;  # NFSv3 MOUNT uses the Pseudo path too: nfs://HOST/export/acme
                               # works for v3 and v4 (default false = the server's real Path)
}
NFSV4 {
    Graceless = true;          # otherwise 90 s of NFS4ERR_GRACE after every start
    Lease_Lifetime = 20;
    RecoveryBackend = fs;
    RecoveryRoot = $LAB/ganesha/recovery;
}
NFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = EVENT; }

EXPORT {
    Export_Id = 1;
    Path = $DATA/acme;
    Pseudo = /export/acme;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    Squash = No_Root_Squash;
    Access_Type = None;        # default deny: only the CLIENT blocks grant
    FSAL { Name = VFS; }
    CLIENT { Clients = 198.18.0.11; Access_Type = RW; }   # acme source IP
    CLIENT { Clients = 169.254.1.2; Access_Type = RW; }   # routed (no NAT) baseline only
}
EXPORT {
    Export_Id = 2;
    Path = $DATA/beta;
    Pseudo = /export/beta;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    Squash = No_Root_Squash;
    Access_Type = None;
    FSAL { Name = VFS; }
    CLIENT { Clients = 198.18.0.12; Access_Type = RW; }   # beta source IP
}
EXPORT {
    Export_Id = 3;
    Path = $DATA/acme-private;
    Pseudo = /export/acme-private;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    Squash = No_Root_Squash;
    Access_Type = None;
    FSAL { Name = VFS; }
    CLIENT { Clients = 198.18.0.11; Access_Type = RW; }
}
EOF
}

write_smb_conf() {
    local S=$LAB/samba
    mkdir -p "$S"/{private,lock,state,cache,pid,ncalrpc,binddns} "$LOG/samba"
    cat >"$ETC/smb.conf" <<EOF
# generated by test/lab/lab.sh
[global]
  workgroup = SGWLAB
  server role = standalone server
  security = user
  passdb backend = tdbsam
  map to guest = never
  interfaces = 198.18.0.100 198.18.0.101 198.18.0.102
  bind interfaces only = yes
  smb ports = 445
  disable netbios = yes
  server min protocol = SMB2_10
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  private dir = $S/private
  lock directory = $S/lock
  state directory = $S/state
  cache directory = $S/cache
  pid directory = $S/pid
  ncalrpc dir = $S/ncalrpc
  binddns dir = $S/binddns
  log file = $LOG/samba/log.%m
  max log size = 1000
  log level = 1

[acme]
  path = $DATA/acme
  valid users = usera
  read only = no
  hosts allow = 198.18.0.11 169.254.1.2
  hosts deny = ALL

[beta]
  path = $DATA/beta
  valid users = userb
  read only = no
  hosts allow = 198.18.0.12
  hosts deny = ALL
EOF
}

make_users() {
    local u
    for u in usera userb; do
        id "$u" >/dev/null 2>&1 || useradd -M -c "$USER_TAG" -s /usr/sbin/nologin "$u"
        # (first run: smbpasswd chats about creating passdb.tdb)
        printf '%s\n%s\n' "$PW" "$PW" | quiet smbpasswd -c "$ETC/smb.conf" -s -a "$u"
    done
}

# rpcbind's socket /run/rpcbind.sock and lock /run/rpcbind.lock live on the filesystem,
# which every netns shares: a second rpcbind on the machine refuses to start, and every
# ganesha (ours, the guest NFSv4.1 proxies, anyone's) registers/unregisters programs
# through that socket with whichever rpcbind owns it. So our rpcbind and the backend
# ganesha both run with a private /run (bind mount of $BERUN, inside the mount namespace
# that `ip netns exec` already creates). Effect: the lab works whether or not the host
# runs its own rpcbind, never touches the host's registrations, and nothing outside can
# unregister ours. Port 111 is reachable normally over the network in sgwlab-be.
BE_RUN_WRAP=(sh -c 'mount --bind "$0" /run && exec "$@"' "$BERUN")

start_backend() {
    mkdir -p "$BERUN" "$LOG" "$RUN" "$ETC"
    rm -f "$BERUN"/rpcbind.sock "$BERUN"/rpcbind.lock
    write_ganesha_conf
    write_smb_conf
    make_users

    spawn rpcbind "$NS_BE" "${BE_RUN_WRAP[@]}" rpcbind -f
    wait_listen "$NS_BE" 111 rpcbind 10
    # -F: foreground so the pid we hold is ganesha's own
    spawn ganesha "$NS_BE" "${BE_RUN_WRAP[@]}" ganesha.nfsd -F -f "$ETC/ganesha-be.conf" \
        -L "$LOG/ganesha.log" -p "$RUN/ganesha.ganesha-pid" -N NIV_EVENT
    spawn smbd "$NS_BE" smbd --foreground --no-process-group -s "$ETC/smb.conf"
    spawn iperf3 "$NS_BE" iperf3 -s -B 198.18.0.100 -p 5201
    wait_listen "$NS_BE" 2049 ganesha 30
    wait_listen "$NS_BE" 20048 ganesha 30
    wait_listen "$NS_BE" 445 smbd 30
    wait_listen "$NS_BE" 5201 iperf3 10
}

# ---------------------------------------------------------------- health
# Health checks read a command's whole output (grep without -q): `grep -q`
# exits at the first match, the command then dies of SIGPIPE on its next
# write, and pipefail turns that into "unhealthy" at random (seen with
# `ip addr show dev vb`, whose inet6 lines follow the matched one): lab.sh up
# then tore down a healthy lab.
topology_ok() {
    local ns i
    for ns in $ALL_NS; do ns_exists "$ns" || return 1; done
    for i in 1 2; do
        ip -n "sgwlab-g$i" -br addr show dev tun0 2>/dev/null | grep "169.254.$i.2/30" >/dev/null || return 1
        ip -n "sgwlab-g$i" -br addr show dev tenant0 2>/dev/null | grep "198.19.$((i - 1)).5/24" >/dev/null || return 1
        ip -n "sgwlab-g$i" route show 198.18.0.0/24 2>/dev/null | grep "via 169.254.$i.1" >/dev/null || return 1
        ip -n "$NS_GW" link show "sgwt-g$i" 2>/dev/null | grep "state UP" >/dev/null || return 1
    done
    ip -n "$NS_GW" addr show dev vb 2>/dev/null | grep "198.18.0.12/24" >/dev/null || return 1
    ip -n "$NS_BE" addr show dev eb 2>/dev/null | grep "198.18.0.102/24" >/dev/null || return 1
}

daemons_ok() {
    local d p
    for d in $DAEMONS; do pid_ok "${d%%:*}" "${d#*:}" || return 1; done
    for p in $BE_PORTS; do listening "$NS_BE" "$p" || return 1; done
}

data_ok() {
    [ -f "$DATA/acme/hello.txt" ] && [ -f "$DATA/beta/hello.txt" ] &&
        [ -f "$DATA/acme-private/hello.txt" ] &&
        [ "$(stat -c %s "$DATA/acme/blob64m" 2>/dev/null)" = $((64 << 20)) ]
}

healthy() { topology_ok && daemons_ok && data_ok; }
why_unhealthy() {
    if ! topology_ok; then echo "topology"; elif ! daemons_ok; then echo "daemons/ports"; elif ! data_ok; then echo "data"; else echo "none"; fi
}

anything_present() {
    local ns d
    for ns in $ALL_NS; do ns_exists "$ns" && return 0; done
    for d in $DAEMONS; do [ -e "$RUN/${d%%:*}.pid" ] && return 0; done
    return 1
}

# ---------------------------------------------------------------- up / down
cmd_up() {
    need_root
    cmd_install
    if healthy; then
        log "already up"
        return 0
    fi
    if anything_present; then
        log "half up (unhealthy: $(why_unhealthy)): tearing down and rebuilding"
        cmd_down
    fi
    mkdir -p "$LAB" "$LOG" "$RUN" "$ETC"
    make_data
    make_topology
    start_backend
    # Servers may need a moment after their ports first answer (and a previous
    # ganesha a moment to let go of its ports): re-check for up to 15 s.
    local tries=0
    until healthy; do
        tries=$((tries + 1))
        if [ $tries -ge 30 ]; then
            cmd_status >&2 || true
            die "lab came up unhealthy ($(why_unhealthy))"
        fi
        sleep 0.5
    done
    log "up"
}

# pids of this script and its ancestors: never kill those, even if the caller runs
# `ip netns exec sgwlab-gw lab.sh down`
self_pids() {
    local p=$$
    while [ -n "$p" ] && [ "$p" -gt 1 ]; do
        echo "$p"
        p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    done
}

cmd_down() {
    need_root
    local purge=${1:-} d name ns pid self
    for d in $DAEMONS; do
        name=${d%%:*} ns=${d#*:}
        if pid_ok "$name" "$ns"; then stop_pid "$(cat "$RUN/$name.pid")" 10; fi
        rm -f "$RUN/$name.pid"
    done
    rm -f "$RUN/ganesha.ganesha-pid"

    # anything else still inside our namespaces (the daemon under test, guest NFSv4.1
    # proxies, iperf3 clients, forgotten shells) must go before the namespaces do
    self=" $(self_pids | tr '\n' ' ') "
    for ns in $ALL_NS; do
        ns_exists "$ns" || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            [[ $self == *" $pid "* ]] || kill -TERM "$pid" 2>/dev/null || true
        done
    done
    for _ in $(seq 30); do
        local left=0
        for ns in $ALL_NS; do
            ns_exists "$ns" || continue
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                [[ $self == *" $pid "* ]] || left=1
            done
        done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for ns in $ALL_NS; do
        ns_exists "$ns" || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            [[ $self == *" $pid "* ]] || kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns"
    done
    rm -f "$LAB"/guest-nfs41-*/run/*.pid 2>/dev/null || true

    if [ "$purge" = "--purge" ]; then
        rm -rf "$LAB"
        local u
        for u in usera userb; do
            # only users this lab created (GECOS marker), never a real account of that name
            if [ "$(getent passwd "$u" | cut -d: -f5)" = "$USER_TAG" ]; then userdel "$u"; fi
        done
        log "down (purged)"
    else
        log "down (data kept in $DATA)"
    fi
}

cmd_status() {
    local ns d name ok=0
    echo "== namespaces"
    for ns in $ALL_NS; do
        if ns_exists "$ns"; then echo "$ns"; else echo "$ns MISSING"; ok=1; fi
    done
    for ns in $ALL_NS; do
        ns_exists "$ns" || continue
        echo "== $ns addresses"
        ip -n "$ns" -br addr
        ip -n "$ns" route
    done
    if ns_exists "$NS_BE"; then
        echo "== $NS_BE listening"
        ip netns exec "$NS_BE" ss -Hltnp | awk '{print $4, $6}'
    fi
    echo "== daemons"
    for d in $DAEMONS; do
        name=${d%%:*}
        if pid_ok "$name" "${d#*:}"; then
            echo "$name pid $(cat "$RUN/$name.pid") alive"
        else
            echo "$name DOWN"; ok=1
        fi
    done
    if healthy; then echo "== healthy"; else echo "== NOT healthy"; ok=1; fi
    return $ok
}

case "${1:-}" in
    install) need_root; cmd_install ;;
    up) cmd_up ;;
    down) cmd_down "${2:-}" ;;
    status) cmd_status ;;
    bigdata) cmd_bigdata ;;
    *) echo "usage: $0 install | up | down [--purge] | status | bigdata" >&2; exit 2 ;;
esac
