#!/usr/bin/env bash
# Live migration of a running VM between two "hypervisors" (mounts in site-a
# and site-b) over QMP: `-incoming` on the destination, `migrate` on the
# source, with the guest writing throughout. The guest
# (tests/guest/ring_writer.S) writes a ring of sectors in order and reads each
# write back one write later, so its first read on the destination checks the
# source's last write. Then:
#  - the guest went on writing on the destination, and no read ever failed;
#  - the destination host holds the writer epoch; the source host, still
#    holding the image open for writing (QEMU itself reopens it read-only
#    once migrated, so the test keeps a handle of its own), is fenced: its
#    write fails with EIO and does not land;
#  - the disk holds exactly the last RING writes, in order, up to at least
#    the last one the destination reported.
source "$(dirname "$0")/../lib.sh"
start_cluster
a=$UKAI_MOUNT b=$cluster_dir/mnt-b
"$cluster_tool" mount --dir "$cluster_dir" --site site-b "$b" >/dev/null
work=$cluster_dir/work; mkdir -p "$work"
qmp() { python3 "$top/tests/qmp.py" "$@"; }
src_qemu="" dst_qemu=""
stop_qemus() {
  exec 7>&-  # the source host's handle, if a check failed before it was closed
  for p in $src_qemu $dst_qemu; do kill -TERM "$p" 2>/dev/null; done
  for p in $src_qemu $dst_qemu; do wait "$p" 2>/dev/null; done
  src_qemu="" dst_qemu=""
}
trap 'rc=$?; stop_qemus; (exit "$rc"); finish' EXIT

as --32 -o "$work/ring_writer.o" "$top/tests/guest/ring_writer.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$work/ring_writer.bin" "$work/ring_writer.o"
ukaictl disk create vm --size 1M >/dev/null
dd if="$work/ring_writer.bin" of="$a/vm" conv=notrunc,fsync status=none

# The same machine on both sides; each side its own mount of the disk.
run_qemu() {  # run_qemu NAME MOUNT [QEMU ARGS...]: starts QEMU in the background
  local name=$1 mnt=$2; shift 2
  : > "$work/$name.serial"
  qemu-system-x86_64 -accel tcg -m 32 -display none -monitor none -no-reboot \
    -drive "file=$mnt/vm,format=raw,cache=none,aio=threads,if=ide" \
    -serial "file:$work/$name.serial" -qmp "unix:$work/$name.qmp,server=on,wait=off" "$@" \
    2> "$work/$name.err" &
}
writes() { grep -c '^W' "$work/$1.serial" || true; }  # progress lines (one per 64 writes)
last_write() { grep '^W' "$work/$1.serial" | tail -1 | cut -c2-; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

run_qemu src "$a"; src_qemu=$!
exec 7<>"$a/vm"  # the source host keeps the disk open for writing throughout
src_writes() { test "$(writes src)" -ge 3; }
check "the guest boots from the disk and writes on the source" wait_until 60 src_writes
run_qemu dst "$b" -incoming "tcp:127.0.0.1:$port"; dst_qemu=$!
wait_until 20 test -S "$work/dst.qmp" || true
at_start=$(last_write src)
check "the source accepts the migration" qmp "$work/src.qmp" migrate "{\"uri\": \"tcp:127.0.0.1:$port\"}" >/dev/null
migrated() { qmp "$work/src.qmp" query-migrate | grep -q '"status": "completed"'; }
check "the migration completes" wait_until 120 migrated
handed_over=$(last_write src)
log "source progress: 0x${at_start:-0} when migrate began, 0x${handed_over:-0} at the hand-over"
dst_writes() { test "$(writes dst)" -ge 3; }
check "the guest goes on writing on the destination" wait_until 60 dst_writes
check "the destination VM is running" bash -c "python3 '$top/tests/qmp.py' '$work/dst.qmp' query-status | grep -q '\"running\"'"
check "no guest read ever mismatched or failed (source)" bash -c "! grep -qE 'BAD|ERR' '$work/src.serial'"
check "no guest read ever mismatched or failed (destination)" bash -c "! grep -qE 'BAD|ERR' '$work/dst.serial'"

writer=$(ukaictl --json disk info vm | python3 -c 'import json, sys; w = json.load(sys.stdin)["writer"]; print(w["host"], w["site"])')
log "writer epoch held by: $writer"
check "the destination holds the writer epoch" grep -q "site-b" <<<"$writer"
err=$(dd if=/dev/urandom of="$a/vm" bs=4096 seek=200 count=1 oflag=direct conv=notrunc 2>&1) && rc=0 || rc=$?
exec 7>&-
check "a write through the source's mount after the hand-over fails" test "$rc" -ne 0
check "with EIO ($err)" grep -q "Input/output error" <<<"$err"

check "the destination's QEMU quits cleanly" qmp "$work/dst.qmp" quit >/dev/null
wait "$dst_qemu" 2>/dev/null; dst_qemu=""
last=$(last_write dst)
log "destination progress: 0x${last:-0} when it quit"
check "the fenced write did not land" cmp -s <(dd if="$b/vm" bs=4096 skip=200 count=1 status=none) \
  <(head -c 4096 /dev/zero)
check "the disk holds the last 1024 writes in order, up to the destination's last report" \
  python3 - "$b/vm" "${last:-0}" <<'PY'
import struct, sys
BASE, RING = 8, 1024
data = open(sys.argv[1], "rb").read()
reported = int(sys.argv[2], 16)
slots = []
for s in range(RING):
    sector = data[(BASE + s) * 512:(BASE + s + 1) * 512]
    vals = set(struct.unpack("<128I", sector))
    if len(vals) != 1:
        sys.exit(f"slot {s}: a torn sector {sorted(vals)[:4]}")
    slots.append(vals.pop())
top = max(slots)
if top < reported:
    sys.exit(f"the newest write on disk is {top:#x}, but the guest reported {reported:#x}")
for j in range(max(1, top - RING + 1), top + 1):
    if slots[j % RING] != j:
        sys.exit(f"slot {j % RING} holds {slots[j % RING]:#x}, not write {j:#x}")
print(f"writes up to {top:#x} all in place")
PY
