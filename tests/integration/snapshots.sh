#!/usr/bin/env bash
# Snapshots and clones through a real cluster and mount:
#  - a snapshot taken while a writer overwrites the disk through the mount
#    holds every write acknowledged before `snap create` began and none sent
#    after it returned (checked against the writer's log), and shows under
#    the mount as the read-only file d@s1 (qemu-img reads it);
#  - a clone reads as the snapshot, is writable at once, and clone and parent
#    never see each other's writes;
#  - rollback is refused while the disk is open for writing; afterwards the
#    disk reads as the snapshot and the snapshot is unchanged;
#  - the snapshot cannot go while the clone depends on it; a flatten, run
#    while the clone is written, keeps every byte and acknowledged write of
#    the clone and ends the dependency; deleting the snapshots gives the
#    space only they held back on the nodes;
#  - bad input gets one clear line and a non-zero exit.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster
m=$UKAI_MOUNT
w=$top/tests/ack_writer.py
work=$cluster_dir/work; mkdir -p "$work"
rec=262144 count=128  # 32 MiB: eight 4 MiB blocks, each overwritten record by record
ukaictl disk create d --size 64M --replicas 2 >/dev/null

python3 "$w" write "$m/d" "$work/a.log" --tag a --record $rec --count $count --flush-every 4
check "the first pass is all there" python3 "$w" check "$m/d" "$work/a.log"

# Second pass over the same bytes, paced, with the snapshot in the middle.
python3 "$w" write "$m/d" "$work/b.log" --tag b --record $rec --count $count --flush-every 4 \
  --rate 4 &
writer=$!
wait_until 30 test -s "$work/b.log"
sleep 1
acked=$(wc -l < "$work/b.log")
t0=$(date +%s%N)
check "snap create while the disk is written" ukaictl snap create d@s1
t1=$(date +%s%N)
last=$(tail -1 "$work/b.log" | cut -d' ' -f2)
# Up to --flush-every records written but not yet acknowledged, and one being
# written: all sent before the snapshot returned.
issued_after=$((last + 4 + 1))
log "snap create took $(((t1 - t0) / 1000000)) ms; $acked records acknowledged before it, record $last the last at its end"
check "the writer finishes" wait "$writer"
check "every acknowledged write is on the disk" python3 "$w" check "$m/d" "$work/b.log"
check "the writer wrote past the snapshot" test "$(tail -1 "$work/b.log" | cut -d' ' -f2)" -gt "$issued_after"
check_eq "the snapshot shows under the mount, read-only" 400 "$(stat -c %a "$m/d@s1")"
check "it holds what was acknowledged before it and nothing sent after" \
  python3 "$w" snapcheck "$m/d@s1" "$work/b.log" --acked "$acked" --issued-after "$issued_after" \
  --old-tag a --record $rec
check_error "writing to it is refused" "read-only" \
  dd if=/dev/zero of="$m/d@s1" bs=4096 count=1 conv=notrunc status=none
check "qemu-img copies it out" qemu-img convert -f raw -O raw "$m/d@s1" "$work/s1.raw"
check "the copy is the snapshot" cmp -s "$work/s1.raw" "$m/d@s1"

list=$(ukaictl --json snap list d)
check_eq "snap list names it" "s1" "$(python3 -c 'import json,sys; print(",".join(s["name"] for s in json.load(sys.stdin)))' <<<"$list")"

# A clone: the snapshot's bytes at once, then its own life.
t0=$(date +%s%N)
check "clone" ukaictl clone d@s1 c1
t1=$(date +%s%N)
log "clone took $(((t1 - t0) / 1000000)) ms"
check "the clone reads as the snapshot" cmp -s "$m/c1" "$work/s1.raw"
head -c 1048576 /dev/urandom > "$work/mine"
dd if="$work/mine" of="$m/c1" bs=1M seek=3 conv=notrunc,fsync oflag=direct status=none
check "the clone holds its own write" cmp -s <(dd if="$m/c1" bs=1M skip=3 count=1 status=none) "$work/mine"
check "its parent does not see it" cmp -s <(dd if="$m/d" bs=1M skip=3 count=1 status=none) \
  <(python3 -c "import sys; sys.path.insert(0, '$top/tests'); import ack_writer as a; \
sys.stdout.buffer.write(b''.join(a.record_bytes('b', i, $rec) for i in range(12, 16)))")
check "nor does the snapshot" cmp -s <(dd if="$m/d@s1" bs=1M skip=3 count=1 status=none) \
  <(dd if="$work/s1.raw" bs=1M skip=3 count=1 status=none)
dd if=/dev/zero of="$m/d" bs=1M seek=5 count=1 conv=notrunc,fsync oflag=direct status=none
check "the clone does not see its parent's later writes" \
  cmp -s <(dd if="$m/c1" bs=1M skip=5 count=1 status=none) <(dd if="$work/s1.raw" bs=1M skip=5 count=1 status=none)

# Rollback: refused while a host has the disk open for writing, then done.
exec 7<>"$m/d"
check_error "rollback is refused while the disk is open for writing" "open for writing" \
  ukaictl snap rollback d@s1
exec 7>&-
wait_until 10 bash -c "ukaictl --json disk info d | python3 -c 'import json,sys; sys.exit(1 if json.load(sys.stdin)[\"open_for_writing_by\"] else 0)'"
check "snap rollback" ukaictl snap rollback d@s1
check "the disk reads as the snapshot again" cmp -s "$m/d" "$work/s1.raw"
check "the snapshot itself is unchanged" cmp -s "$m/d@s1" "$work/s1.raw"
dd if=/dev/urandom of="$m/d" bs=1M seek=2 count=1 conv=notrunc,fsync oflag=direct status=none
check "the disk is writable after it" bash -c "! cmp -s '$m/d' '$work/s1.raw'"
check "and the snapshot still holds" cmp -s "$m/d@s1" "$work/s1.raw"

check_error "the snapshot cannot go while the clone depends on it" "clones \(c1\)" ukaictl snap delete d@s1
check_error "nor can the disk" "snapshot" ukaictl disk delete d
# Flatten while the clone is written: it ends with every byte the clone read
# and every write it acknowledged, and no parent.
python3 "$w" write "$m/c1" "$work/c.log" --tag c --record 65536 --count 256 --start $((40 << 20)) \
  --rate 2 &
cw=$!
wait_until 30 test -s "$work/c.log"
check "flatten, while the clone is written" ukaictl flatten c1 --wait
check "the clone's writer finishes" wait "$cw"
check "every write acknowledged on the clone reads back" python3 "$w" check "$m/c1" "$work/c.log"
check_eq "the clone has no parent any more" "None" "$(ukaictl --json disk info c1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["parent"])')"
check_eq "the snapshot has no clones any more" "" "$(ukaictl --json snap list d | python3 -c 'import json,sys; print(*[c for s in json.load(sys.stdin) for c in s["clones"]])')"
check "the clone reads the snapshot where it never wrote" \
  cmp -s <(dd if="$m/c1" bs=1M count=3 status=none) <(dd if="$work/s1.raw" bs=1M count=3 status=none)
check "and beyond its own writes too" \
  cmp -s <(dd if="$m/c1" bs=1M skip=4 count=36 status=none) <(dd if="$work/s1.raw" bs=1M skip=4 count=36 status=none)
check "and its own write" cmp -s <(dd if="$m/c1" bs=1M skip=3 count=1 status=none) "$work/mine"
check_error "flatten of a disk that is no clone" "not a clone" ukaictl flatten c1
check "the clone can be deleted" ukaictl disk delete c1

# Space: a second snapshot, a rewrite of two blocks (copied on write), then
# deleting both snapshots gives back what only they held.
stored() { ukaictl --json disk info d | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated_bytes"])'; }
check "snap create d@s2" ukaictl snap create d@s2
dd if=/dev/urandom of="$m/d" bs=4M count=2 conv=notrunc,fsync oflag=direct status=none
with_snaps=$(stored)
check "snap delete d@s1" ukaictl snap delete d@s1
check "snap delete d@s2" ukaictl snap delete d@s2
without=$(stored)
log "stored over both replicas: $with_snaps bytes with the snapshots, $without after"
check "deleting the snapshots gave space back" test "$without" -lt "$with_snaps"
check "no snapshot is left" test -z "$(ukaictl --json snap list d | python3 -c 'import json,sys; print(*[s["name"] for s in json.load(sys.stdin)])')"
check "the snapshot's file is gone from the mount" wait_until 10 test ! -e "$m/d@s1"

check_error "a snapshot name needs a disk" "invalid disk name" ukaictl snap create @x
check_error "snap create needs @" "names no snapshot" ukaictl snap create d
check_error "bad snapshot names are refused" "invalid snapshot name" ukaictl snap create 'd@a/b'
check "snap create d@dup" ukaictl snap create d@dup
check_error "duplicate snapshot names are refused" "already has a snapshot 'dup'" ukaictl snap create d@dup
check_error "unknown disks are named" "no disk named 'nope'" ukaictl snap create nope@x
check_error "unknown snapshots are named" "no snapshot 'nope'" ukaictl snap delete d@nope
check_error "clone of an unknown snapshot" "no snapshot 'nope'" ukaictl clone d@nope c2
check_error "clone onto a taken name" "already exists" ukaictl clone d@dup d
check "snap delete d@dup" ukaictl snap delete d@dup
