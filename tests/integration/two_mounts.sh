#!/usr/bin/env bash
# Two "hypervisors" (mounts in two sites) of one cluster: each sees the
# other's writes after a flush, disks created or deleted appear and vanish on
# both within a second with no remount, and an online resize shows on both.
source "$(dirname "$0")/../lib.sh"
start_cluster
a=$UKAI_MOUNT b=$cluster_dir/mnt-b
"$cluster_tool" mount --dir "$cluster_dir" --site site-b "$b" >/dev/null
work=$cluster_dir/work; mkdir -p "$work"

ukaictl disk create shared --size 256M >/dev/null
check "a new disk appears on the second mount within a second" wait_until 1 test -f "$b/shared"
check "and on the first" wait_until 1 test -f "$a/shared"

head -c $((16 << 20)) /dev/urandom > "$work/x"
dd if="$work/x" of="$a/shared" bs=1M oflag=direct conv=notrunc,fsync status=none
check "B reads what A wrote and flushed" cmp -s "$work/x" <(head -c $((16 << 20)) "$b/shared")

head -c $((8 << 20)) /dev/urandom > "$work/y"
dd if="$work/y" of="$b/shared" bs=1M seek=4 oflag=direct conv=notrunc,fsync status=none
check "A reads what B wrote over it" cmp -s "$work/y" <(dd if="$a/shared" bs=1M skip=4 count=8 iflag=direct status=none)
check "A still reads its own bytes around B's" cmp -s <(head -c $((4 << 20)) "$work/x") <(head -c $((4 << 20)) "$a/shared")

# Hand-over back to A after B closed: A writes again (a new writer epoch).
head -c $((1 << 20)) /dev/urandom > "$work/z"
dd if="$work/z" of="$a/shared" bs=1M seek=20 oflag=direct conv=notrunc,fsync status=none
check "B sees A's write after the hand-back" cmp -s "$work/z" <(dd if="$b/shared" bs=1M skip=20 count=1 iflag=direct status=none)
check "the writer epoch moved on at each hand-over" bash -c \
  "ukaictl --json disk info shared | grep -A1 '\"writer\"' | grep -q '\"epoch\": 3'"

ukaictl disk resize shared --size 512M >/dev/null
size_is() { [[ $(stat -c %s "$1") == "$2" ]]; }
check "an online resize shows on mount A within a second" wait_until 1 size_is "$a/shared" $((512 << 20))
check "and on mount B" wait_until 1 size_is "$b/shared" $((512 << 20))
check "the grown tail is writable" dd if="$work/z" of="$b/shared" bs=1M seek=500 oflag=direct conv=notrunc,fsync status=none

ukaictl disk delete shared >/dev/null
check "a deleted disk vanishes from mount A within a second" wait_until 1 test ! -e "$a/shared"
check "and from mount B" wait_until 1 test ! -e "$b/shared"
check "its name is free again" ukaictl disk create shared --size 1M
check "the new disk reads as zeros, not the old data" cmp -s <(head -c 1M "$a/shared") <(head -c 1M /dev/zero)
