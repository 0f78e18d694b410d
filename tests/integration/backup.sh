#!/usr/bin/env bash
# Online backup and leaving UKAI, through ukaictl alone (no mount on the
# backup side):
#  - a full backup and two incrementals of a disk written between snapshots
#    restore, in order, into a new disk whose every byte (sha256) equals the
#    source at the last snapshot; the incrementals hold only changed blocks;
#  - a backup taken while a writer keeps writing holds the snapshot exactly;
#  - restoring an incremental onto the wrong base, a truncated file or a file
#    with one flipped byte fails with one clear line and leaves the target
#    as it was;
#  - export writes a sparse raw image of a disk or snapshot; import makes a
#    thin disk of one (zero blocks not stored), byte-exact.
# labels: slow
source "$(dirname "$0")/../lib.sh"
start_cluster
m=$UKAI_MOUNT
work=$cluster_dir/work; mkdir -p "$work"
w=$top/tests/ack_writer.py
sha() { sha256sum "$1" | cut -d' ' -f1; }
stored() { ukaictl --json disk info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated_bytes"])'; }
ukaictl disk create src --size 256M >/dev/null

# Day 0: 40 MiB of data here and there; full backup.
for at in 0 17 60 130 200; do
  head -c 8388608 /dev/urandom | dd of="$m/src" bs=1M seek=$at conv=notrunc,fsync oflag=direct status=none
done
ukaictl snap create src@d0 >/dev/null
cp --sparse=always "$m/src@d0" "$work/d0.raw"
check "full backup" ukaictl backup src@d0 "$work/d0.ukb"
# Day 1: rewrite a bit, zero a block that had data, write a new region.
head -c 1048576 /dev/urandom | dd of="$m/src" bs=1M seek=3 conv=notrunc,fsync oflag=direct status=none
dd if=/dev/zero of="$m/src" bs=4M seek=5 count=1 conv=notrunc,fsync oflag=direct status=none
head -c 4194304 /dev/urandom | dd of="$m/src" bs=1M seek=240 conv=notrunc,fsync oflag=direct status=none
ukaictl snap create src@d1 >/dev/null
check "first incremental" ukaictl backup src@d1 "$work/d1.ukb" --since d0
# Day 2: taken while a writer keeps writing.
python3 "$w" write "$m/src" "$work/w.log" --start $((100 << 20)) --record 65536 --count 512 --rate 4 &
writer=$!
wait_until 30 test -s "$work/w.log"
ukaictl snap create src@d2 >/dev/null
cp --sparse=always "$m/src@d2" "$work/d2.raw"
check "second incremental, while the disk is written" ukaictl --json backup src@d2 "$work/d2.ukb" --since d1
check "the writer finishes" wait "$writer"
check "the writer's acknowledged writes are all on the disk" python3 "$w" check "$m/src" "$work/w.log"

full=$(stat -c %s "$work/d0.ukb") inc1=$(stat -c %s "$work/d1.ukb") inc2=$(stat -c %s "$work/d2.ukb")
log "backup sizes: full $full, incrementals $inc1 and $inc2 bytes"
check "the full backup holds the 12 blocks written, not the 256 MiB disk" test "$full" -lt $((52 << 20))
check "the first incremental holds its three changed blocks only" test "$inc1" -lt $((13 << 20))

check "restore the full backup" ukaictl restore "$work/d0.ukb" dst
check_eq "it is byte-exact" "$(sha "$work/d0.raw")" "$(sha "$m/dst")"
check_error "an incremental out of order is refused" "restore the backups of the chain in order" \
  ukaictl restore "$work/d2.ukb" dst
check_eq "and changes nothing" "$(sha "$work/d0.raw")" "$(sha "$m/dst")"
check "restore the first incremental" ukaictl restore "$work/d1.ukb" dst
check "restore the second" ukaictl restore "$work/d2.ukb" dst
check_eq "the chain restores byte-exact (sha256 of the whole disk)" "$(sha "$work/d2.raw")" "$(sha "$m/dst")"
check_eq "the restored disk names its snapshots as the source's" "d0 d1 d2" \
  "$(ukaictl --json snap list dst | python3 -c 'import json,sys; print(*[s["name"] for s in json.load(sys.stdin)])')"

# Damaged files change nothing.
before=$(sha "$m/dst")
head -c $(($(stat -c %s "$work/d1.ukb") - 1000)) "$work/d1.ukb" > "$work/short.ukb"
check_error "a truncated backup is refused" "truncated" ukaictl restore "$work/short.ukb" new1
check "and no disk was made" bash -c "! ukaictl disk info new1 >/dev/null 2>&1"
cp "$work/d0.ukb" "$work/flip.ukb"
printf '\xff' | dd of="$work/flip.ukb" bs=1 seek=$((full / 2)) conv=notrunc status=none
check_error "a corrupted backup is refused" "fails its checksum|not a valid UKAI backup" \
  ukaictl restore "$work/flip.ukb" new2
check "and no disk was made" bash -c "! ukaictl disk info new2 >/dev/null 2>&1"
check_error "a full backup does not overwrite a disk" "exists" ukaictl restore "$work/d0.ukb" dst
check_error "a file that is no backup" "not a valid UKAI backup" ukaictl restore "$work/d0.raw" new3
check_error "a missing file" "cannot open" ukaictl restore "$work/nope.ukb" new4
check_error "an unknown snapshot" "no snapshot 'nope'" ukaictl backup src@nope "$work/x.ukb"
check_error "--since a newer snapshot" "not older" ukaictl backup src@d1 "$work/x.ukb" --since d2
check_eq "the target is as it was" "$before" "$(sha "$m/dst")"

# Files are made private and new; an absurd header costs nothing.
check_eq "a backup file is private" 600 "$(stat -c %a "$work/d0.ukb")"
: > "$work/stale.ukb.tmp"
check_error "a file left at FILE.tmp is not overwritten" "already exists" \
  ukaictl backup src@d0 "$work/stale.ukb"
ln -s "$work/victim" "$work/link.ukb.tmp"
check_error "nor is a symbolic link there followed" "already exists" \
  ukaictl backup src@d0 "$work/link.ukb"
check "and its target was not created" test ! -e "$work/victim"
# d0.ukb with its header's block size set to 2^32-1 (checksum made right).
python3 - "$work/d0.ukb" "$work/huge.ukb" <<'PY'
import struct, sys
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF
def varint(v):
    out = b""
    while True:
        out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
        v >>= 7
        if not v: return out
d = open(sys.argv[1], "rb").read()
hlen = struct.unpack_from("<I", d, 8)[0]
rest = d[12 + hlen + 4:]
header = d[12:12 + hlen] + b"\x38" + varint(0xFFFFFFFF)  # field 7, last one wins
open(sys.argv[2], "wb").write(d[:8] + struct.pack("<I", len(header)) + header +
                              struct.pack("<I", crc32c(header)) + rest)
PY
check_error "a header with absurd geometry is refused, under a 1 GiB address-space limit" \
  "impossible geometry" bash -c "ulimit -v 1048576; exec ukaictl restore '$work/huge.ukb' new5"
check "and no disk was made" bash -c "! ukaictl disk info new5 >/dev/null 2>&1"

# Leaving UKAI and coming back.
check "export a snapshot" ukaictl export src@d2 "$work/out.raw"
check_eq "the image is the snapshot" "$(sha "$work/d2.raw")" "$(sha "$work/out.raw")"
check "and is sparse" test "$(du -k "$work/out.raw" | cut -f1)" -lt $((80 << 10))
check "import it" ukaictl import "$work/out.raw" back
check_eq "byte-exact" "$(sha "$work/out.raw")" "$(sha "$m/back")"
log "stored: source snapshot image $(du -k "$work/out.raw" | cut -f1) KiB on disk; imported disk $(stored back) bytes over 2 replicas"
check "zero blocks were not stored" test "$(stored back)" -lt $((2 * (80 << 20)))
check_error "import of an odd-sized file" "multiple of 512" bash -c "head -c 1000 /dev/zero > '$work/odd.raw'; ukaictl import '$work/odd.raw' odd"
check_error "import onto a taken name" "already exists" ukaictl import "$work/out.raw" back
