#!/usr/bin/env bash
# kill -9 of a replica node while a writer runs: the writer goes on against
# the surviving replica, the dead one is marked stale for the blocks written
# meanwhile, nothing acknowledged is lost, and the stale copy is never read
# after the node comes back (reads fail rather than return old data when only
# the stale copy is reachable).
source "$(dirname "$0")/../lib.sh"
start_cluster
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log

ukaictl disk create kv --size 512M --nodes n1,n2 >/dev/null
# Phase 1: 64 MiB while both replicas are up.
python3 "$w" write "$UKAI_MOUNT/kv" "$log" --tag before --count 64
# Phase 2: 256 MiB more, with n2 killed early on.
python3 "$w" write "$UKAI_MOUNT/kv" "$log" --tag during --start $((64 << 20)) --count 256 &
writer=$!
sleep 1
kill -9 "$(node_pid n2)"
log "killed n2 (kill -9) during the writes"
check "the writer finished without an error" wait "$writer"
check "every acknowledged write reads back from the survivor" python3 "$w" check "$UKAI_MOUNT/kv" "$log"

stale=$(ukaictl --json disk info kv | grep -o '"stale_replica_blocks": [0-9]*' | grep -o '[0-9]*$')
check "n2 is marked stale for blocks written while it was down ($stale)" test "${stale:-0}" -gt 0

"$cluster_tool" start-node --dir "$cluster_dir" n2
check "after n2 is back, every acknowledged write still reads back" python3 "$w" check "$UKAI_MOUNT/kv" "$log"

"$cluster_tool" stop-node --dir "$cluster_dir" n1
result=$(python3 "$w" check "$UKAI_MOUNT/kv" "$log" --allow-eio) || true
log "with only n2 up: $result"
check "with only the stale node up, no read returns old data" grep -q 'bad=0' <<<"$result"
check "and blocks it missed fail instead of being read" bash -c "grep -q 'eio=[1-9]' <<<'$result'"
check "blocks written before the crash are served by n2" bash -c "
  python3 '$w' check '$UKAI_MOUNT/kv' <(grep '^before ' '$log')"
"$cluster_tool" start-node --dir "$cluster_dir" n1
