#!/usr/bin/env bash
# Bad input gets one clear line on stderr and exit 1, never a crash, a hang
# or a half-made disk: names, sizes, duplicates, unknown disks, placement,
# unreachable nodes, ZooKeeper down.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster

check_error "a name with a slash" "invalid disk name" ukaictl disk create a/b --size 1G
check_error "a name with a space" "invalid disk name" ukaictl disk create "a b" --size 1G
check_error "a 65-character name" "invalid disk name" ukaictl disk create "$(printf 'x%.0s' {1..65})" --size 1G
check_error "an empty name" "invalid disk name" ukaictl disk create "" --size 1G
check_error "size zero" "greater than zero" ukaictl disk create d --size 0
check_error "a negative size" "invalid size" ukaictl disk create d --size -5G
check_error "a size not a multiple of 512" "multiple of 512" ukaictl disk create d --size 1000
check_error "a size over the limit" "over the limit" ukaictl disk create d --size 2P
check_error "a size that is not a number" "invalid size" ukaictl disk create d --size lots
check_error "a bad block size" "power of two" ukaictl disk create d --size 1G --block-size 3M
check_error "more replicas than nodes" "replicas requested" ukaictl disk create d --size 1G --replicas 4
check_error "more replicas than a site has" "eligible" ukaictl disk create d --size 1G --replicas 2 --sites site-b
check_error "an unknown site" "unknown site" ukaictl disk create d --size 1G --sites mars
check_error "an unknown node" "unknown node" ukaictl disk create d --size 1G --nodes n1,n9
check_eq "none of that made a disk" "" "$(ls "$UKAI_MOUNT")"
check_eq "nor a name in the catalog" "[]" "$(ukaictl --json disk list | tr -d ' \n')"

ukaictl disk create d --size 1G >/dev/null
check_error "a duplicate name" "already exists" ukaictl disk create d --size 2G
check_eq "the duplicate left the first disk as it was" 1073741824 "$(stat -c %s "$UKAI_MOUNT/d")"
check_error "info of an unknown disk" "no disk named 'nope'" ukaictl disk info nope
check_error "resize of an unknown disk" "no disk named 'nope'" ukaictl disk resize nope --size 2G
check_error "delete of an unknown disk" "no disk named 'nope'" ukaictl disk delete nope
check_error "shrinking" "shrinking" ukaictl disk resize d --size 512M
want_rc=2 check_error "a usage error (exit 2)" "required" ukaictl disk create
check_error "no admin address" "UKAI_ADMIN" env -u UKAI_ADMIN ukaictl disk list

# A node that is down: as the admin address, and in node list.
n3=$(node_addr n3)
"$cluster_tool" stop-node --dir "$cluster_dir" n3
check_error "an unreachable admin address" "cannot reach" ukaictl --admin "$n3" disk list
check "node list still answers and shows n3 down" bash -c \
  "ukaictl node list | awk '\$1 == \"n3\" && \$4 == \"down\" {ok=1} END {exit !ok}'"
check "ukaictl fails over to the next admin address" ukaictl --admin "$n3,$(node_addr n1)" disk list
"$cluster_tool" start-node --dir "$cluster_dir" n3

# Nodes validate requests themselves (a client bypassing libukai's checks).
check "reads past the end through the mount return nothing" bash -c \
  "[[ \$(dd if='$UKAI_MOUNT/d' bs=4096 skip=$((1 << 18)) count=1 status=none | wc -c) == 0 ]]"

# The block I/O port: junk, a frame over the size limit and a frame cut short
# each cost only their own connection; the node keeps serving the mount.
head -c 8M /dev/urandom > "$cluster_dir/junk-check.bin"
dd if="$cluster_dir/junk-check.bin" of="$UKAI_MOUNT/d" bs=1M oflag=direct conv=notrunc status=none
io_addr=$(ukaictl --json node list | python3 -c \
  'import json, sys; print(next(n["io_address"] for n in json.load(sys.stdin) if n["id"] == "n1"))')
check "n1 publishes a block I/O address" test -n "$io_addr"
python3 - "$io_addr" <<'PY'
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
frames = [b"\x5a" * 32,                                                    # bad magic
          struct.pack("<IHHQIIQ", 0x31574B55, 2, 0, 1, 0, (64 << 20) + 1, 0),  # data over the limit
          struct.pack("<IHHQIIQ", 0x31574B55, 2, 0, 1, 10, 4096, 0) + b"abc"]  # cut short
for f in frames:
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the node closes it
    s.close()
PY
check "n1 is still up after junk on its block I/O port" \
  kill -0 "$(cat "$cluster_dir/pids/n1.pid")"
check "what was written before reads back through the mount" cmp \
  <(dd if="$UKAI_MOUNT/d" bs=1M count=8 iflag=direct status=none) "$cluster_dir/junk-check.bin"

# Daemons with bad surroundings: exit 1, the last stderr line says why.
check_daemon_error() {  # DESCRIPTION PATTERN COMMAND...
  local what=$1 pattern=$2; shift 2
  local rc=0
  timeout 60 "$@" >/dev/null 2>"$cluster_dir/daemon.err" || rc=$?
  local last; last=$(tail -n 1 "$cluster_dir/daemon.err")
  if [[ $rc -eq 1 ]] && grep -qiE -- "$pattern" <<<"$last"; then log "ok: $what ($last)"
  else fail "$what: exit $rc, last line '$last'"; fi
}
n9_tls=(--tls-dir "$cluster_dir/tls-n9")
ukaictl cert issue --role node --id n9 --out "$cluster_dir/tls-n9" >/dev/null
fuse_tls=(--tls-dir "$cluster_dir/tls/fuse")
check_daemon_error "ukai-node with ZooKeeper unreachable" "ZooKeeper at 127.0.0.1:1 unreachable" \
  ukai-node --id n9 --site s --listen 127.0.0.1:0 --data "$cluster_dir/n9" --zk 127.0.0.1:1 "${n9_tls[@]}"
check_daemon_error "ukai-fuse with ZooKeeper unreachable" "ZooKeeper at 127.0.0.1:1 unreachable" \
  ukai-fuse "$cluster_dir/mnt-x" --site s --zk 127.0.0.1:1 "${fuse_tls[@]}"
check_daemon_error "ukai-node on a port already taken" "cannot listen" \
  ukai-node --id n9 --site s --listen "$(node_addr n1)" --data "$cluster_dir/n9" --zk "$UKAI_ZK" \
  "${n9_tls[@]}"
check_daemon_error "ukai-node on a block I/O port already taken" "cannot listen" \
  ukai-node --id n9 --site s --listen 127.0.0.1:0 --io-listen "$(node_addr n1)" \
  --data "$cluster_dir/n9" --zk "$UKAI_ZK" "${n9_tls[@]}"
check_daemon_error "ukai-node with a bad id" "invalid --id" \
  ukai-node --id "a/b" --site s --listen 127.0.0.1:0 --data "$cluster_dir/n9" --zk "$UKAI_ZK"
check_daemon_error "ukai-fuse on a missing directory" "cannot mount" \
  ukai-fuse "$cluster_dir/no/such/dir" --site s --zk "$UKAI_ZK" "${fuse_tls[@]}"
check_daemon_error "ukai-node without credentials" "no TLS credentials" \
  ukai-node --id n9 --site s --listen 127.0.0.1:0 --data "$cluster_dir/n9" --zk "$UKAI_ZK"
check_daemon_error "ukai-fuse without credentials" "no TLS credentials" \
  ukai-fuse "$cluster_dir/mnt-x" --site s --zk "$UKAI_ZK"
check_daemon_error "ukai-node with another node's certificate" "is for node n1, not node n9" \
  ukai-node --id n9 --site s --listen 127.0.0.1:0 --data "$cluster_dir/n9" --zk "$UKAI_ZK" \
  --tls-dir "$cluster_dir/tls/n1"
check_daemon_error "ukai-node with a frontend's certificate" "is for frontend fuse, not node n9" \
  ukai-node --id n9 --site s --listen 127.0.0.1:0 --data "$cluster_dir/n9" --zk "$UKAI_ZK" \
  "${fuse_tls[@]}"
check_daemon_error "ukai-node with TLS and plaintext both" "exclude each other" \
  ukai-node --id n9 --site s --listen 127.0.0.1:0 --data "$cluster_dir/n9" --zk "$UKAI_ZK" \
  "${n9_tls[@]}" --insecure-plaintext
check_eq "none of that registered a node" 3 "$(ukaictl --json node list | grep -c '"id"')"

# ZooKeeper down: every command that needs it fails cleanly within the timeout.
kill -STOP "$(cat "$cluster_dir/pids/zk.pid")"
check_error "create with ZooKeeper unreachable" "ZooKeeper|deadline|unavailable" \
  ukaictl --timeout 20 disk create z --size 1G
kill -CONT "$(cat "$cluster_dir/pids/zk.pid")"
check "the cluster answers again once ZooKeeper is back" wait_until 30 ukaictl disk info d
check "and the failed create made nothing" bash -c "! ukaictl disk info z 2>/dev/null"
