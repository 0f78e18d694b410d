#!/usr/bin/env bash
# Re-replication, with a writer running each time: a node drained by hand,
# then a node killed and left dead past the grace time (3 s here), have their
# replicas rebuilt on another node of their site; nothing acknowledged is
# lost; `node remove` forgets a drained, stopped node and refuses a node that
# still holds replicas or is up.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster --rereplicate-after 3
"$cluster_tool" add-node --dir "$cluster_dir" --site site-a n4
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log

# held NODE: the block replicas `node list` says NODE holds.
held() {
  ukaictl --json node list | python3 -c '
import json, sys
print(sum(n["replica_blocks"] for n in json.load(sys.stdin) if n["id"] == sys.argv[1]))' "$1"
}
holds_none() { [[ $(held "$1") == 0 ]]; }
healthy() {  # no block of rb short of its replicas, stale or being filled
  ukaictl --json disk info rb | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(d["degraded_blocks"] + d["stale_replica_blocks"] + d["syncing_blocks"] != 0)'
}

ukaictl disk create rb --size 256M --sites site-a >/dev/null
python3 "$w" write "$UKAI_MOUNT/rb" "$log" --tag before --count 48
log "before: n1 $(held n1), n2 $(held n2), n4 $(held n4) block replicas"

# 1. Drain n2 while the writer runs.
python3 "$w" write "$UKAI_MOUNT/rb" "$log" --tag drain --start $((48 << 20)) --count 96 &
writer=$!
ukaictl node drain n2 >/dev/null
check "draining n2: it holds no replica within 60 s" wait_until 60 holds_none n2
check "the writer finished without an error" wait "$writer"
check "node list says n2 is draining" bash -c "ukaictl node list | grep '^n2 ' | grep -q draining"
check_error "a node holding replicas is not removed" "still holds [0-9]+ block replicas" \
  ukaictl node remove n1
check_error "a node that is up is not removed" "n2 is up: stop it first" ukaictl node remove n2
"$cluster_tool" stop-node --dir "$cluster_dir" n2
check "the drained, stopped n2 is removed" ukaictl node remove n2
check "and is no longer listed" bash -c "! ukaictl node list | grep -q '^n2 '"
check "every acknowledged write reads back without n2" python3 "$w" check "$UKAI_MOUNT/rb" "$log"
check_error "an unknown node is refused" "no node 'n9'" ukaictl node drain n9

# 2. n4 dies (kill -9) during writes and stays dead: after the grace time its
# replicas are rebuilt on n5, site-a's other node; site-b is not allowed.
"$cluster_tool" add-node --dir "$cluster_dir" --site site-a n5
n4_blocks=$(held n4)
python3 "$w" write "$UKAI_MOUNT/rb" "$log" --tag dead --start $((144 << 20)) --count 64 &
writer=$!
sleep 1
kill -9 "$(node_pid n4)"
log "killed n4 (kill -9), which held $n4_blocks block replicas"
check "the writer finished without an error" wait "$writer"
check "n4's replicas are rebuilt elsewhere within 90 s" wait_until 90 holds_none n4
check "every block of rb has its replicas again" wait_until 30 healthy
check "on n5, not in site-b ($(held n5) on n5, $(held n3) on n3)" \
  test "$(held n5)" -ge "$n4_blocks" -a "$(held n3)" -eq 0
check "node list says since when n4 is down" bash -c "ukaictl node list | grep '^n4 ' | grep -q 'down since'"
check "every acknowledged write reads back with n4 dead" python3 "$w" check "$UKAI_MOUNT/rb" "$log"
"$cluster_tool" stop-node --dir "$cluster_dir" n1
check "and from n5 alone (n1 stopped too)" python3 "$w" check "$UKAI_MOUNT/rb" "$log"
"$cluster_tool" start-node --dir "$cluster_dir" n1
