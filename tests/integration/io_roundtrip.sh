#!/usr/bin/env bash
# A few hundred MiB of random data through the mount with O_DIRECT, read back
# byte-exact; fio's own verifier on random 4k writes; qemu-io with
# cache=none and both aio modes; thin provisioning of a 1 TiB disk.
source "$(dirname "$0")/../lib.sh"
start_cluster
work=$cluster_dir/work; mkdir -p "$work"

ukaictl disk create vm1 --size 1G >/dev/null
check "disk file appears with its size" test "$(stat -c %s "$UKAI_MOUNT/vm1")" = 1073741824

head -c $((320 << 20)) /dev/urandom > "$work/src"
dd if="$work/src" of="$UKAI_MOUNT/vm1" bs=1M oflag=direct conv=notrunc,fsync status=none
dd if="$UKAI_MOUNT/vm1" of="$work/back" bs=1M count=320 iflag=direct status=none
check "320 MiB written with O_DIRECT reads back byte-exact" cmp -s "$work/src" "$work/back"
# From the far end as well, through a different request size.
dd if="$UKAI_MOUNT/vm1" of="$work/back2" bs=192k skip=0 count=$((320 * 1024 / 192)) iflag=direct status=none
check "reading back with 192 KiB requests matches too" cmp -s "$work/back2" <(head -c $((320 * 1024 / 192 * 192 * 1024)) "$work/src")

check "fio 4k random writes verify (crc32c, iodepth 16)" \
  fio --name=verify --filename="$UKAI_MOUNT/vm1" --rw=randwrite --bs=4k --iodepth=16 \
  --ioengine=libaio --direct=1 --offset=512M --size=64M --verify=crc32c --do_verify=1 \
  --verify_fatal=1 --verify_state_save=0 --output="$work/fio.txt"

for aio in native threads; do
  check "qemu-io cache=none aio=$aio writes and reads a pattern" bash -c "
    qemu-io -f raw --cache=none --aio=$aio \
      -c 'write -P 0x5a 700M 3M' -c 'read -P 0x5a 700M 3M' -c 'write -P 0x11 1000M 512' \
      -c 'read -P 0x11 1000M 512' -c flush '$UKAI_MOUNT/vm1' > '$work/qemu-$aio.txt' 2>&1 &&
    ! grep -qi 'pattern verification failed\|error' '$work/qemu-$aio.txt'"
done

# qemu-img: a qcow2 image converted onto a disk and compared back.
qemu-img create -q -f qcow2 "$work/src.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x33 0 8M' -c 'write -P 0x77 40M 3M' "$work/src.qcow2" >/dev/null
ukaictl disk create img --size 64M >/dev/null
check "qemu-img convert writes a qcow2 image onto a disk" \
  qemu-img convert -n -t none -O raw "$work/src.qcow2" "$UKAI_MOUNT/img"
check "qemu-img compare finds the disk identical to the image" \
  qemu-img compare -q -f qcow2 -F raw -T none "$work/src.qcow2" "$UKAI_MOUNT/img"

ukaictl disk create huge --size 1T >/dev/null
used_before=$(ukaictl --json disk info huge | grep -o '"allocated_bytes": [0-9]*' | grep -o '[0-9]*$')
check_eq "a fresh 1 TiB disk stores nothing" 0 "$used_before"
dd if="$UKAI_MOUNT/huge" of="$work/zeros" bs=1M count=2 skip=$((700 * 1024)) iflag=direct status=none
check "unwritten ranges of a thin disk read as zeros" cmp -s "$work/zeros" <(head -c $((2 << 20)) /dev/zero)
check "a read past 1 TiB - 1 MiB is served" dd if="$UKAI_MOUNT/huge" of=/dev/null bs=1M count=1 \
  skip=$((1024 * 1024 - 1)) iflag=direct status=none
