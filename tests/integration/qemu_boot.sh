#!/usr/bin/env bash
# QEMU itself on a UKAI disk: SeaBIOS boots a boot sector from the disk file
# (reads through QEMU's block layer with cache=none) and the boot code writes a
# sector back through int 13h; with aio=native and aio=threads, IDE and virtio.
source "$(dirname "$0")/../lib.sh"
start_cluster

boot() {  # boot NAME INTERFACE AIO: the guest must print its message
  local name=$1 iface=$2 aio=$3 out=$cluster_dir/$1.serial
  ukaictl disk create "$name" --size 1M >/dev/null
  python3 "$top/tests/boot_sector.py" "$UKAI_MOUNT/$name" "UKAI-BOOT-$name"
  : > "$out"
  timeout 60 qemu-system-x86_64 -accel tcg -m 32 -display none -monitor none -no-reboot \
    -drive "file=$UKAI_MOUNT/$name,format=raw,cache=none,aio=$aio,if=$iface" \
    -serial "file:$out" &
  local qemu=$!
  wait_until 50 grep -q "UKAI-BOOT-$name" "$out" || true
  kill -TERM "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null || true
  check "QEMU ($iface, cache=none, aio=$aio) booted from the disk" grep -q "UKAI-BOOT-$name" "$out"
  check "the guest's int 13h write landed on the disk" \
    cmp -s <(dd if="$UKAI_MOUNT/$name" bs=512 count=1 status=none) \
           <(dd if="$UKAI_MOUNT/$name" bs=512 skip=1 count=1 status=none)
}
boot ide-native ide native
boot ide-threads ide threads
boot virtio-native virtio native
