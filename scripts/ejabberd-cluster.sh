#!/usr/bin/env bash
# ejabberd-cluster.sh: an ejabberd cluster on loopback for tests and benchmarks,
# from Debian's ejabberd package (mod_mqtt, state in mnesia), run as the
# current user with its own configuration, spool, logs, Erlang port mapper and
# ports: nothing of the system's ejabberd (/etc/ejabberd, /var/lib/ejabberd,
# its service) is used or touched.
#
#   scripts/ejabberd-cluster.sh start DIR PORT [PORT ...]   one node per MQTT port; nodes 2.. join node 1
#   scripts/ejabberd-cluster.sh kill DIR N                   kill -9 node N (1-based)
#   scripts/ejabberd-cluster.sh restart DIR N                start node N again (it rejoins by itself)
#   scripts/ejabberd-cluster.sh nodes DIR                    the running members, as the cluster sees them
#   scripts/ejabberd-cluster.sh stop DIR                     stop every node and the port mapper
#
# MQTT clients must log in with a user name and a non-empty password
# (anonymous authentication: any pair is accepted). Each node listens on
# 127.0.0.1:PORT only; the Erlang distribution and its port mapper on
# 127.0.0.1 only. DIR/nodeN/pid holds each node's process id, DIR/nodeN/logs
# its log. Exit status: 0, or 1 with a message on stderr.
set -euo pipefail

die() { echo "ejabberd-cluster: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 start|kill|restart|nodes|stop DIR [ARGS]"
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
shift 2

ERL=/usr/bin/erl
ERL_LIBS_DIR=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
[ -x "$ERL" ] && ls -d "$ERL_LIBS_DIR"/ejabberd-* >/dev/null 2>&1 || die "ejabberd is not installed (scripts/install-deps.sh)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A cluster's names and port mapper are its own: concurrent clusters never meet.
[ -f "$dir/epmd_port" ] || free_port > "$dir/epmd_port"
[ -f "$dir/cookie" ] || (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$dir/cookie")
epmd_port=$(cat "$dir/epmd_port")
cookie=$(cat "$dir/cookie")
tag=$(basename "$dir" | tr -c 'A-Za-z0-9\n' '_' | cut -c1-20)
node_name() { echo "ota_${tag}_$1@localhost"; }

erl_env() {
  env -i PATH=/usr/bin:/bin HOME="$dir" LANG=C.UTF-8 ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
    ERL_LIBS="$ERL_LIBS_DIR" "$@"
}

# Runs an Erlang expression on a hidden node of the cluster and prints its result.
rpc() {
  erl_env "$ERL" -sname "ctl_$$_${RANDOM}@localhost" -setcookie "$cookie" -hidden -noinput \
    -kernel inet_dist_use_interface '{127,0,0,1}' -eval "$1" -s init stop
}

start_node() {
  local n=$1 port=$2 d="$dir/node$1"
  mkdir -p "$d/spool" "$d/logs"
  echo "$port" > "$d/port"
  cat > "$d/ejabberd.yml" <<YML
hosts:
  - localhost
loglevel: warning
certfiles: []
listen:
  -
    port: $port
    ip: "127.0.0.1"
    module: mod_mqtt
    backlog: 4096
    max_payload_size: 1048576
auth_method: [anonymous]
anonymous_protocol: login_anon
allow_multiple_connections: true
modules:
  mod_mqtt:
    max_queue: unlimited
    # Default 1000: a wildcard subscription gets at most that many retained
    # messages (the controller's and the benchmark's ota/FLEET/devices/+/state).
    match_retained_limit: infinity
    access_subscribe:
      "#": [allow]
    access_publish:
      "#": [allow]
YML
  # exec: DIR/nodeN/pid is the Erlang VM itself (env, erl and erlexec exec in turn).
  (cd "$d" && exec env -i PATH=/usr/bin:/bin HOME="$dir" LANG=C.UTF-8 ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
     ERL_LIBS="$ERL_LIBS_DIR" EJABBERD_CONFIG_PATH="$d/ejabberd.yml" EJABBERD_LOG_PATH="$d/logs/ejabberd.log" \
     "$ERL" -sname "$(node_name "$n")" -setcookie "$cookie" -noinput +K true +P 2000000 \
     -kernel inet_dist_use_interface '{127,0,0,1}' -mnesia dir "\"$d/spool\"" -s ejabberd \
     > "$d/logs/stdout" 2>&1 < /dev/null & echo $! > "$d/pid")
}

wait_port() {
  local port=$1 n=$2
  for _ in $(seq 1 300); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
      return 0
    fi
    kill -0 "$(cat "$dir/node$n/pid")" 2>/dev/null || { tail -20 "$dir/node$n/logs/stdout" >&2; die "node $n exited"; }
    sleep 0.1
  done
  die "node $n did not listen on $port within 30 s"
}

members() { rpc "io:format(\"~p~n\", [rpc:call('$(node_name 1)', ejabberd_admin, list_cluster, [])])." 2>/dev/null || true; }

case "$cmd" in
  start)
    [ $# -ge 1 ] || die "start needs at least one MQTT port"
    n=0
    for port in "$@"; do n=$((n + 1)); start_node "$n" "$port"; done
    n=0
    for port in "$@"; do n=$((n + 1)); wait_port "$port" "$n"; done
    for i in $(seq 2 $#); do
      r=$(rpc "io:format(\"~p~n\", [rpc:call('$(node_name "$i")', ejabberd_admin, join_cluster, [<<\"$(node_name 1)\">>])]).")
      [ "$r" = ok ] || die "node $i could not join node 1: $r"
    done
    # join_cluster restarts the joining node's ejabberd: wait for its listener again.
    n=0
    for port in "$@"; do n=$((n + 1)); wait_port "$port" "$n"; done
    echo $# > "$dir/size"
    ;;
  kill)
    kill -9 "$(cat "$dir/node$1/pid")" 2>/dev/null || true
    ;;
  restart)
    start_node "$1" "$(cat "$dir/node$1/port")"
    wait_port "$(cat "$dir/node$1/port")" "$1"
    ;;
  nodes)
    members
    ;;
  stop)
    for p in "$dir"/node*/pid; do [ -f "$p" ] && kill -TERM "$(cat "$p")" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      alive=0
      for p in "$dir"/node*/pid; do [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break
      sleep 0.1
    done
    for p in "$dir"/node*/pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true; done
    erl_env /usr/bin/epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
    ;;
  *) die "unknown command $cmd" ;;
esac
