#!/usr/bin/env bash
# Snapshots, clones and backups through kill -9, each with a writer that logs
# what a flush acknowledged:
#  1. the node serving the admin call dies during `snap create`, at a random
#     moment, round after round (3; 10 with --soak): the snapshot is there or
#     not, never half; if there, it holds every write acknowledged before the
#     call; after the node is back and repaired, a scrub finds no replica of
#     any object (snapshots' included) differing from another; every
#     acknowledged write is on the disk;
#  2. the frontend dies while its writes copy blocks on write after a
#     snapshot; a new mount writes on: the snapshot reads as it did, every
#     acknowledged write reads back;
#  3. a clone made while a node is killed is there or not, and reads as its
#     snapshot if there;
#  4. ukaictl dies during a backup: no backup file is left, a new one restores
#     byte-exact;
#  5. the admin node dies during a rollback: running it again finishes it;
#  6. the node running a flatten dies half way, with a writer on the clone:
#     the job finishes on its own, every acknowledged write reads back, the
#     rest reads as the parent's snapshot, and the snapshot can then go.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster
m=$UKAI_MOUNT
w=$top/tests/ack_writer.py
work=$cluster_dir/work; mkdir -p "$work"
rec=262144 count=128
rounds=3
[[ ${UKAI_SOAK:-0} == 1 ]] && rounds=10
seed=${UKAI_CHAOS_SEED:-$RANDOM}
log "seed $seed (UKAI_CHAOS_SEED replays it)"
RANDOM=$seed
ukaictl disk create d --size 64M >/dev/null
python3 "$w" write "$m/d" "$work/a.log" --tag a --record $rec --count $count
admin_node=n1  # ukaictl asks the first address of UKAI_ADMIN
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
snaps() { ukaictl --json snap list d | json '" ".join(s["name"] for s in d)'; }
healthy() {
  [[ $(ukaictl --json disk info d | json 'd["stale_replica_blocks"] + d["syncing_blocks"]') == 0 ]]
}
start_writer() {  # start_writer TAG: overwrites the disk at 4 MB/s until $work/stop exists
  rm -f "$work/stop"
  python3 "$w" write "$m/d" "$work/$1.log" --tag "$1" --record $rec --count $count --rate 4 \
    --stop-file "$work/stop" 2> "$work/$1.err" &  # its mount may die under it
  writer=$!
  wait_until 30 test -s "$work/$1.log"
}
stop_writer() { touch "$work/stop"; wait "$writer" || true; }

# 1.
for ((r = 1; r <= rounds; r++)); do
  start_writer "b$r"
  acked=$(wc -l < "$work/b$r.log")
  ukaictl snap create "d@k$r" > /dev/null 2>&1 &
  ctl=$!
  sleep "0.0$((RANDOM % 30))"
  kill -9 "$(node_pid $admin_node)"
  wait "$ctl" && made=yes || made=no
  "$cluster_tool" start-node --dir "$cluster_dir" $admin_node >/dev/null
  stop_writer
  check "round $r: every acknowledged write is on the disk" python3 "$w" check "$m/d" "$work/b$r.log"
  if [[ " $(snaps) " == *" k$r "* ]]; then
    log "round $r: the snapshot was made (ukaictl answered: $made)"
    check "round $r: it holds every write acknowledged before it" \
      python3 "$w" snapcheck "$m/d@k$r" "$work/b$r.log" --acked "$acked" --issued-after $count \
      --record $rec
  else
    log "round $r: no snapshot (ukaictl answered: $made)"
    check_eq "round $r: ukaictl did not say it was made" no "$made"
  fi
done
check "the disk is repaired" wait_until 120 healthy
scrub=$(ukaictl --json scrub d --wait)
check_eq "no replica of any object differs from another" "0 0" \
  "$(json 'd["mismatched_pages"], d["bad_pages"]' <<<"$scrub" | tr -d '(),')"

# 2.
ukaictl snap create d@pre >/dev/null
cp --sparse=always "$m/d@pre" "$work/pre.raw"
start_writer c
sleep 1
kill -9 "$(node_pid fuse)"
log "killed the frontend (kill -9) while it copied blocks on write"
wait "$writer" || true
fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
m=$cluster_dir/mnt2
"$cluster_tool" mount --dir "$cluster_dir" --site site-a "$m" >/dev/null
check "every write acknowledged before the frontend died reads back" python3 "$w" check "$m/d" "$work/c.log"
check "the snapshot reads as it did" cmp -s "$m/d@pre" "$work/pre.raw"
start_writer c2
stop_writer
check "a new mount writes on" python3 "$w" check "$m/d" "$work/c2.log"

# 3.
ukaictl clone d@pre cl >/dev/null 2>&1 &
ctl=$!
sleep "0.0$((RANDOM % 20))"
kill -9 "$(node_pid $admin_node)"
wait "$ctl" && made=yes || made=no
"$cluster_tool" start-node --dir "$cluster_dir" $admin_node >/dev/null
if ukaictl disk info cl >/dev/null 2>&1; then
  check "the clone, made through the crash (ukaictl: $made), reads as its snapshot" cmp -s "$m/cl" "$work/pre.raw"
else
  check_eq "no clone, and ukaictl did not say there was" no "$made"
fi

# 4.
ukaictl backup d@pre "$work/pre.ukb" >/dev/null 2>&1 &
ctl=$!
sleep 0.05
kill -9 "$ctl" 2>/dev/null || true
wait "$ctl" 2>/dev/null || true
check "a backup killed half way leaves no backup file" bash -c "[[ ! -e '$work/pre.ukb' ]] || ukaictl restore '$work/pre.ukb' r0 >/dev/null"
check "a new backup" ukaictl backup d@pre "$work/pre.ukb"
check "restores byte-exact" ukaictl restore "$work/pre.ukb" r1
check "the restored disk is the snapshot" cmp -s "$m/r1" "$work/pre.raw"

# 5.
ukaictl snap rollback d@pre >/dev/null 2>&1 &
ctl=$!
sleep "0.0$((RANDOM % 20))"
kill -9 "$(node_pid $admin_node)"
wait "$ctl" || true
"$cluster_tool" start-node --dir "$cluster_dir" $admin_node >/dev/null
check "the disk is repaired after the crash" wait_until 120 healthy
check "running the rollback again finishes it" ukaictl snap rollback d@pre
check "the disk reads as the snapshot" cmp -s "$m/d" "$work/pre.raw"
check_eq "no rollback is left marked" "" "$(ukaictl --json disk info d | json 'd.get("rolling_back", "")')"

# 6.
ukaictl clone d@pre fl >/dev/null
rm -f "$work/stop"
python3 "$w" write "$m/fl" "$work/f.log" --tag f --record $rec --count $((count / 2)) --rate 2 \
  --stop-file "$work/stop" 2> "$work/f.err" &
writer=$!
job=$(ukaictl flatten fl --bandwidth 4M)
job_field() { ukaictl --json job info "$job" | json "d['$1']"; }
copying() { (($(job_field bytes_done) > 0)); }
check "the flatten is copying" wait_until 30 copying
runner=$(job_field runner) done_then=$(job_field bytes_done)
kill -9 "$(node_pid "$runner")"
log "killed $runner, running flatten $job (kill -9), at $done_then bytes"
"$cluster_tool" start-node --dir "$cluster_dir" "$runner" >/dev/null
check "the flatten finishes after its runner died" ukaictl job wait "$job"
stop_writer
check "every acknowledged write to the clone reads back" python3 "$w" check "$m/fl" "$work/f.log"
written=$((count / 2 * rec))  # the writer's records; the rest is the parent's
check "the rest of the clone reads as the parent's snapshot" \
  cmp -s <(tail -c +$((written + 1)) "$m/fl") <(tail -c +$((written + 1)) "$work/pre.raw")
check_eq "the clone has no parent" None "$(ukaictl --json disk info fl | json 'd.get("parent")')"
ukaictl disk delete cl >/dev/null 2>&1 || true  # the clone of step 3, if made
check "the parent's snapshot can go" ukaictl snap delete d@pre
check "and the clone reads the same after" python3 "$w" check "$m/fl" "$work/f.log"
check "and the rest" \
  cmp -s <(tail -c +$((written + 1)) "$m/fl") <(tail -c +$((written + 1)) "$work/pre.raw")
