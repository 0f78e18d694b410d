#!/usr/bin/env bash
# A relocation through a ZooKeeper leader change: a three-member ensemble on
# loopback ports, a writer going through the mount, and the leader killed
# (kill -9) while the job copies. The job finishes, the writer never fails,
# every acknowledged write reads back, and the new replicas alone hold it.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster --zk-ensemble 3 --site-delay 10
"$cluster_tool" add-node --dir "$cluster_dir" --site site-b n4
eval "$(grep '^UKAI_ADMIN=' "$cluster_dir/cluster.env" | sed 's/^/export /')"
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log

ukaictl disk create z --size 1G --nodes n1,n2 >/dev/null
python3 "$w" write "$UKAI_MOUNT/z" "$log" --tag fill --count 64
python3 "$w" write "$UKAI_MOUNT/z" "$log" --tag during --start $((64 << 20)) --count 48 &
writer=$!
job=$(ukaictl relocate z --sites site-b --bandwidth 16M)
sleep 2
leader=$("$cluster_tool" zk-leader --dir "$cluster_dir")
check "a ZooKeeper leader is elected ($leader)" test -n "$leader"
kill -9 "$(node_pid "$leader")"
log "killed the ZooKeeper leader $leader (kill -9)"
check "the writer never failed" wait "$writer"
check "the job finishes through the leader change" ukaictl job wait "$job"
new_leader=$("$cluster_tool" zk-leader --dir "$cluster_dir")
check "another member leads now ($new_leader)" test -n "$new_leader" -a "$new_leader" != "$leader"
"$cluster_tool" start-zk --dir "$cluster_dir" "$leader"
check "every acknowledged write reads back" python3 "$w" check "$UKAI_MOUNT/z" "$log"
"$cluster_tool" stop-node --dir "$cluster_dir" n1
"$cluster_tool" stop-node --dir "$cluster_dir" n2
check "n3 and n4 alone serve every acknowledged write" python3 "$w" check "$UKAI_MOUNT/z" "$log"
"$cluster_tool" start-node --dir "$cluster_dir" n1
"$cluster_tool" start-node --dir "$cluster_dir" n2
