#!/usr/bin/env bash
# Relocation through faults: while a disk moves between sites and a writer
# keeps writing through the FUSE mount, kill -9 the node running the job, a
# destination node, a source node, and the frontend. Each time the job must
# finish (another node picks it up, or it waits for the node to return) with
# every acknowledged write readable, and the moved replicas must hold all of
# it on their own. The sites are 10 ms apart (local-cluster.sh --site-delay).
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster --site-delay 10
"$cluster_tool" add-node --dir "$cluster_dir" --site site-b n4
eval "$(grep '^UKAI_ADMIN=' "$cluster_dir/cluster.env" | sed 's/^/export /')"
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log
mnt=$UKAI_MOUNT

ukaictl disk create f --size 1G --nodes n1,n2 >/dev/null
python3 "$w" write "$mnt/f" "$log" --tag fill --count 96
next=$((96 << 20))  # each writer takes a fresh region: a write cut short by a
                    # dead frontend must not overlap an acknowledged one

job_field() { ukaictl --json job info "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
start_writer() {  # start_writer TAG: 32 MiB more from $next in the background
  python3 "$w" write "$mnt/f" "$log" --tag "$1" --start "$next" --count 32 &
  writer=$!
  next=$((next + (32 << 20)))
}
# relocate TARGET: starts a slow enough job and waits until it copies.
relocate() {
  job=$(ukaictl relocate f --sites "$1" --bandwidth 24M)
  for _ in $(seq 100); do
    [[ $(job_field "$job" bytes_done) -gt 0 ]] && break
    sleep 0.1
  done
  log "job $job to $1 is copying (runner $(job_field "$job" runner))"
}
# Every site's nodes alone serve the disk? Stop the others and read it all.
check_only() {  # check_only N1 N2 (the other two are stopped meanwhile)
  local down=()
  for n in n1 n2 n3 n4; do [[ $n == "$1" || $n == "$2" ]] || down+=("$n"); done
  for n in "${down[@]}"; do "$cluster_tool" stop-node --dir "$cluster_dir" "$n"; done
  check "$1 and $2 alone serve every acknowledged write" python3 "$w" check "$mnt/f" "$log"
  for n in "${down[@]}"; do "$cluster_tool" start-node --dir "$cluster_dir" "$n"; done
}

# 1. The node running the job dies; another node claims it.
start_writer runner
relocate site-b
runner=$(job_field "$job" runner)
kill -9 "$(node_pid "$runner")"
log "killed the runner $runner (kill -9)"
check "the writer went on ($runner down)" wait "$writer"
"$cluster_tool" start-node --dir "$cluster_dir" "$runner"
check "the job finishes after its runner died" ukaictl job wait "$job"
check_eq "another node or the restarted one finished it" "done" "$(job_field "$job" state)"
check "every acknowledged write reads back" python3 "$w" check "$mnt/f" "$log"
check_only n3 n4

# 2. A destination dies mid-copy: writes to it fail and mark it stale; the
#    job waits for it and copies its blocks again.
start_writer dest
relocate site-a
kill -9 "$(node_pid n1)"
log "killed destination n1 (kill -9)"
check "the writer went on (destination down)" wait "$writer"
sleep 3
"$cluster_tool" start-node --dir "$cluster_dir" n1
check "the job finishes once the destination is back" ukaictl job wait "$job"
check "every acknowledged write reads back" python3 "$w" check "$mnt/f" "$log"
check_only n1 n2

# 3. A source dies mid-copy: the other source serves the copy.
start_writer source
relocate site-b
kill -9 "$(node_pid n1)"
log "killed source n1 (kill -9)"
check "the writer went on (source down)" wait "$writer"
check "the job finishes with one source" ukaictl job wait "$job"
"$cluster_tool" start-node --dir "$cluster_dir" n1
check "every acknowledged write reads back" python3 "$w" check "$mnt/f" "$log"
check_only n3 n4

# 4. The frontend dies mid-job; a new one mounts and writes on.
start_writer frontend
relocate site-a
kill -9 "$(node_pid fuse)"
log "killed the frontend (kill -9)"
wait "$writer" || true  # it loses its mount: its acknowledged records are logged
fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
mnt=$cluster_dir/mnt2
"$cluster_tool" mount --dir "$cluster_dir" --site site-a "$mnt" >/dev/null
start_writer after
check "a writer on the new mount finishes" wait "$writer"
check "the job finishes after the frontend died" ukaictl job wait "$job"
check "every acknowledged write reads back" python3 "$w" check "$mnt/f" "$log"
check_only n1 n2
