#!/usr/bin/env bash
# Two sites 10 ms apart (local-cluster.sh --site-delay, a test-only node
# option): a VM "moved" to site-b keeps writing through a site-b mount while
# its disk is relocated from site-a to site-b. Reads from site-b pay the
# distance before, and same-site latency after; `disk info --from site-b` and
# `node list` say so; every acknowledged write reads back from both mounts.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster --site-delay 10
"$cluster_tool" add-node --dir "$cluster_dir" --site site-b n4
eval "$(grep '^UKAI_ADMIN=' "$cluster_dir/cluster.env" | sed 's/^/export /')"
mnt_b=$cluster_dir/mnt-b
"$cluster_tool" mount --dir "$cluster_dir" --site site-b "$mnt_b" >/dev/null
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log

ukaictl disk create far --size 512M --nodes n1,n2 >/dev/null
python3 "$w" write "$UKAI_MOUNT/far" "$log" --tag fill --count 96

# Median 4 KiB O_DIRECT read latency through a mount, in microseconds.
read_p50() {
  fio --name=lat --filename="$1" --rw=randread --bs=4k --size=96M --direct=1 \
    --ioengine=libaio --iodepth=1 --runtime=3 --time_based --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["jobs"][0]["read"]["clat_ns"]["percentile"]["50.000000"] / 1000))'
}
sleep 6  # the frontends publish their RTTs every 5 s
before=$(read_p50 "$mnt_b/far")
log "site-b read p50 before: $before us"
check "reads from site-b pay the distance before ($before us)" test "$before" -ge 9000
rtt=$(ukaictl --json node list | python3 -c '
import json, sys
n = {x["id"]: x for x in json.load(sys.stdin)}
print(n["n1"]["rtt_us_by_site"].get("site-b", 0), n["n3"]["rtt_us_by_site"].get("site-b", 99999))')
read -r far_rtt near_rtt <<<"$rtt"
check "node list: site-b frontends see n1 10 ms away ($far_rtt us) and n3 near ($near_rtt us)" \
  test "$far_rtt" -ge 9000 -a "$near_rtt" -lt 5000
check "disk info --from site-b: every block read from site-a" bash -c \
  "ukaictl --json disk info far --from site-b | python3 -c '
import json, sys
r = json.load(sys.stdin)[\"reads_from\"]
sys.exit(0 if r and all(x[\"site\"] == \"site-a\" for x in r) else 1)'"

# Data in a later batch too (blocks 64-95; a batch is 32 blocks of 4 MiB),
# so the job is still copying when the first batch has switched: at 24 MiB/s
# its 2 x 128 MiB take about 10 s, longer than the two 2 s measurements.
python3 "$w" write "$UKAI_MOUNT/far" "$log" --tag later --start $((256 << 20)) --count 128

# Median read latency from site-b of [offset, offset + 64M), in microseconds.
read_p50_at() {
  fio --name=lat --filename="$1" --rw=randread --bs=4k --offset="$2" --size=64M --direct=1 \
    --ioengine=libaio --iodepth=1 --runtime=2 --time_based --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["jobs"][0]["read"]["clat_ns"]["percentile"]["50.000000"] / 1000))'
}
job_field() { ukaictl --json job info "$job" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# The VM now runs in site-b and keeps writing there during the move.
python3 "$w" write "$mnt_b/far" "$log" --tag moved --start $((32 << 20)) --count 96 --flush-every 8 &
writer=$!
job=$(ukaictl relocate far --sites site-b --bandwidth 24M)
# Reads come closer block by block: once the first batch has switched, and
# while the job still runs, its blocks read at same-site latency and the
# later batch's still pay the distance.
for _ in $(seq 600); do
  [[ $(job_field blocks_done) -ge 32 || $(job_field state) != running ]] && break
  sleep 0.1
done
moved=$(read_p50_at "$mnt_b/far" 0)
waiting=$(read_p50_at "$mnt_b/far" $((256 << 20)))
state=$(job_field state)
log "during the job: site-b read p50 $moved us on moved blocks, $waiting us on blocks not moved yet ($state)"
check_eq "the job was still running while reads were measured" running "$state"
check "moved blocks read at same-site latency during the job ($moved us)" test "$moved" -lt 3000
check "blocks not moved yet still pay the distance ($waiting us)" test "$waiting" -ge 9000
check "the relocation finishes" ukaictl job wait "$job"
check "the site-b writer finished without an error" wait "$writer"

after=$(read_p50 "$mnt_b/far")
log "site-b read p50 after: $after us"
check "reads from site-b are same-site after ($after us, before $before us)" test "$after" -lt 3000
check "disk info --from site-b: every block read from site-b" bash -c \
  "ukaictl --json disk info far --from site-b | python3 -c '
import json, sys
r = json.load(sys.stdin)[\"reads_from\"]
sys.exit(0 if r and all(x[\"site\"] == \"site-b\" for x in r) else 1)'"
check "every acknowledged write reads back from site-b" python3 "$w" check "$mnt_b/far" "$log"
check "and from site-a" python3 "$w" check "$UKAI_MOUNT/far" "$log"
bytes=$(ukaictl --json disk info far | python3 -c '
import json, sys
nb = json.load(sys.stdin)["node_bytes"]
print(nb.get("n1", 0) + nb.get("n2", 0), nb.get("n3", 0) > 0 and nb.get("n4", 0) > 0)')
check_eq "site-a holds nothing of the disk, n3 and n4 hold it" "0 True" "$bytes"
check_error "the delay hook is refused outside tests" "needs UKAI_TEST_HOOKS=1" \
  env -u UKAI_TEST_HOOKS ukai-node --id x --site s --listen 127.0.0.1:0 --data "$cluster_dir/x" \
  --test-site-delay-ms 5
