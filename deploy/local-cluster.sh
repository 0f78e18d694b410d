#!/usr/bin/env bash
# A whole UKAI cluster on loopback, for trying UKAI, tests and benchmarks.
#
#   local-cluster.sh start      --dir DIR   ZooKeeper, nodes n1 n2 (site-a) and n3 (site-b),
#                                           a frontend mounted at DIR/mnt (site-a); prints
#                                           export UKAI_ZK=... UKAI_ADMIN=... UKAI_MOUNT=...
#                                           UKAI_TLS_DIR=... UKAI_CA_DIR=... UKAI_RUN_DIR=...
#                                           on stdout and nothing else
#   local-cluster.sh stop       --dir DIR   stops only what it started, unmounts
#   local-cluster.sh status     --dir DIR   what runs
#   local-cluster.sh stop-node  --dir DIR NAME   SIGTERM one node (data kept)
#   local-cluster.sh start-node --dir DIR NAME   start it again
#   local-cluster.sh mount      --dir DIR --site SITE PATH   one more frontend ("hypervisor")
#   local-cluster.sh remount    --dir DIR NAME   unmount frontend NAME (fuse, fuse-2...) and
#                                           mount it again: same path, site and state
#   local-cluster.sh add-node   --dir DIR --site SITE NAME   one more storage node
#
# `start --zk-ensemble 3` runs a three-member ZooKeeper ensemble on loopback
# ports instead of one server (pids zk1, zk2, zk3); then
#   local-cluster.sh zk-leader  --dir DIR        prints the leader's name (zk1..zk3)
#   local-cluster.sh start-zk   --dir DIR NAME   restarts a member (stop it with stop-node)
#
# `start --rereplicate-after S`: nodes rebuild a dead node's replicas after S
# seconds (ukai-node --rereplicate-after; default 600).
# `start --repair-bandwidth B`: the copy rate limit of the repairs nodes start
# on their own (ukai-node --repair-bandwidth; default 0: none).
#
# Secured by default: `start` makes a cluster CA in DIR/tls/ca and a
# certificate for every process (ukaictl ca init / cert issue): nodes
# DIR/tls/NAME (role node), frontends DIR/tls/NAME (role frontend), and an
# operator's DIR/tls/admin (role admin), which UKAI_TLS_DIR points ukaictl
# at. Every TLS directory's crl.pem is a link to the CA's, so `ukaictl cert
# revoke` (UKAI_CA_DIR is exported too) takes effect on every process at once.
# `start --insecure-plaintext`: no certificates, every daemon started with
# --insecure-plaintext and UKAI_INSECURE_PLAINTEXT=1 exported (benchmarks
# comparing against TLS only).
#
# Tests only: `start --site-delay MS` makes sites MS apart (nodes answer
# frontends of other sites MS late; ukai-node --test-site-delay-ms, enabled
# through UKAI_TEST_HOOKS=1 for these nodes only, docs/TESTING.md).
#
# Every process keeps its pid in DIR/pids/NAME.pid and its log in DIR/logs/NAME.log.
# Ports are picked free at start and kept in DIR/cluster.env. Binaries come from
# build/bin (run deploy/build.sh first) or $UKAI_BIN.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${UKAI_BIN:-$top/build/bin}

die() { echo "local-cluster.sh: $*" >&2; exit 1; }
say() { echo "local-cluster.sh: $*" >&2; }

cmd=${1:-}
[[ -n $cmd ]] || die "usage: local-cluster.sh start|stop|status|stop-node|start-node|mount|add-node --dir DIR ..."
shift
dir="" site="" site_delay=0 rereplicate_after=600 repair_bandwidth=0 zk_members=1 plaintext=0 args=()
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --site) site=$2; shift 2 ;;
    --site-delay) site_delay=$2; shift 2 ;;
    --rereplicate-after) rereplicate_after=$2; shift 2 ;;
    --repair-bandwidth) repair_bandwidth=$2; shift 2 ;;
    --zk-ensemble) zk_members=$2; shift 2 ;;
    --insecure-plaintext) plaintext=1; shift ;;
    -h|--help) sed -n '2,43p' "$0" >&2; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ -n $dir ]] || die "--dir DIR is required"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A first port to try, below the kernel's ephemeral range: a port picked there
# could be taken by any outgoing connection (or a node's own --io-listen :0)
# before the process it is meant for binds it.
first_port() {
  local low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  ((low > 12000)) || low=32768
  echo $((10000 + RANDOM % (low - 11000)))
}

pid_of() { [[ -f $dir/pids/$1.pid ]] && cat "$dir/pids/$1.pid"; }
alive() {  # alive NAME: its recorded pid runs the program we started under that name
  local pid; pid=$(pid_of "$1") || return 1
  [[ -f $dir/cmd/$1.exe ]] || return 1
  # A rebuild while it runs replaces the binary: the link then reads "... (deleted)".
  local exe; exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ ${exe% (deleted)} == "$(cat "$dir/cmd/$1.exe")" ]]
}

# spawn NAME CMD...: starts CMD in the background with its log and pid file.
spawn() {
  local name=$1; shift
  printf '%q ' "$@" > "$dir/cmd/$name"
  readlink -f "$(command -v "$1")" > "$dir/cmd/$name.exe"
  nohup "$@" >> "$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name.pid"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out waiting for $what (see $dir/logs)"
    sleep 0.2
  done
}

stop_pid() {  # stop_pid NAME: SIGTERM, then SIGKILL after 15 s
  local name=$1 pid
  alive "$name" || { rm -f "$dir/pids/$name.pid"; return 0; }
  pid=$(pid_of "$name")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) ignored SIGTERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pids/$name.pid"
}

node_up() {  # node_up NAME: registered live and answering
  "$bin/ukaictl" --admin "$UKAI_ADMIN" node list 2>/dev/null | awk -v n="$1" '$1 == n && $4 == "up" {ok = 1} END {exit !ok}'
}
# Times NAME's log says it serves (after registering in ZooKeeper). After a
# kill -9 the dead process's registration lingers until its session times
# out, and node_up alone would pass before the new one serves.
serving_count() {
  local c; c=$(grep -c ' serving on ' "$dir/logs/$1.log" 2>/dev/null) || true
  echo "${c:-0}"
}
node_serving() {  # node_serving NAME COUNT_BEFORE_START
  (($(serving_count "$1") > $2)) && node_up "$1"
}

# tls_flags NAME ROLE: sets tls=(the daemon flags for NAME's credentials),
# issuing them (role ROLE, id NAME) on first use.
tls_flags() {
  if [[ ${PLAINTEXT:-0} == 1 ]]; then tls=(--insecure-plaintext); return; fi
  local name=$1 role=$2
  if [[ ! -f $dir/tls/$name/cert.pem ]]; then
    "$bin/ukaictl" cert issue --ca "$UKAI_CA_DIR" --role "$role" --id "$name" \
      --out "$dir/tls/$name" >&2
    ln -sf ../ca/crl.pem "$dir/tls/$name/crl.pem"
  fi
  tls=(--tls-dir "$dir/tls/$name")
}

make_ca() {
  "$bin/ukaictl" ca init --ca "$UKAI_CA_DIR" --name "local-$(basename "$dir")" >&2
  "$bin/ukaictl" cert issue --ca "$UKAI_CA_DIR" --role admin --id admin --out "$UKAI_TLS_DIR" >&2
  ln -sf ../ca/crl.pem "$UKAI_TLS_DIR/crl.pem"
}

start_node() {
  local name=$1 nsite port
  nsite=$(grep "^NODE_${name}_SITE=" "$dir/cluster.env" | cut -d= -f2)
  port=$(grep "^NODE_${name}_PORT=" "$dir/cluster.env" | cut -d= -f2)
  [[ -n $port ]] || die "no node named $name in this cluster"
  alive "$name" && die "node $name is already running"
  mkdir -p "$dir/data/$name"
  local served; served=$(serving_count "$name")
  local test_args=()
  if [[ ${SITE_DELAY_MS:-0} != 0 ]]; then
    test_args=(--test-site-delay-ms "$SITE_DELAY_MS")
    export UKAI_TEST_HOOKS=1  # only in this script's children: the nodes of a test cluster
  fi
  local tls; tls_flags "$name" node
  spawn "$name" "$bin/ukai-node" --id "$name" --site "$nsite" --listen "127.0.0.1:$port" \
    --data "$dir/data/$name" --zk "$UKAI_ZK" --zk-session-ms 4000 \
    --rereplicate-after "${REREPLICATE_AFTER:-600}" --repair-bandwidth "${REPAIR_BANDWIDTH:-0}" \
    --run-dir "$UKAI_RUN_DIR" "${tls[@]}" "${test_args[@]}"
  wait_for 30 "node $name" node_serving "$name" "$served"
}

start_fuse() {  # start_fuse NAME SITE PATH
  local name=$1 fsite=$2 path=$3
  mkdir -p "$path"
  mountpoint -q "$path" && die "$path is already a mount point"
  printf '%s\n%s\n' "$path" "$fsite" > "$dir/mounts/$name"
  local tls; tls_flags "$name" frontend
  spawn "$name" "$bin/ukai-fuse" "$path" --zk "$UKAI_ZK" --site "$fsite" \
    --host "$name-$(basename "$dir")" --zk-session-ms 4000 --run-dir "$UKAI_RUN_DIR" \
    --state-dir "$dir/state/$name" "${tls[@]}"
  wait_for 30 "frontend $name at $path" mountpoint -q "$path"
}

zk_classpath=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
# zk_mode PORT: the server's role ("leader", "follower", "standalone"), or nothing.
zk_mode() {
  { exec 3<>"/dev/tcp/127.0.0.1/$1" && echo srvr >&3 && sed -n 's/^Mode: //p' <&3; } 2>/dev/null
}
start_zk() {  # start_zk NAME: one ensemble member (NAME zk1..zkN)
  local name=$1
  [[ -f $dir/zk/$name/zoo.cfg ]] || die "no ZooKeeper member named $name"
  alive "$name" && die "$name is already running"
  spawn "$name" java -Xmx256m -Dzookeeper.admin.enableServer=false -cp "$zk_classpath" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zk/$name/zoo.cfg"
}

load_env() {
  [[ -f $dir/cluster.env ]] || die "no cluster in $dir (run start first)"
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  UKAI_RUN_DIR=${UKAI_RUN_DIR:-$dir/run}  # nodes' same-host sockets
  export UKAI_RUN_DIR
  # This script's own ukaictl calls (node_up) speak to the cluster as its admin.
  if [[ ${PLAINTEXT:-0} == 1 ]]; then export UKAI_INSECURE_PLAINTEXT=1; else export UKAI_TLS_DIR UKAI_CA_DIR; fi
}

case $cmd in
  zk-leader)
    load_env
    for ((i = 1; i <= ${ZK_MEMBERS:-1}; i++)); do
      port=$(grep "^ZK_zk${i}_PORT=" "$dir/cluster.env" | cut -d= -f2)
      [[ -n $port && $(zk_mode "$port") == leader ]] && { echo "zk$i"; exit 0; }
    done
    die "no ZooKeeper leader answers"
    ;;
  start-zk)
    load_env
    [[ ${#args[@]} -eq 1 ]] || die "usage: start-zk --dir DIR NAME"
    start_zk "${args[0]}"
    port=$(grep "^ZK_${args[0]}_PORT=" "$dir/cluster.env" | cut -d= -f2)
    wait_for 90 "ZooKeeper member ${args[0]} in the quorum" bash -c "
      { exec 3<>/dev/tcp/127.0.0.1/$port && echo srvr >&3 && grep -qE 'Mode: (leader|follower)' <&3; } 2>/dev/null"
    ;;
  add-node)
    [[ ${#args[@]} -eq 1 && -n $site ]] || die "usage: add-node --dir DIR --site SITE NAME"
    load_env
    name=${args[0]}
    [[ $name =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "bad node name '$name'"
    grep -q "^NODE_${name}_PORT=" "$dir/cluster.env" && die "node $name already exists"
    for ((p = $(first_port); ; p++)); do port_free "$p" && break; done
    { echo "NODE_${name}_SITE=$site"; echo "NODE_${name}_PORT=$p"; } >> "$dir/cluster.env"
    UKAI_ADMIN="$UKAI_ADMIN,127.0.0.1:$p"
    sed -i "s|^UKAI_ADMIN=.*|UKAI_ADMIN=$UKAI_ADMIN|" "$dir/cluster.env"
    load_env
    start_node "$name"
    ;;
  start)
    [[ -x $bin/ukai-node ]] || die "no binaries in $bin: run deploy/build.sh"
    { alive zk || alive zk1; } && die "a cluster already runs in $dir (stop it first)"
    [[ $zk_members == 1 || $zk_members == 3 ]] || die "--zk-ensemble takes 1 or 3"
    mkdir -p "$dir"/{pids,logs,cmd,mounts,zk,data,mnt}
    rm -rf "$dir/tls"  # a new cluster, a new CA
    base=$(first_port)
    ports=()
    for ((p = base; ${#ports[@]} < 4 + 8 * (zk_members > 1); p++)); do port_free "$p" && ports+=("$p"); done
    zk_hosts="127.0.0.1:${ports[0]}"
    if ((zk_members > 1)); then zk_hosts+=",127.0.0.1:${ports[4]},127.0.0.1:${ports[5]}"; fi
    {
      echo "UKAI_ZK=$zk_hosts"
      echo "UKAI_ADMIN=127.0.0.1:${ports[1]},127.0.0.1:${ports[2]},127.0.0.1:${ports[3]}"
      echo "UKAI_MOUNT=$dir/mnt"
      echo "NODE_n1_SITE=site-a"; echo "NODE_n1_PORT=${ports[1]}"
      echo "NODE_n2_SITE=site-a"; echo "NODE_n2_PORT=${ports[2]}"
      echo "NODE_n3_SITE=site-b"; echo "NODE_n3_PORT=${ports[3]}"
      echo "SITE_DELAY_MS=$site_delay"
      echo "REREPLICATE_AFTER=$rereplicate_after"
      echo "REPAIR_BANDWIDTH=$repair_bandwidth"
      echo "ZK_MEMBERS=$zk_members"
      echo "PLAINTEXT=$plaintext"
      echo "UKAI_RUN_DIR=$dir/run"
      if ((plaintext == 0)); then echo "UKAI_TLS_DIR=$dir/tls/admin"; echo "UKAI_CA_DIR=$dir/tls/ca"; fi
    } > "$dir/cluster.env"
    load_env
    ((plaintext)) || make_ca
    common_cfg="tickTime=1000
initLimit=10
syncLimit=5
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok"
    if ((zk_members == 1)); then
      printf '%s\ndataDir=%s\nclientPort=%s\n' "$common_cfg" "$dir/zk/data" "${ports[0]}" > "$dir/zk/zoo.cfg"
      spawn zk java -Xmx256m -Dzookeeper.admin.enableServer=false -cp "$zk_classpath" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zk/zoo.cfg"
      wait_for 60 "ZooKeeper on ${UKAI_ZK}" bash -c "exec 3<>/dev/tcp/127.0.0.1/${ports[0]}"
    else
      client=("${ports[0]}" "${ports[4]}" "${ports[5]}")
      for i in 1 2 3; do
        mkdir -p "$dir/zk/zk$i/data"
        echo "$i" > "$dir/zk/zk$i/data/myid"
        {
          printf '%s\ndataDir=%s\nclientPort=%s\n' "$common_cfg" "$dir/zk/zk$i/data" "${client[i-1]}"
          for j in 1 2 3; do
            echo "server.$j=127.0.0.1:${ports[4 + 2 * j]}:${ports[5 + 2 * j]}"
          done
        } > "$dir/zk/zk$i/zoo.cfg"
        echo "ZK_zk${i}_PORT=${client[i-1]}" >> "$dir/cluster.env"
      done
      for i in 1 2 3; do start_zk "zk$i"; done
      for i in 1 2 3; do
        wait_for 90 "ZooKeeper member zk$i in the quorum" bash -c "
          { exec 3<>/dev/tcp/127.0.0.1/${client[i-1]} && echo srvr >&3 && grep -qE 'Mode: (leader|follower)' <&3; } 2>/dev/null"
      done
    fi
    for n in n1 n2 n3; do start_node "$n"; done
    start_fuse fuse site-a "$UKAI_MOUNT"
    say "cluster up in $dir (logs in $dir/logs)"
    if ((plaintext)); then
      echo "export UKAI_ZK=$UKAI_ZK UKAI_ADMIN=$UKAI_ADMIN UKAI_MOUNT=$UKAI_MOUNT UKAI_INSECURE_PLAINTEXT=1 UKAI_RUN_DIR=$UKAI_RUN_DIR"
    else
      echo "export UKAI_ZK=$UKAI_ZK UKAI_ADMIN=$UKAI_ADMIN UKAI_MOUNT=$UKAI_MOUNT UKAI_TLS_DIR=$UKAI_TLS_DIR UKAI_CA_DIR=$UKAI_CA_DIR UKAI_RUN_DIR=$UKAI_RUN_DIR"
    fi
    ;;
  stop)
    for f in "$dir"/mounts/*; do
      [[ -f $f ]] || continue
      name=$(basename "$f") path=$(head -1 "$f")
      # /proc/mounts, not mountpoint(1): a frontend that died leaves a mount
      # that cannot even be stat'ed ("transport endpoint is not connected").
      if awk -v p="$path" '$2 == p {found = 1} END {exit !found}' /proc/mounts; then
        fusermount3 -u "$path" 2>/dev/null || umount -l "$path" 2>/dev/null || true
      fi
      stop_pid "$name"
      rm -f "$f"
    done
    for f in "$dir"/pids/n*.pid; do [[ -f $f ]] && stop_pid "$(basename "$f" .pid)"; done
    for z in zk zk1 zk2 zk3; do stop_pid "$z"; done
    for f in "$dir"/pids/*.pid; do [[ -f $f ]] && stop_pid "$(basename "$f" .pid)"; done
    say "stopped everything started in $dir"
    ;;
  status)
    [[ -f $dir/cluster.env ]] || { echo "no cluster in $dir"; exit 1; }
    rc=0 any=0
    for f in "$dir"/pids/*.pid; do
      [[ -f $f ]] || continue
      any=1
      name=$(basename "$f" .pid)
      if alive "$name"; then echo "$name running (pid $(pid_of "$name"))"; else echo "$name stopped"; rc=1; fi
    done
    ((any)) || { echo "nothing runs in $dir"; exit 1; }
    exit $rc
    ;;
  stop-node)
    load_env
    [[ ${#args[@]} -eq 1 ]] || die "usage: stop-node --dir DIR NAME"
    stop_pid "${args[0]}"
    ;;
  start-node)
    load_env
    [[ ${#args[@]} -eq 1 ]] || die "usage: start-node --dir DIR NAME"
    start_node "${args[0]}"
    ;;
  mount)
    load_env
    [[ ${#args[@]} -eq 1 && -n $site ]] || die "usage: mount --dir DIR --site SITE PATH"
    n=2
    while [[ -f $dir/mounts/fuse-$n ]]; do n=$((n + 1)); done
    start_fuse "fuse-$n" "$site" "$(realpath -m "${args[0]}")"
    echo "fuse-$n"
    ;;
  remount)
    load_env
    [[ ${#args[@]} -eq 1 && -f $dir/mounts/${args[0]} ]] || die "usage: remount --dir DIR NAME (a frontend)"
    name=${args[0]} path=$(head -1 "$dir/mounts/$name") fsite=$(sed -n 2p "$dir/mounts/$name")
    fusermount3 -u "$path" 2>/dev/null || umount -l "$path" 2>/dev/null || true
    stop_pid "$name"
    start_fuse "$name" "$fsite" "$path"
    ;;
  *) die "unknown command '$cmd'" ;;
esac
