#!/usr/bin/env bash
# The snapshot benchmark. Writes bench/SNAPSHOTS.md with:
#  1. snapshot and clone latency (Admin API, as a cloud controller calls it;
#     bench/snap_bench.cc) on 1 GiB, 100 GiB and 1 TiB thin disks, each with
#     4 KiB written in every 16th block (so the block table spans the whole
#     disk) and the 1 TiB one with --data more written at its start: the
#     ratio to the 1 GiB disk says whether it is flat in disk size. Beside
#     it, as CLI commands with process start-up: `ukaictl snap create` and
#     `qemu-img snapshot -c` on a qcow2 image of the same size and pattern;
#  2. the copy-on-write cost: fio 4k random writes (iodepth 16) on a fully
#     written --cow-disk disk, before a snapshot, in the --cow-secs right
#     after it, and once more after that; as ratios to "before";
#  3. full and incremental backup throughput (`ukaictl backup`, no mount) of
#     a --backup-size disk, against `cp` + fsync of a local file of the same
#     bytes, run side by side;
#  4. 4k random read IOPS through clone chains 1 and 16 deep, against the
#     disk they descend from.
#
#   bench/snapshots.sh [--count 20] [--data 10G] [--cow-disk 4G] [--cow-secs 10]
#                      [--backup-size 2G] [--dir /var/tmp/ukai-bench-snapshots]
#                      [--out bench/SNAPSHOTS.md]
#
# Needs root (FUSE). Stops everything it started.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
count=20 data=10G cow_disk=4G cow_secs=10 backup_size=2G
dir=/var/tmp/ukai-bench-snapshots out=$top/bench/SNAPSHOTS.md
while (($#)); do
  case $1 in
    --count) count=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --cow-disk) cow_disk=$2; shift 2 ;;
    --cow-secs) cow_secs=$2; shift 2 ;;
    --backup-size) backup_size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "snapshots.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

UKAI_EXTRA_PACKAGES="fio python3 qemu-utils ${UKAI_EXTRA_PACKAGES:-}" "$top/deploy/build.sh"
bin=$top/build/bin
export PATH=$bin:$PATH
cluster=$dir/cluster
cleanup() {
  set +e
  "$top/deploy/local-cluster.sh" stop --dir "$cluster" >/dev/null 2>&1
  rm -f "$dir"/*.qcow2 "$dir"/*.ukb "$dir"/local-*
}
trap cleanup EXIT
"$top/deploy/local-cluster.sh" stop --dir "$cluster" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/json"
say() { echo "snapshots.sh: $*" >&2; }
now() { date +%s.%N; }
bytes() { python3 -c "import sys; sys.path.insert(0, '$top/tests'); print(int(float('${1%[KMGT]}') * {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}.get('${1: -1}', 1)))"; }

eval "$("$top/deploy/local-cluster.sh" start --dir "$cluster")"
export UKAI_ADMIN UKAI_ZK
m=$UKAI_MOUNT

# A 4 KiB write in every 16th block of FILE (SIZE bytes), one process.
spread() {
  python3 - "$1" "$2" <<'EOF'
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
page = os.urandom(4096)
for off in range(0, size, 16 << 22):
    os.pwrite(fd, page, off)
os.fsync(fd)
os.close(fd)
EOF
}
# The same pattern into a qcow2 image, through qemu-io.
spread_qcow2() {
  python3 -c "
size = $2
for off in range(0, size, 16 << 22):
    print(f'write -P 7 {off} 4096')
" | qemu-io -f qcow2 "$1" >/dev/null
}

# ---- 1. latency
for size in 1G 100G 1T; do
  say "latency: a $size disk"
  ukaictl disk create "lat$size" --size "$size" >/dev/null
  spread "$m/lat$size" "$(bytes $size)"
  if [[ $size == 1T ]]; then
    say "writing $data at the start of the 1T disk"
    fio --name=fill --filename="$m/lat1T" --rw=write --bs=4M --iodepth=4 --ioengine=libaio \
      --direct=1 --size="$data" --output-format=json --output="$dir/json/fill.json" >/dev/null
  fi
  snap_bench --admin "${UKAI_ADMIN%%,*}" --disk "lat$size" --count "$count" > "$dir/json/lat$size.json"
  # As CLI commands, process start-up included: ukaictl and qemu-img.
  cli=()
  for i in $(seq 1 "$count"); do
    t0=$(now); ukaictl snap create "lat$size@cli$i" >/dev/null; t1=$(now)
    cli+=("$(python3 -c "print(($t1 - $t0) * 1000)")")
  done
  printf '%s\n' "${cli[@]}" > "$dir/json/cli-ukai-$size.txt"
  for i in $(seq 1 "$count"); do ukaictl snap delete "lat$size@cli$i" >/dev/null; done
  qemu-img create -f qcow2 "$dir/lat$size.qcow2" "$size" >/dev/null
  spread_qcow2 "$dir/lat$size.qcow2" "$(bytes $size)"
  if [[ $size == 1T ]]; then
    # qemu-io takes at most 2 GiB a request: 1 GiB at a time.
    for ((off = 0; off < $(bytes "$data"); off += 1 << 30)); do
      qemu-io -f qcow2 -c "write -P 9 $off 1G" "$dir/lat1T.qcow2" >/dev/null
    done
  fi
  q=()
  for i in $(seq 1 "$count"); do
    t0=$(now); qemu-img snapshot -c "s$i" "$dir/lat$size.qcow2"; t1=$(now)
    q+=("$(python3 -c "print(($t1 - $t0) * 1000)")")
  done
  printf '%s\n' "${q[@]}" > "$dir/json/cli-qcow2-$size.txt"
  rm -f "$dir/lat$size.qcow2"
  ukaictl disk delete "lat$size" >/dev/null
done

# ---- 2. copy-on-write cost
say "copy-on-write: filling a $cow_disk disk"
ukaictl disk create cow --size "$cow_disk" >/dev/null
fio --name=fill --filename="$m/cow" --rw=write --bs=4M --iodepth=4 --ioengine=libaio --direct=1 \
  --size="$cow_disk" --output-format=json --output="$dir/json/cow-fill.json" >/dev/null
randw() {
  fio --name="$1" --filename="$m/cow" --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio \
    --direct=1 --size="$cow_disk" --runtime="$cow_secs" --time_based --randrepeat=0 \
    --output-format=json --output="$dir/json/$1.json" >/dev/null
}
randw cow-before
ukaictl snap create cow@s >/dev/null
randw cow-after
randw cow-later
ukaictl --json snap list cow > "$dir/json/cow-snaps.json"

# ---- 3. backup throughput
say "backup: filling a $backup_size disk"
ukaictl disk create bk --size "$backup_size" >/dev/null
fio --name=fill --filename="$m/bk" --rw=write --bs=4M --iodepth=4 --ioengine=libaio --direct=1 \
  --size="$backup_size" --output-format=json --output="$dir/json/bk-fill.json" >/dev/null
# Each backup and its baseline run 3 times (the first run on this machine
# is often much slower than the next two); the report takes the medians.
# `sync` first, so neither side competes with the write-back of the fill.
backups() {  # backups LABEL SNAP [--since OLD]: 3 runs, JSON of each
  local label=$1 snap=$2; shift 2
  sync
  for r in 1 2 3; do
    rm -f "$dir/$label.ukb"
    ukaictl --json backup "bk@$snap" "$dir/$label.ukb" "$@" > "$dir/json/backup-$label-$r.json"
  done
}
ukaictl snap create bk@full >/dev/null
backups full full
# A tenth of it rewritten, then an incremental.
fio --name=re --filename="$m/bk" --rw=randwrite --bs=4M --ioengine=libaio --direct=1 \
  --size="$backup_size" --io_size=$(($(bytes "$backup_size") / 10)) --output-format=json \
  --output="$dir/json/bk-re.json" >/dev/null
ukaictl snap create bk@inc >/dev/null
backups inc inc --since full
# The local baseline: cp + fsync of a file of the same bytes, side by side.
full_bytes=$(python3 -c "import json; print(json.load(open('$dir/json/backup-full-1.json'))['bytes'])")
inc_bytes=$(python3 -c "import json; print(json.load(open('$dir/json/backup-inc-1.json'))['bytes'])")
local_copy() {  # local_copy BYTES LABEL: seconds for cp + fsync of a BYTES file, 3 runs
  head -c "$1" /dev/urandom > "$dir/local-src"
  sync
  : > "$dir/json/local-$2.txt"
  for r in 1 2 3; do
    rm -f "$dir/local-dst"
    t0=$(now)
    cp "$dir/local-src" "$dir/local-dst"
    python3 -c "import os; fd = os.open('$dir/local-dst', os.O_RDONLY); os.fsync(fd)"
    t1=$(now)
    python3 -c "print($t1 - $t0)" >> "$dir/json/local-$2.txt"
  done
  rm -f "$dir/local-src" "$dir/local-dst"
}
local_copy "$full_bytes" full
local_copy "$inc_bytes" inc
ls -l "$dir"/*.ukb > "$dir/json/backup-files.txt"

# ---- 4. read-through cost of clone chains
say "clone chains: a 1G disk, clones 1 and 16 deep"
ukaictl disk create chain0 --size 1G >/dev/null
fio --name=fill --filename="$m/chain0" --rw=write --bs=4M --iodepth=4 --ioengine=libaio --direct=1 \
  --size=1G --output-format=json --output="$dir/json/chain-fill.json" >/dev/null
for i in $(seq 1 16); do
  ukaictl snap create "chain$((i - 1))@s" >/dev/null
  ukaictl clone "chain$((i - 1))@s" "chain$i" >/dev/null
done
chain_read() {  # chain_read DISK LABEL
  fio --name="$2" --filename="$m/$1" --rw=randread --bs=4k --iodepth=16 --ioengine=libaio \
    --direct=1 --size=1G --runtime="$cow_secs" --time_based --output-format=json \
    --output="$dir/json/$2.json" >/dev/null
}
for i in 0 1 16; do chain_read "chain$i" "chain$i"; done
# Then as a VM's host reads them: one that has written the disk (4 KiB at
# its end) and so knows no other host can give it data where it has none.
for i in 1 16; do
  dd if=/dev/urandom of="$m/chain$i" bs=4k count=1 seek=$(((1 << 30) / 4096 - 1)) oflag=direct \
    conv=notrunc status=none
  chain_read "chain$i" "chain${i}w"
done

# ---- the report
python3 - "$dir/json" "$out" "$count" "$data" "$cow_disk" "$cow_secs" "$backup_size" <<'EOF'
import json, os, statistics, sys, datetime, subprocess
d, out, count, data, cow_disk, cow_secs, backup_size = sys.argv[1:]
def j(name): return json.load(open(os.path.join(d, name)))
def nums(name): return [float(x) for x in open(os.path.join(d, name)).read().split()]
lat = {s: j(f"lat{s}.json") for s in ("1G", "100G", "1T")}
rows = []
base = lat["1G"]
for s in ("1G", "100G", "1T"):
    l = lat[s]
    cu, cq = nums(f"cli-ukai-{s}.txt"), nums(f"cli-qcow2-{s}.txt")
    rows.append(f"| {s} | {l['snapshot_ms']['median']:.1f} | {l['snapshot_ms']['p90']:.1f} | "
                f"{l['snapshot_ms']['median'] / base['snapshot_ms']['median']:.2f} | "
                f"{l['clone_ms']['median']:.1f} | {l['clone_ms']['p90']:.1f} | "
                f"{l['clone_ms']['median'] / base['clone_ms']['median']:.2f} | "
                f"{statistics.median(cu):.0f} | {statistics.median(cq):.0f} |")
def iops(name): return j(f"{name}.json")["jobs"][0]["write"]["iops"]
def p99(name): return j(f"{name}.json")["jobs"][0]["write"]["clat_ns"]["percentile"]["99.000000"] / 1e6
before, after, later = iops("cow-before"), iops("cow-after"), iops("cow-later")
def backup(label):  # the run of median time
    runs = sorted((j(f"backup-{label}-{r}.json") for r in (1, 2, 3)), key=lambda b: b["seconds"])
    return runs[1]
bf, bi = backup("full"), backup("inc")
def riops(name): return j(f"{name}.json")["jobs"][0]["read"]["iops"]
def rp99(name): return j(f"{name}.json")["jobs"][0]["read"]["clat_ns"]["percentile"]["99.000000"] / 1e6
chain = {d: (riops(f"chain{d}"), rp99(f"chain{d}")) for d in (0, 1, 16, "1w", "16w")}
lf = statistics.median(nums("local-full.txt"))
li = statistics.median(nums("local-inc.txt"))
# The hand-written reading of the numbers is kept from the last report.
notes = ""
if os.path.exists(out):
    old = open(out).read()
    at = old.find("\n## Reading these numbers")
    if at >= 0:
        notes = old[at:]
mb = lambda b, s: b / s / 1e6
try:
    rev = subprocess.run(["git", "-C", os.path.dirname(out) or ".", "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
except Exception:
    rev = "?"
text = f"""# Snapshots, clones, copy-on-write and backup

`bench/snapshots.sh` on {datetime.date.today()}, commit {rev}, one machine (2 cores),
a local cluster of 3 nodes (2 replicas per disk) on loopback. Ratios are
against a baseline run side by side in the same script; absolute times move
with the machine's load.

## 1. Snapshot and clone latency against disk size

Each disk has 4 KiB written in every 16th 4 MiB block, so its block table
spans the whole disk (1 TiB: 256 chunk znodes); the 1 TiB disk also has {data}
written at its start. {count} snapshots, then {count} clones of the last one,
timed as Admin API calls on an open connection (`bench/snap_bench.cc`). The
last two columns are the same operation as a command, process start-up
included: `ukaictl snap create` against `qemu-img snapshot -c` on a qcow2
image of the same size and write pattern (1 TiB: the same {data} too).

| disk | snapshot median ms | p90 | vs 1 GiB | clone median ms | p90 | vs 1 GiB | `ukaictl snap create` ms | `qemu-img snapshot -c` ms |
|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

Snapshot deletion (which also has every node collect what only the snapshot
held), median: {lat['1G']['snapshot_delete_ms']['median']:.1f} ms (1 GiB),
{lat['100G']['snapshot_delete_ms']['median']:.1f} ms (100 GiB), {lat['1T']['snapshot_delete_ms']['median']:.1f} ms (1 TiB): this one
walks the block table, so it grows with the disk.

## 2. Copy-on-write cost

fio 4k random writes, iodepth 16, {cow_secs} s each, on a fully written {cow_disk}
disk: before a snapshot, in the {cow_secs} s right after it (each 4 MiB block's
first write copies it on both replicas' nodes), and in the next {cow_secs} s.

| phase | IOPS | vs before | p99 ms |
|---|---|---|---|
| before the snapshot | {before:.0f} | 1.00 | {p99('cow-before'):.1f} |
| right after | {after:.0f} | {after / before:.2f} | {p99('cow-after'):.1f} |
| after that | {later:.0f} | {later / before:.2f} | {p99('cow-later'):.1f} |

## 3. Backup throughput

`ukaictl backup` (libukai, no mount, 8 blocks in flight) of a fully written
{backup_size} disk, then of the changes after a tenth of it was rewritten,
against `cp` + fsync of a local file of the same number of bytes; each the
median of 3 runs, after a `sync`.

| backup | bytes | seconds | MB/s | local cp MB/s | ratio |
|---|---|---|---|---|---|
| full | {bf['bytes']} | {bf['seconds']:.2f} | {mb(bf['bytes'], bf['seconds']):.0f} | {mb(bf['bytes'], lf):.0f} | {lf / bf['seconds']:.2f} |
| incremental | {bi['bytes']} | {bi['seconds']:.2f} | {mb(bi['bytes'], bi['seconds']):.0f} | {mb(bi['bytes'], li):.0f} | {li / bi['seconds']:.2f} |

## 4. Reading through clone chains

fio 4k random reads, iodepth 16, {cow_secs} s, on a fully written 1 GiB disk and on
clones of it 1 and 16 deep (each level a clone of the previous one's snapshot,
nothing written below the first disk): every read resolves down the chain.
First through a mount that has never written the clone, then once it has
(4 KiB at the clone's end), as the host of a VM running on the clone has.

| disk | IOPS | vs the disk itself | p99 ms |
|---|---|---|---|
| the disk | {chain[0][0]:.0f} | 1.00 | {chain[0][1]:.2f} |
| clone, 1 deep, never written here | {chain[1][0]:.0f} | {chain[1][0] / chain[0][0]:.2f} | {chain[1][1]:.2f} |
| clone, 16 deep, never written here | {chain[16][0]:.0f} | {chain[16][0] / chain[0][0]:.2f} | {chain[16][1]:.2f} |
| clone, 1 deep, written here | {chain["1w"][0]:.0f} | {chain["1w"][0] / chain[0][0]:.2f} | {chain["1w"][1]:.2f} |
| clone, 16 deep, written here | {chain["16w"][0]:.0f} | {chain["16w"][0] / chain[0][0]:.2f} | {chain["16w"][1]:.2f} |
"""
open(out, "w").write(text + notes)
print(text)
EOF
say "report in $out"
