#!/usr/bin/env bash
# Live relocation through the real stack: a disk moves from n1,n2 to n2,n3
# (site-a to both sites) while two writers go on through the FUSE mount, one
# overwriting data being copied and one writing new data. The job is waited
# for with `ukaictl job wait`; afterwards every acknowledged write reads back,
# n1 holds nothing of the disk, and n3 alone serves all of it. Then the bad
# requests: unknown disk, site or node, too few nodes, a second job on the
# same disk; and a cancel, which leaves every block readable.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log
disk=$UKAI_MOUNT/mv

ukaictl disk create mv --size 512M --nodes n1,n2 >/dev/null
python3 "$w" write "$disk" "$log" --tag fill --count 128
log "wrote 128 MiB on n1,n2"

job=$(ukaictl --json relocate mv --nodes n2,n3 --bandwidth 32M | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])')
check "relocate prints a job id ($job)" test -n "$job"
python3 "$w" write "$disk" "$log" --tag over --count 64 &
over=$!
python3 "$w" write "$disk" "$log" --tag new --start $((128 << 20)) --count 64 &
new=$!
info=$(ukaictl --json disk info mv)
check "disk info names the running job" grep -q "\"job\": \"$job\"" <<<"$info"
check "job list shows it running" bash -c "ukaictl job list | grep '$job' | grep -q running"
want_rc=1 check_error "a second relocation of the same disk is refused" "already being relocated by $job" \
  ukaictl relocate mv --sites site-a

check "the overwriting writer finished without an error" wait "$over"
check "the new-data writer finished without an error" wait "$new"
check "job wait exits 0 when the job is done" ukaictl job wait "$job"
state=$(ukaictl --json job info "$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j["blocks_done"], j["bytes_done"] > 0)')
check_eq "the job is done, every allocated block moved" "done 128 True" "$state"

check "every acknowledged write reads back after the move" python3 "$w" check "$disk" "$log"
bytes=$(ukaictl --json disk info mv | python3 -c '
import json, sys
nb = json.load(sys.stdin)["node_bytes"]
print(nb.get("n1", 0), nb.get("n2", 0) > 0, nb.get("n3", 0) > 0)')
check_eq "n1 dropped its copy; n2 and n3 hold the disk" "0 True True" "$bytes"
check "the disk is not being moved any more" bash -c "ukaictl --json disk info mv | grep -q '\"job\": \"\"'"

"$cluster_tool" stop-node --dir "$cluster_dir" n1
"$cluster_tool" stop-node --dir "$cluster_dir" n2
check "with n1 and n2 down, n3 alone serves every acknowledged write" python3 "$w" check "$disk" "$log"
"$cluster_tool" start-node --dir "$cluster_dir" n1
"$cluster_tool" start-node --dir "$cluster_dir" n2

check_error "relocating an unknown disk" "no disk named 'nope'" ukaictl relocate nope --sites site-b
check_error "relocating to an unknown site" "unknown site 'site-x'" ukaictl relocate mv --sites site-x
check_error "relocating to an unknown node" "unknown node 'n9'" ukaictl relocate mv --nodes n3,n9
check_error "relocating to fewer nodes than replicas" "has 2 replicas" ukaictl relocate mv --nodes n3
check_error "relocating without a target" "--sites or --nodes" ukaictl relocate mv
check "none of that left a job behind" bash -c "[[ \$(ukaictl --json job list | grep -c '\"job\"') == 1 ]]"

# A slow job, cancelled: every block stays readable wherever it is.
slow=$(ukaictl relocate mv --nodes n1,n2 --bandwidth 2M)
sleep 2
check "cancel is accepted" ukaictl job cancel "$slow"
want_rc=1 check_error "job wait reports the cancel" "was cancelled" ukaictl job wait "$slow"
check "every acknowledged write reads back after the cancel" python3 "$w" check "$disk" "$log"
check "nothing is left half-copied" bash -c "ukaictl --json disk info mv | grep -q '\"syncing_blocks\": 0'"
