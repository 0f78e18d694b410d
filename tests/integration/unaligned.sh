#!/usr/bin/env bash
# Unaligned and cross-block reads and writes (64 KiB blocks, so most long
# requests cross a block edge), checked against a model; then the content is
# read again through a second mount in the other site.
source "$(dirname "$0")/../lib.sh"
start_cluster

size=$((24 << 20))
ukaictl disk create small --size $size --block-size 64K >/dev/null
check "random unaligned reads and writes match the model" \
  python3 "$top/tests/rw_model.py" "$UKAI_MOUNT/small" $size --ops 1500
sha_a=$(sha256sum < "$UKAI_MOUNT/small")

second=$cluster_dir/mnt-b
"$cluster_tool" mount --dir "$cluster_dir" --site site-b "$second" >/dev/null
check_eq "a second mount in another site reads the same bytes" "$sha_a" "$(sha256sum < "$second/small")"

check "a write crossing two blocks, 1 byte on each side" bash -c "
  printf 'XY' | dd of='$UKAI_MOUNT/small' bs=1 seek=$((65536 - 1)) conv=notrunc status=none &&
  [[ \$(dd if='$second/small' bs=1 skip=$((65536 - 1)) count=2 status=none) == XY ]]"
check "writing past the end fails with ENOSPC" bash -c "
  ! dd if=/dev/zero of='$UKAI_MOUNT/small' bs=4096 count=1 seek=$((size / 4096)) conv=notrunc status=none 2>'$cluster_dir/enospc.txt' &&
  grep -q 'No space left' '$cluster_dir/enospc.txt'"
check "a short write at the end writes only what fits" bash -c "
  head -c 8192 /dev/urandom > '$cluster_dir/tail.bin' &&
  dd if='$cluster_dir/tail.bin' of='$UKAI_MOUNT/small' bs=8192 count=1 seek=$((size - 4096)) oflag=seek_bytes conv=notrunc status=none 2>/dev/null;
  cmp -s <(tail -c 4096 '$UKAI_MOUNT/small') <(head -c 4096 '$cluster_dir/tail.bin')"
check_eq "the file size never changes" $size "$(stat -c %s "$UKAI_MOUNT/small")"
