#!/usr/bin/env bash
# Per-disk failure policy through the mount, with a replica node stopped
# (SIGSTOP) for longer than the frontend's RPC deadline (5 s):
#  - wait: a write is held until the node answers again, then acknowledged
#    with no replica stale;
#  - wait with a short hold: the write fails with EIO once the hold is up, the
#    replica that missed it is marked stale, and a repair brings it back;
#  - degrade (the default): the write goes on without the stopped node, which
#    is marked stale first.
# And `ukaictl disk policy` refuses what cannot work, in one line.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster
work=$cluster_dir/work; mkdir -p "$work"
head -c $((1 << 20)) /dev/urandom > "$work/a"
head -c $((1 << 20)) /dev/urandom > "$work/b"
n2=$(node_pid n2)
resume_n2() { kill -CONT "$n2" 2>/dev/null || true; }
trap 'rc=$?; resume_n2; (exit "$rc"); finish' EXIT  # never leave n2 stopped

stale_blocks() {  # stale_blocks DISK
  ukaictl --json disk info "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["stale_replica_blocks"])'
}
write_mb() {  # write_mb DISK FILE SEEK_MB: 1 MiB, direct, then fsync
  dd if="$2" of="$UKAI_MOUNT/$1" bs=1M seek="$3" count=1 oflag=direct conv=notrunc,fsync status=none
}

# wait, hold 60 s: held while n2 is stopped, acknowledged once it is back.
ukaictl disk create hold --size 64M --nodes n1,n2 --on-replica-failure wait --hold 60s >/dev/null
check "disk info shows the policy" bash -c \
  "ukaictl disk info hold | grep -q 'on failure:  wait for all 2 replicas; I/O short of them is held 1m, then EIO'"
write_mb hold "$work/a" 0
kill -STOP "$n2"
write_mb hold "$work/b" 1 & writer=$!
sleep 8  # past the 5 s RPC deadline
check "with n2 stopped, the write is held (not acknowledged, not failed)" kill -0 "$writer"
resume_n2
check "once n2 answers again it is acknowledged" wait "$writer"
check_eq "and no replica was marked stale" 0 "$(stale_blocks hold)"
check "both megabytes read back" cmp -s <(cat "$work/a" "$work/b") <(head -c $((2 << 20)) "$UKAI_MOUNT/hold")

# wait, hold 2 s: EIO after the hold; n2 marked stale; a repair catches it up.
ukaictl disk policy hold --hold 2s >/dev/null
kill -STOP "$n2"
start=$(date +%s)
err=$(write_mb hold "$work/b" 2 2>&1) && rc=0 || rc=$?
took=$(($(date +%s) - start))
resume_n2
check "past a 2 s hold the write fails" test "$rc" -ne 0
check "with EIO ($err)" grep -q "Input/output error" <<<"$err"
# A hold shorter than the 5 s RPC deadline: the first try waits that out, after
# the new writer's epoch went to every node (another 5 s for the stopped one).
check "after the hold, not at once, and not much later (${took} s)" test "$took" -ge 2 -a "$took" -le 15
check "n2 was marked stale for what it missed" test "$(stale_blocks hold)" -gt 0
none_stale() { [[ $(stale_blocks "$1") == 0 ]]; }
check "a repair brings n2 back within 60 s" wait_until 60 none_stale hold

# degrade (the default): the write goes on without n2.
ukaictl disk create deg --size 64M --nodes n1,n2 >/dev/null
check "degrade is the default" bash -c "ukaictl --json disk info deg | grep -q '\"on_replica_failure\": \"degrade\"'"
kill -STOP "$n2"
check "with n2 stopped, a degrade disk's write is acknowledged" write_mb deg "$work/a" 0
resume_n2
check "and n2 is stale for it" test "$(stale_blocks deg)" -gt 0
check "it reads back" cmp -s "$work/a" <(head -c $((1 << 20)) "$UKAI_MOUNT/deg")

check_error "min replicas above the replica count is refused" "more than the disk's 2 replicas" \
  ukaictl disk policy deg --min-replicas 3
check_error "min replicas with wait is refused" "applies to on-replica-failure degrade" \
  ukaictl disk policy deg --on-replica-failure wait --min-replicas 1
check_error "a hold over an hour is refused" "not a duration between" ukaictl disk policy deg --hold 2h
want_rc=2 check_error "an unknown mode is a usage error" "degrade|wait" \
  ukaictl disk policy deg --on-replica-failure maybe
check_error "an unknown disk is refused" "no disk named 'nosuch'" ukaictl disk policy nosuch --hold 1s
check "a refused change left the policy as it was" bash -c \
  "ukaictl --json disk info deg | grep -q '\"hold_ms\": 30000'"
