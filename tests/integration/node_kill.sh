#!/usr/bin/env bash
# kill -9 of a replica node while a writer runs: the writer goes on against
# the surviving replica, the dead one is marked stale for the blocks written
# meanwhile, nothing acknowledged is lost, and the stale copy is never read
# after the node comes back (reads fail rather than return old data when only
# the stale copy is reachable). Once a clean copy is up again, a repair job
# copies back just the blocks the node missed.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log

ukaictl disk create kv --size 512M --nodes n1,n2 >/dev/null
# Phase 1: 64 MiB while both replicas are up.
python3 "$w" write "$UKAI_MOUNT/kv" "$log" --tag before --count 64
# Phase 2: 256 MiB more, with n2 killed early on (paced to take about 4 s,
# so the kill lands mid-run however fast the machine is).
python3 "$w" write "$UKAI_MOUNT/kv" "$log" --tag during --start $((64 << 20)) --count 256 \
  --rate 64 &
writer=$!
sleep 1
kill -9 "$(node_pid n2)"
log "killed n2 (kill -9) during the writes"
check "the writer finished without an error" wait "$writer"
check "every acknowledged write reads back from the survivor" python3 "$w" check "$UKAI_MOUNT/kv" "$log"

stale_blocks() { ukaictl --json disk info kv | grep -o '"stale_replica_blocks": [0-9]*' | grep -o '[0-9]*$'; }
stale=$(stale_blocks)
check "n2 is marked stale for blocks written while it was down ($stale)" test "${stale:-0}" -gt 0

# n2 comes back while n1, the only clean copy of what n2 missed, is down: no
# repair can start, and n2 alone must not serve what it missed.
"$cluster_tool" stop-node --dir "$cluster_dir" n1
"$cluster_tool" start-node --dir "$cluster_dir" n2
result=$(python3 "$w" check "$UKAI_MOUNT/kv" "$log" --allow-eio) || true
log "with only n2 up: $result"
check "with only the stale node up, no read returns old data" grep -q 'bad=0' <<<"$result"
check "and blocks it missed fail instead of being read" bash -c "grep -q 'eio=[1-9]' <<<'$result'"
check "blocks written before the crash are served by n2" bash -c "
  python3 '$w' check '$UKAI_MOUNT/kv' <(grep '^before ' '$log')"
check_eq "n2's stale copies are kept while no clean copy is up" "$stale" "$(stale_blocks)"

# n1 back: n2 finds its stale blocks and a repair job copies just those.
"$cluster_tool" start-node --dir "$cluster_dir" n1
caught_up() {  # no replica of kv stale or still being filled
  ukaictl --json disk info kv | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(d["stale_replica_blocks"] + d["syncing_blocks"] != 0)'
}
check "n2 catches up by itself: no stale or syncing block within 60 s" wait_until 60 caught_up
job=$(ukaictl --json job list | python3 -c '
import json, sys
print(" ".join(j["job"] for j in json.load(sys.stdin) if j["kind"] == "repair" and j["disk"] == "kv"))')
check "one repair job did it ($job)" test "$(wc -w <<<"$job")" -eq 1
repair=$(ukaictl --json job wait "$job" | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j["state"], j["bytes_done"], j["bytes_total"])')
log "repair job (state, bytes copied, bytes estimated): $repair"
check "it is done" grep -q '^done ' <<<"$repair"
read -r _ copied estimate <<<"$repair"
check "it copied only the blocks n2 missed (${copied:-?} of at most ${estimate:-?} bytes, disk 512M)" \
  test "${copied:-0}" -gt 0 -a "${copied:-0}" -le "${estimate:-0}" -a "${estimate:-0}" -lt $((320 << 20))
check "a repair asked for by hand finds nothing left to copy" grep -q '"bytes_done": 0' \
  <<<"$(ukaictl --json disk repair kv --wait)"

"$cluster_tool" stop-node --dir "$cluster_dir" n1
check "with n1 down, every acknowledged write reads back from the repaired n2" \
  python3 "$w" check "$UKAI_MOUNT/kv" "$log"
"$cluster_tool" start-node --dir "$cluster_dir" n1
check_error "repair of an unknown disk is refused" "no disk named 'nosuch'" ukaictl disk repair nosuch
