#!/usr/bin/env bash
# Deleting a disk that a host has open for writing is refused unless forced;
# a deleted disk's space is reclaimed on every node.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster

ukaictl disk create busy --size 64M >/dev/null
dd if=/dev/urandom of="$UKAI_MOUNT/busy" bs=1M count=16 oflag=direct conv=notrunc,fsync status=none
check "writes are stored on two nodes" bash -c \
  "[[ \$(ukaictl --json disk info busy | grep -o '\"allocated_bytes\": [0-9]*' | grep -o '[0-9]*$') == $((32 << 20)) ]]"

exec 7<>"$UKAI_MOUNT/busy"  # held open for writing, like a running VM
check "disk info shows who has it open" bash -c "ukaictl disk info busy | grep -q '^open by:'"
check_error "delete while open for writing" "open for writing" ukaictl disk delete busy
check "the refused delete left the disk" test -f "$UKAI_MOUNT/busy"
exec 7>&-
check "after close the open record is gone" wait_until 5 bash -c "! ukaictl disk info busy | grep -q '^open by:'"
check "delete succeeds once closed" ukaictl disk delete busy
check "the file is gone" wait_until 1 test ! -e "$UKAI_MOUNT/busy"

ukaictl disk create busy2 --size 64M >/dev/null
dd if=/dev/urandom of="$UKAI_MOUNT/busy2" bs=1M count=8 oflag=direct conv=notrunc,fsync status=none
exec 7<>"$UKAI_MOUNT/busy2"
check "before the delete, reads and writes through the open handle work" bash -c \
  "dd of=/dev/null bs=4k count=1 status=none <&7 && dd if=/dev/zero bs=4k count=1 status=none >&7"
check "--force deletes a disk that is open" ukaictl disk delete busy2 --force
# The handle opened before the delete (fd 7) must stop working, for reads and
# writes; dd uses it as stdin/stdout, so nothing is opened anew by path.
check "a read through the deleted disk's open handle fails" bash -c \
  "! dd of=/dev/null bs=4k count=1 status=none <&7 2>/dev/null"
check "a write through it fails too" bash -c \
  "! dd if=/dev/zero bs=4k count=1 status=none >&7 2>/dev/null"
check "the name does not come back through a write by path" bash -c \
  "! dd if=/dev/zero of='$UKAI_MOUNT/busy2' bs=4k count=1 conv=notrunc status=none 2>/dev/null && ! test -e '$UKAI_MOUNT/busy2'"
exec 7>&-
used=$(ukaictl --json node list | grep -o '"used_bytes": [0-9]*' | grep -o '[0-9]*$' | awk '{s += $1} END {print s + 0}')
check_eq "every node reclaimed the deleted disks' space" 0 "$used"
