#!/usr/bin/env bash
# kill -9 of a replica node at random moments, round after round, while a
# writer goes through the mount: each round kills n1 or n2 (chosen at random)
# after a random 0.5-3 s, keeps it down 1-4 s, and starts it again. The writer
# never fails (writes go on with the survivor; a block whose only current copy
# is the dead node is held until it is back), every acknowledged write reads
# back, and once the repairs are done each node alone serves all of it.
#
# 5 rounds in CI; `tests/run.sh --soak` (UKAI_SOAK=1) runs 25, and
# UKAI_CHAOS_ROUNDS=N any number. The random seed is logged (UKAI_CHAOS_SEED
# replays a run).
source "$(dirname "$0")/../lib.sh"
start_cluster
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log
rounds=${UKAI_CHAOS_ROUNDS:-$([[ ${UKAI_SOAK:-0} == 1 ]] && echo 25 || echo 5)}
seed=${UKAI_CHAOS_SEED:-$RANDOM}
RANDOM=$seed
log "$rounds rounds, seed $seed"

ukaictl disk create chaos --size 2G --nodes n1,n2 >/dev/null
python3 "$w" write "$UKAI_MOUNT/chaos" "$log" --tag fill --count 16
# 64 KiB records at 8 MB/s over fresh regions, until the rounds are over
# (1.75 GiB at most: a 25-round soak takes about 4 minutes).
python3 "$w" write "$UKAI_MOUNT/chaos" "$log" --tag chaos --start $((16 << 20)) --count 28000 \
  --record 65536 --rate 8 --stop-file "$cluster_dir/stop-writer" &
writer=$!

ms() { echo "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"; }
for ((r = 1; r <= rounds; r++)); do
  victim=n$((RANDOM % 2 + 1))
  sleep "$(ms $((500 + RANDOM % 2500)))"
  kill -9 "$(node_pid "$victim")"
  down=$((1000 + RANDOM % 3000))
  log "round $r: killed $victim (kill -9), down for $(ms $down) s; $(wc -l < "$log") records acknowledged"
  sleep "$(ms $down)"
  "$cluster_tool" start-node --dir "$cluster_dir" "$victim"
done
sleep 1
touch "$cluster_dir/stop-writer"
check "the writer never failed through $rounds kills" wait "$writer"
log "$(wc -l < "$log") records acknowledged in all"
check "every acknowledged write reads back" python3 "$w" check "$UKAI_MOUNT/chaos" "$log"

healthy() {
  ukaictl --json disk info chaos | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(d["stale_replica_blocks"] + d["syncing_blocks"] + d["degraded_blocks"] != 0 or bool(d["job"]))'
}
check "repairs leave no stale replica within 120 s" wait_until 120 healthy
for alone in n1 n2; do
  other=$([[ $alone == n1 ]] && echo n2 || echo n1)
  "$cluster_tool" stop-node --dir "$cluster_dir" "$other"
  check "$alone alone serves every acknowledged write" python3 "$w" check "$UKAI_MOUNT/chaos" "$log"
  "$cluster_tool" start-node --dir "$cluster_dir" "$other"
done
