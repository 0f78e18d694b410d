#!/usr/bin/env bash
# ZooKeeper away for 12 s (its server stopped with SIGSTOP) while a writer
# goes through the mount: data I/O with an up-to-date layout needs no
# ZooKeeper, so writes and flushes are acknowledged throughout. When it is
# back (the sessions, 4 s for nodes and 10 s for the frontend, expired or
# not: that depends on who reaches the server first), every node is
# registered, watches are armed (a new disk shows on the mount), and every
# acknowledged write reads back.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log
zk=$(node_pid zk)
trap 'rc=$?; kill -CONT "$zk" 2>/dev/null; (exit "$rc"); finish' EXIT  # never leave ZooKeeper stopped

ukaictl disk create zo --size 4G --nodes n1,n2 >/dev/null
# The first writes allocate the disk's only chunk and take the writer epoch.
python3 "$w" write "$UKAI_MOUNT/zo" "$log" --tag fill --count 8
python3 "$w" write "$UKAI_MOUNT/zo" "$log" --tag during --start $((8 << 20)) --count 60000 \
  --record 65536 --stop-file "$cluster_dir/stop-writer" &
writer=$!
sleep 3
kill -STOP "$zk"
log "stopped ZooKeeper (SIGSTOP) for 12 s"
sleep 2
acked_before=$(wc -l < "$log")
sleep 8
acked_during=$(wc -l < "$log")
sleep 2
kill -CONT "$zk"
sleep 3
touch "$cluster_dir/stop-writer"
check "writes were acknowledged while ZooKeeper was away ($acked_before, then $acked_during records)" \
  test "$acked_during" -gt "$acked_before"
check "the writer never failed" wait "$writer"

all_up() {
  ukaictl --json node list | python3 -c '
import json, sys
sys.exit(not all(n["up"] for n in json.load(sys.stdin)))'
}
check "every node is registered as up again within 30 s" wait_until 30 all_up
log "sessions expired: $(grep -l "session expired" "$cluster_dir"/logs/*.log | xargs -r -n1 basename | tr '\n' ' ')"
ukaictl disk create after --size 1M >/dev/null
check "a disk created afterwards shows on the mount within 5 s (watches re-armed)" \
  wait_until 5 test -f "$UKAI_MOUNT/after"
check "every acknowledged write reads back" python3 "$w" check "$UKAI_MOUNT/zo" "$log"
