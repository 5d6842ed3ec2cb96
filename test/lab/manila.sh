#!/usr/bin/env bash
# A real OpenStack Manila for sharegw's integration tests, from Debian 12
# packages (Zed 15.1.0, API 2.0-2.73): manila-api, manila-scheduler and
# manila-share (one DHSS=True backend: Manila's DummyDriver with export
# locations on the network lab's real backends, see manila/sgwlab_driver.py),
# a private MariaDB (unix socket only) and RabbitMQ, all on 127.0.0.1.
# Auth: noauth (default) or a private Keystone v3 (MANILA_LAB_AUTH=keystone).
#
# Usage: manila.sh install | up | down | status
#   env MANILA_LAB_DIR=/var/lib/sgwlab-manila   state, logs, pid files, lab.env
#   env MANILA_LAB_AUTH=noauth|keystone
#   env MANILA_LAB_API_PORT=18786               manila-api
#   env MANILA_LAB_KEYSTONE_PORT=15000          keystone (uwsgi), keystone mode
#   env MANILA_LAB_RABBIT_PORT=15673            AMQP (port+1: erlang distribution)
#   env MANILA_LAB_EPMD_PORT=14369              private epmd
#   env MANILA_LAB_FRESH=1                      up: wipe the data first
#
# `up` is idempotent (a no-op while everything runs) and prints lab.env.
# `down` stops only the processes `up` started (pid + start time in
# run/*.pid, each in its own session) and removes the run files; data stays
# unless MANILA_LAB_WIPE=1. Switching auth mode needs `down` first.
#
# Export locations: a share NAMED acme, acme-private or beta gets the
# preferred location 198.18.0.100:/export/acme (NFS) or \\198.18.0.100\acme
# (CIFS) (beta on 198.18.0.101), which test/lab/lab.sh really serves; any
# other name keeps the dummy's fake path on the plugin range 198.18.128.10-198.18.255.250.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${MANILA_LAB_DIR:-/var/lib/sgwlab-manila}
AUTH=${MANILA_LAB_AUTH:-noauth}
API_PORT=${MANILA_LAB_API_PORT:-18786}
KS_PORT=${MANILA_LAB_KEYSTONE_PORT:-15000}
RABBIT_PORT=${MANILA_LAB_RABBIT_PORT:-15673}
DIST_PORT=$((RABBIT_PORT + 1))
EPMD_PORT=${MANILA_LAB_EPMD_PORT:-14369}
# noauth: any hex id is a tenant; this one is the lab's admin project.
NOAUTH_PROJECT=5a6e0c1b2d3f4a5b8c9d0e1f2a3b4c5d
MV_MAX=2.73
PY=/usr/bin/python3   # Debian's python: manila lives in its dist-packages
RUN=$LAB/run LOG=$LAB/log SOCK=$LAB/mysql/mysqld.sock
SERVICES="mariadb epmd rabbitmq keystone manila-api manila-scheduler manila-share"
PKGS="manila-common python3-manila rabbitmq-server mariadb-server-core mariadb-client-core curl jq python3-keystone uwsgi-core uwsgi-plugin-python3"

T0=$(date +%s%3N)
log() { local ms=$(( $(date +%s%3N) - T0 )); printf '[manila.sh %d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
# A pid file holds "PID STARTTIME": a recycled pid is never taken for ours.
alive() {
  local pid st
  [ -s "$RUN/$1.pid" ] || return 1
  read -r pid st < "$RUN/$1.pid"
  [ -n "$pid" ] && [ "$(starttime "$pid")" = "$st" ] && [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ]
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
sql() { mariadb --no-defaults -S "$SOCK" -uroot "$@"; }
wait_for() { # SECONDS WHAT CMD...
  local end=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timeout waiting for $what (logs: $LOG)"
    sleep 0.25
  done
}
# Each service in its own session (sid = pgid = pid) so down can end exactly
# it and its workers; fds above 2 closed so no caller's pipe is held open.
start_bg() { # NAME CMD...
  local name=$1; shift
  alive "$name" && return 0
  (
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1
  ) &
  echo "$! $(starttime $!)" > "$RUN/$name.pid"
  disown $! 2>/dev/null || true
  log "started $name (pid $!)"
}

# ---------------------------------------------------------------- install
cmd_install() {
  local missing="" p
  for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  need_root
  export DEBIAN_FRONTEND=noninteractive
  # manila-common asks (debconf) about dbconfig, rabbit and keystone setup;
  # the defaults are "no" already, pinned so a changed default cannot bite.
  debconf-set-selections <<'EOF'
manila-common manila/configure_db boolean false
manila-common manila/configure_rabbit boolean false
manila-common manila/configure_ksat boolean false
EOF
  # Package postinsts must not start system-wide services (invoke-rc.d
  # honours policy-rc.d); a temporary one only if the image has none.
  local tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; tmp_policy=1
  fi
  log "installing:$missing"
  apt-cache show manila-common >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  # shellcheck disable=SC2086
  local rc=0
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing > "/tmp/sgwlab-manila-apt.$$" 2>&1 || rc=$?
  [ -n "$tmp_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ $rc != 0 ]; then tail -20 "/tmp/sgwlab-manila-apt.$$" >&2; rm -f "/tmp/sgwlab-manila-apt.$$"; die "apt-get install failed"; fi
  rm -f "/tmp/sgwlab-manila-apt.$$"
  log "packages installed"
}

# -------------------------------------------------------------------- up
write_manila_conf() {
  # The dummy sleeps in every driver call; shortened, except the security
  # service update (3 s) so that share network status network_change is seen.
  local delays="create_share:0.5,_setup_server:0.5,_teardown_server:0.2,delete_share:0.3,update_access:0.3,update_share_server_security_service:3.0,ensure_share:0.1,get_pool:0.05,do_setup:0.05,_get_pools_info:0.05,_update_share_stats:0.05"
  cat > "$LAB/etc/manila.conf" <<EOF
[DEFAULT]
auth_strategy = $AUTH
api_paste_config = $LAB/etc/api-paste.ini
osapi_share_listen = 127.0.0.1
osapi_share_listen_port = $API_PORT
osapi_share_workers = 1
state_path = $LAB/state
log_dir = $LOG
transport_url = rabbit://guest:guest@127.0.0.1:$RABBIT_PORT/
enabled_share_backends = lab
enabled_share_protocols = NFS,CIFS
default_share_type = lab
rootwrap_config = /usr/share/manila-common/rootwrap.conf
host = sgwlab
storage_availability_zone = nova
report_interval = 2
periodic_interval = 5
# A share server goes with its network's last share (frees its addresses).
delete_share_server_with_last_share = True
# Notifications (share.create.end, share.delete.end, ...) for sharegw's
# AMQP consumer, on the topic exchange "manila", topic "notifications".
[oslo_messaging_notifications]
driver = messagingv2
topics = notifications
[database]
connection = mysql+pymysql://manila:manila@localhost/manila?unix_socket=$SOCK&charset=utf8
[oslo_concurrency]
lock_path = $LAB/lock
[oslo_policy]
policy_dirs = $LAB/etc/policy.d
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$KS_PORT
auth_url = http://127.0.0.1:$KS_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = manila
password = manila
region_name = RegionOne
[lab]
share_backend_name = SGWLAB
share_driver = sgwlab_driver.SgwLabDummyDriver
driver_handles_share_servers = True
network_config_group = lab_net
admin_network_config_group = lab_net
dummy_driver_default_driver_method_delay = 0.1
dummy_driver_driver_methods_delays = $delays
# Share-server allocations (no neutron): only strings in fake export paths
# and the admin-only location, never configured on any interface.
[lab_net]
network_api_class = manila.network.standalone_network_plugin.StandaloneNetworkPlugin
network_plugin_ipv4_enabled = True
# 198.18.128.0/17 is unused by the network lab (198.18.0.0/24) and big
# enough for every share server the tests ever create (3 addresses each; a
# /24 range ran out after ~17 servers).
standalone_network_plugin_gateway = 198.18.128.1
standalone_network_plugin_mask = 17
standalone_network_plugin_network_type = vlan
standalone_network_plugin_segmentation_id = 1010
standalone_network_plugin_allowed_ip_ranges = 198.18.128.10-198.18.255.250
EOF
}

setup_keystone() {
  local K=$LAB/keystone KS=http://127.0.0.1:$KS_PORT
  mkdir -p "$K/fernet-keys" "$K/credential-keys" "$LAB/etc/keystone"
  cat > "$LAB/etc/keystone/keystone.conf" <<EOF
[DEFAULT]
log_dir = $LOG
[database]
connection = mysql+pymysql://keystone:keystone@localhost/keystone?unix_socket=$SOCK&charset=utf8
[token]
provider = fernet
expiration = ${MANILA_LAB_TOKEN_TTL:-3600}
[fernet_tokens]
key_repository = $K/fernet-keys
[fernet_receipts]
key_repository = $K/fernet-keys
[credential]
key_repository = $K/credential-keys
[cache]
enabled = false
[identity]
# bcrypt cost 4: tokens in ~0.05 s instead of ~0.6 s (lab only).
password_hash_rounds = 4
EOF
  local KM=(/usr/bin/keystone-manage --config-file "$LAB/etc/keystone/keystone.conf")
  "${KM[@]}" db_sync >>"$LOG/keystone-manage.out" 2>&1 || die "keystone-manage db_sync failed"
  [ -e "$K/fernet-keys/0" ] || "${KM[@]}" fernet_setup --keystone-user root --keystone-group root >>"$LOG/keystone-manage.out" 2>&1
  [ -e "$K/credential-keys/0" ] || "${KM[@]}" credential_setup --keystone-user root --keystone-group root >>"$LOG/keystone-manage.out" 2>&1
  "${KM[@]}" bootstrap --bootstrap-password admin --bootstrap-admin-url "$KS/v3/" \
    --bootstrap-internal-url "$KS/v3/" --bootstrap-public-url "$KS/v3/" \
    --bootstrap-region-id RegionOne >>"$LOG/keystone-manage.out" 2>&1 || die "keystone-manage bootstrap failed"
  start_bg keystone env OS_KEYSTONE_CONFIG_DIR="$LAB/etc/keystone" OS_KEYSTONE_CONFIG_FILES=keystone.conf \
    /usr/bin/uwsgi --plugin python3 --http-socket "127.0.0.1:$KS_PORT" \
    --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 1 --threads 4 \
    --die-on-term --lazy-apps --need-app --buffer-size 65535 --disable-logging
  wait_for 60 "keystone" curl -fsS -o /dev/null "$KS/v3"
}

# Users, projects, roles and the sharev2 catalog entry (idempotent).
keystone_objects() {
  local KS=http://127.0.0.1:$KS_PORT
  ks_token() { # user password project
    curl -fsS -D - -o /dev/null -H 'Content-Type: application/json' -d "{\"auth\": {\"identity\": {\"methods\": [\"password\"],
      \"password\": {\"user\": {\"name\": \"$1\", \"domain\": {\"id\": \"default\"}, \"password\": \"$2\"}}},
      \"scope\": {\"project\": {\"name\": \"$3\", \"domain\": {\"id\": \"default\"}}}}}" "$KS/v3/auth/tokens" \
      | tr -d '\r' | awk 'tolower($1) == "x-subject-token:" {print $2}'
  }
  KT=$(ks_token admin admin admin); [ -n "$KT" ] || die "no keystone admin token"
  ksapi() { curl -fsS -H "X-Auth-Token: $KT" -H 'Content-Type: application/json' "$@"; }
  ks_id() { # COLLECTION NAME CREATE_BODY
    local id; id=$(ksapi "$KS/v3/$1?name=$2" | jq -r ".$1[0].id // empty")
    [ -n "$id" ] || id=$(ksapi -X POST -d "$3" "$KS/v3/$1" | jq -r '.[keys[0]].id')
    echo "$id"
  }
  SVC_P=$(ks_id projects service '{"project": {"name": "service", "domain_id": "default"}}')
  DEMO_P=$(ks_id projects demo '{"project": {"name": "demo", "domain_id": "default"}}')
  ADMIN_P=$(ks_id projects admin '{}')
  local MANILA_U DEMO_U ADMIN_R MEMBER_R SV
  MANILA_U=$(ks_id users manila '{"user": {"name": "manila", "domain_id": "default", "password": "manila"}}')
  DEMO_U=$(ks_id users demo '{"user": {"name": "demo", "domain_id": "default", "password": "demo"}}')
  ADMIN_R=$(ks_id roles admin '{}'); MEMBER_R=$(ks_id roles member '{}')
  ksapi -X PUT "$KS/v3/projects/$SVC_P/users/$MANILA_U/roles/$ADMIN_R" >/dev/null
  ksapi -X PUT "$KS/v3/projects/$DEMO_P/users/$DEMO_U/roles/$MEMBER_R" >/dev/null
  SV=$(ks_id services manilav2 '{"service": {"name": "manilav2", "type": "sharev2", "description": "Shared File Systems v2"}}')
  if [ "$(ksapi "$KS/v3/endpoints?service_id=$SV" | jq '.endpoints | length')" = 0 ]; then
    for i in public internal admin; do
      ksapi -X POST -d "{\"endpoint\": {\"service_id\": \"$SV\", \"interface\": \"$i\", \"region_id\": \"RegionOne\", \"url\": \"http://127.0.0.1:$API_PORT/v2\"}}" "$KS/v3/endpoints" >/dev/null
    done
  fi
  TOKEN=$(ks_token admin admin admin) PROJECT=$ADMIN_P
}

all_up() {
  local n
  for n in $(services); do alive "$n" || return 1; done
  [ -f "$LAB/lab.env" ] && curl -fsS -o /dev/null "http://127.0.0.1:$API_PORT/healthcheck"
}
services() { echo "mariadb epmd rabbitmq manila-api manila-scheduler manila-share"; [ "$AUTH" = keystone ] && echo keystone; return 0; }

cmd_up() {
  need_root
  case $AUTH in noauth|keystone) ;; *) die "MANILA_LAB_AUTH must be noauth or keystone";; esac
  cmd_install
  if [ -f "$RUN/auth" ] && [ "$(cat "$RUN/auth")" != "$AUTH" ]; then
    for n in $SERVICES; do alive "$n" && die "the lab runs with auth=$(cat "$RUN/auth"); run 'manila.sh down' first"; done
  fi
  if all_up; then log "already up"; cat "$LAB/lab.env"; return 0; fi
  if [ "${MANILA_LAB_FRESH:-0}" = 1 ]; then
    for n in $SERVICES; do alive "$n" && die "MANILA_LAB_FRESH=1 while $n runs; run 'manila.sh down' first"; done
    rm -rf "${LAB:?}"/{mysql,rabbitmq,keystone,state,lock,log,etc,run,lab.env}
  fi
  mkdir -p "$RUN" "$LOG" "$LAB/etc/policy.d" "$LAB/state" "$LAB/lock" "$LAB/mysql" "$LAB/rabbitmq/mnesia" "$LAB/rabbitmq/log"
  echo "$AUTH" > "$RUN/auth"
  local p n
  for p in "$API_PORT:manila-api" "$RABBIT_PORT:rabbitmq" "$DIST_PORT:rabbitmq" "$EPMD_PORT:epmd" "$KS_PORT:keystone"; do
    n=${p#*:}
    if port_open "${p%%:*}" && ! alive "$n"; then die "127.0.0.1:${p%%:*} is in use by something this script did not start"; fi
  done

  # MariaDB: unix socket only.
  if [ ! -d "$LAB/mysql/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$LAB/mysql/data" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$LOG/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed (see $LOG/mariadb-install.log)"
  fi
  start_bg mariadb /usr/sbin/mariadbd --no-defaults --datadir="$LAB/mysql/data" --socket="$SOCK" \
    --pid-file="$LAB/mysql/mariadbd.pid" --skip-networking --user=root --log-error="$LOG/mariadb.err" \
    --innodb-buffer-pool-size=32M --performance-schema=OFF --skip-name-resolve \
    --character-set-server=utf8 --collation-server=utf8_general_ci
  wait_for 60 "mariadb" sql -e 'SELECT 1'
  for n in manila keystone; do
    sql -e "CREATE DATABASE IF NOT EXISTS $n CHARACTER SET utf8;
      CREATE USER IF NOT EXISTS '$n'@'localhost' IDENTIFIED BY '$n';
      GRANT ALL PRIVILEGES ON $n.* TO '$n'@'localhost';"
  done

  # RabbitMQ with its own epmd, everything on loopback (guest is loopback-only).
  local RMQ=$LAB/rabbitmq
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\nlog.console = false\nlog.file.level = warning\n' "$RABBIT_PORT" > "$RMQ/rabbitmq.conf"
  echo '[].' > "$RMQ/enabled_plugins"; : > "$RMQ/rabbitmq-env.conf"
  if [ ! -s "$RMQ/.erlang.cookie" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RMQ/.erlang.cookie"; chmod 400 "$RMQ/.erlang.cookie"
  fi
  start_bg epmd /usr/bin/epmd -address 127.0.0.1 -port "$EPMD_PORT"
  wait_for 10 "epmd" port_open "$EPMD_PORT"
  start_bg rabbitmq env HOME="$RMQ" ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_NODENAME=sgwlab@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$RABBIT_PORT" RABBITMQ_DIST_PORT="$DIST_PORT" \
    RABBITMQ_MNESIA_BASE="$RMQ/mnesia" RABBITMQ_LOG_BASE="$RMQ/log" \
    RABBITMQ_CONFIG_FILE="$RMQ/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ/enabled_plugins" \
    RABBITMQ_CONF_ENV_FILE="$RMQ/rabbitmq-env.conf" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
    /usr/lib/rabbitmq/bin/rabbitmq-server

  [ "$AUTH" = keystone ] && setup_keystone
  cp /usr/share/manila-common/api-paste.ini "$LAB/etc/api-paste.ini"
  write_manila_conf
  # The schema needs only the database: done while RabbitMQ boots.
  /usr/bin/manila-manage --config-file "$LAB/etc/manila.conf" db sync >"$LOG/db-sync.out" 2>&1 || die "manila-manage db sync failed (see $LOG)"
  if [ "$AUTH" = keystone ]; then keystone_objects; else PROJECT=$NOAUTH_PROJECT TOKEN=admin:$NOAUTH_PROJECT; fi
  wait_for 90 "rabbitmq" port_open "$RABBIT_PORT"

  local since; since=$(date -u +%Y-%m-%dT%H:%M:%S)
  for n in api scheduler share; do
    start_bg "manila-$n" env PYTHONPATH="$HERE/manila" \
      SGWLAB_EXPORTS="acme=198.18.0.100,acme-private=198.18.0.100,beta=198.18.0.101" \
      SGWLAB_SECONDARY_HOST=198.18.0.102 /usr/bin/manila-$n --config-file "$LAB/etc/manila.conf"
  done
  wait_for 60 "manila-api" curl -fsS -o /dev/null "http://127.0.0.1:$API_PORT/healthcheck"

  local API="http://127.0.0.1:$API_PORT/v2/$PROJECT"
  local H=(-H "X-Auth-Token: $TOKEN" -H "X-OpenStack-Manila-API-Version: $MV_MAX" -H "Content-Type: application/json")
  # manila-api answers before scheduler and share consume from RabbitMQ, and
  # an RPC call made in that window is lost (fails after 60 s). The services
  # table keeps old heartbeats as "up": wait for ones newer than this start.
  fresh() {
    curl -fsS "${H[@]}" "$API/services" | jq -e --arg since "$since" '
      [.services[] | select(.state == "up" and (.updated_at // "") >= $since) | .binary + "@" + .host]
      | (index("manila-scheduler@sgwlab") != null) and (index("manila-share@sgwlab@lab") != null)'
  }
  wait_for 90 "fresh scheduler and share heartbeats" fresh
  wait_for 90 "scheduler pools" sh -c "curl -fsS $(printf "'%s' " "${H[@]}") '$API/scheduler-stats/pools' | jq -e '.pools | length > 0'"
  if ! curl -fsS "${H[@]}" "$API/types" | jq -e '.share_types | map(.name) | index("lab") != null' >/dev/null; then
    curl -fsS "${H[@]}" -X POST "$API/types" -d '{"share_type": {"name": "lab", "share_type_access:is_public": true, "extra_specs": {"driver_handles_share_servers": true}}}' >/dev/null
  fi

  {
    echo "MANILA_LAB_DIR=$LAB"
    echo "MANILA_LAB_AUTH=$AUTH"
    echo "MANILA_ENDPOINT=http://127.0.0.1:$API_PORT/v2"
    echo "MANILA_PROJECT_ID=$PROJECT"
    echo "MANILA_API_VERSION=$MV_MAX"
    echo "MANILA_SHARE_TYPE=lab"
    echo "MANILA_AMQP_URL=amqp://guest:guest@127.0.0.1:$RABBIT_PORT/"
    if [ "$AUTH" = noauth ]; then
      echo "MANILA_AUTH_TOKEN=$TOKEN"
    else
      echo "OS_AUTH_URL=http://127.0.0.1:$KS_PORT/v3"
      echo "OS_ADMIN_USERNAME=admin"
      echo "OS_ADMIN_PASSWORD=admin"
      echo "OS_ADMIN_PROJECT_ID=$ADMIN_P"
      echo "OS_DEMO_USERNAME=demo"
      echo "OS_DEMO_PASSWORD=demo"
      echo "OS_DEMO_PROJECT_ID=$DEMO_P"
      echo "OS_SERVICE_PROJECT_ID=$SVC_P"
    fi
  } > "$LAB/lab.env"
  log "ready"
  cat "$LAB/lab.env"
}

# ------------------------------------------------------------------ down
members() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ {print $1}'; }
stop_one() {
  local name=$1 pid st i m
  [ -s "$RUN/$name.pid" ] || return 0
  read -r pid st < "$RUN/$name.pid"
  # Our session only: the recorded leader (checked by start time), or the
  # workers left in its session when the leader is already gone.
  if [ -n "$pid" ] && { [ "$(starttime "$pid")" = "$st" ] || [ -z "$(starttime "$pid")" ]; } && [ -n "$(members "$pid")" ]; then
    for m in $(members "$pid"); do kill -TERM "$m" 2>/dev/null || true; done
    for ((i = 0; i < 120; i++)); do [ -z "$(members "$pid")" ] && break; sleep 0.25; done
    for m in $(members "$pid"); do kill -KILL "$m" 2>/dev/null || true; done
    log "stopped $name (pid $pid)"
  fi
  rm -f "$RUN/$name.pid"
}
cmd_down() {
  need_root
  [ -d "$RUN" ] || { log "nothing to stop in $LAB"; return 0; }
  for n in manila-share manila-scheduler manila-api keystone rabbitmq epmd mariadb; do stop_one "$n"; done
  rm -f "$RUN/auth" "$LAB/lab.env"
  if [ "${MANILA_LAB_WIPE:-0}" = 1 ]; then rm -rf "${LAB:?}"; log "removed $LAB"; fi
}

cmd_status() {
  local n rc=0
  for n in $SERVICES; do
    if alive "$n"; then echo "$n: running (pid $(cut -d' ' -f1 "$RUN/$n.pid"))"; else echo "$n: stopped"; fi
  done
  if curl -fsS -o /dev/null "http://127.0.0.1:$API_PORT/healthcheck" 2>/dev/null; then echo "api: http://127.0.0.1:$API_PORT/v2 ($(cat "$RUN/auth" 2>/dev/null || echo '?'))"; else echo "api: down"; rc=1; fi
  return $rc
}

case ${1:-} in
  install) need_root; cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
esac
