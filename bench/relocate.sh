#!/usr/bin/env bash
# The relocation benchmark: a 4 GiB disk with 2 GiB written (2 replicas) is
# moved while fio runs 4k random reads and writes (iodepth 4) on it, three
# times:
#  1. unthrottled, site-a -> site-b (10 ms apart), fio on the site-b mount: the
#     VM moved to site-b and its disk follows;
#  2. with --bandwidth, back to site-a, fio on the site-a mount;
#  3. with --bandwidth, one replica to another node of the same site (n1 ->
#     n5), fio on the site-a mount: the distance does not change, so the fio
#     latencies show what the copy itself costs foreground I/O;
#  4. the same back (n5 -> n1) at --low-bandwidth: the price of a copy at
#     half the rate.
# Writes bench/RELOCATE.md with:
#  - relocation throughput (bytes copied / job time) and as a share of a plain
#    `cp` + `sync` of the same number of bytes on this machine, run just before;
#  - fio p50/p99 latency before, during and after each job;
#  - 4k read latency from the new site before and after.
#
#   bench/relocate.sh [--size 4G] [--written 2G] [--bandwidth 64M] [--low-bandwidth 32M] [--phase 10]
#                     [--dir /var/tmp/ukai-bench-relocate] [--out bench/RELOCATE.md]
#
# Needs root (FUSE). Stops everything it started.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
size=4G written=2G bandwidth=64M low_bandwidth=32M phase=10 dir=/var/tmp/ukai-bench-relocate out=$top/bench/RELOCATE.md
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --written) written=$2; shift 2 ;;
    --bandwidth) bandwidth=$2; shift 2 ;;
    --low-bandwidth) low_bandwidth=$2; shift 2 ;;
    --phase) phase=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "relocate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

UKAI_EXTRA_PACKAGES="fio python3 bc ${UKAI_EXTRA_PACKAGES:-}" "$top/deploy/build.sh"
ukaictl=$top/build/bin/ukaictl
cluster=$dir/cluster
fio_pid=""
cleanup() {
  set +e
  [[ -n $fio_pid ]] && kill "$fio_pid" 2>/dev/null
  "$top/deploy/local-cluster.sh" stop --dir "$cluster" >/dev/null 2>&1
  rm -f "$dir/cp-src" "$dir/cp-dst"
}
trap cleanup EXIT
"$top/deploy/local-cluster.sh" stop --dir "$cluster" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/json"
say() { echo "relocate.sh: $*" >&2; }
now() { date +%s.%N; }

eval "$("$top/deploy/local-cluster.sh" start --dir "$cluster" --site-delay 10)"
"$top/deploy/local-cluster.sh" add-node --dir "$cluster" --site site-b n4 >&2
"$top/deploy/local-cluster.sh" add-node --dir "$cluster" --site site-a n5 >&2
export UKAI_ADMIN=$(grep '^UKAI_ADMIN=' "$cluster/cluster.env" | cut -d= -f2)
mnt_a=$UKAI_MOUNT mnt_b=$cluster/mnt-b
"$top/deploy/local-cluster.sh" mount --dir "$cluster" --site site-b "$mnt_b" >/dev/null
"$ukaictl" disk create rel --size "$size" --nodes n1,n2 >&2
say "writing $written"
fio --name=fill --filename="$mnt_a/rel" --rw=write --bs=1M --iodepth=4 --ioengine=libaio --direct=1 \
  --size="$written" --end_fsync=1 --output=/dev/null

# The yardstick: cp of as many bytes as a job copies (one copy per new replica).
written_bytes=$(numfmt --from=iec "$written")
copy_bytes=$((written_bytes * 2))
say "plain cp + sync of $copy_bytes bytes"
dd if=/dev/urandom of="$dir/cp-src" bs=1M count=$((copy_bytes >> 20)) status=none
sync
t0=$(now); cp "$dir/cp-src" "$dir/cp-dst"; sync; t1=$(now)
cp_secs=$(echo "$t1 - $t0" | bc)
echo "$cp_secs" > "$dir/cp-secs"
rm -f "$dir/cp-src" "$dir/cp-dst"

fio_args() {  # fio_args NAME FILE: 4k randrw qd4, JSON to $dir/json/NAME.json
  echo "--name=$1" "--filename=$2" --rw=randrw --rwmixread=50 --bs=4k --iodepth=4 \
    --ioengine=libaio --direct=1 "--size=$written" --time_based --output-format=json \
    "--output=$dir/json/$1.json"
}
read_lat() {  # read_lat NAME FILE: 4k randread qd1 for 5 s
  fio --name="$1" --filename="$2" --rw=randread --bs=4k --iodepth=1 --ioengine=libaio --direct=1 \
    --size="$written" --runtime=5 --time_based --output-format=json --output="$dir/json/$1.json"
}

run() {  # run LABEL FIO_MOUNT NEW_SITE_MOUNT RELOCATE_ARGS...
  local label=$1 fg=$2 far=$3; shift 3
  say "$label: before"
  read_lat "$label-newsite-before" "$far/rel"
  # shellcheck disable=SC2046  # paths without spaces
  fio $(fio_args "$label-before" "$fg/rel") --runtime="$phase"
  say "$label: relocate $*"
  # fio itself in the background (not a function's subshell), so that the
  # SIGINT below reaches it: it stops and reports what it measured.
  # shellcheck disable=SC2046
  fio $(fio_args "$label-during" "$fg/rel") --runtime=3600 &
  fio_pid=$!
  sleep 2
  local t0 t1 job
  t0=$(now)
  job=$("$ukaictl" relocate rel "$@")
  "$ukaictl" job wait "$job" >&2
  t1=$(now)
  kill -INT "$fio_pid"; wait "$fio_pid" || true; fio_pid=""
  "$ukaictl" --json job info "$job" > "$dir/json/$label-job.json"
  echo "$t1 - $t0" | bc > "$dir/json/$label-secs"
  say "$label: after"
  # shellcheck disable=SC2046
  fio $(fio_args "$label-after" "$fg/rel") --runtime="$phase"
  read_lat "$label-newsite-after" "$far/rel"
}
run unthrottled "$mnt_b" "$mnt_b" --sites site-b
run throttled "$mnt_a" "$mnt_a" --sites site-a --bandwidth "$bandwidth"
run same-site "$mnt_a" "$mnt_a" --nodes n2,n5 --bandwidth "$bandwidth"
run same-site-low "$mnt_a" "$mnt_a" --nodes n1,n2 --bandwidth "$low_bandwidth"

python3 - "$dir/json" "$out" "$cp_secs" "$copy_bytes" "$bandwidth" "$size" "$written" "$low_bandwidth" <<'EOF'
import json, os, sys, datetime, subprocess
d, out, cp_secs, copy_bytes, bandwidth, size, written, low_bandwidth = sys.argv[1:]
limit = {"unthrottled": None, "throttled": bandwidth, "same-site": bandwidth,
         "same-site-low": low_bandwidth}
cp_rate = int(copy_bytes) / float(cp_secs)
def lat(name, kind):
    text = open(os.path.join(d, name + ".json")).read()
    j = json.loads(text[text.index("{"):])["jobs"][0][kind]  # after "fio: terminating on signal"
    p = j["clat_ns"]["percentile"]
    return p["50.000000"] / 1000, p["99.000000"] / 1000, j["iops"]
rows = []
summary = {}
labels = ("unthrottled", "throttled", "same-site", "same-site-low")
for label in labels:
    job = json.load(open(os.path.join(d, label + "-job.json")))
    secs = float(open(os.path.join(d, label + "-secs")).read())
    rate = job["bytes_done"] / secs
    summary[label] = (job, secs, rate)
    for phase in ("before", "during", "after"):
        r50, r99, riops = lat(f"{label}-{phase}", "read")
        w50, w99, wiops = lat(f"{label}-{phase}", "write")
        rows.append((label, phase, r50, r99, w50, w99, riops + wiops))
fio_ver = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
o = []
o.append("# Relocation benchmark\n")
o.append(f"Produced by `bench/relocate.sh` on {now}; {fio_ver}. A local cluster on loopback: "
         "ZooKeeper, nodes n1, n2, n5 (site-a) and n3, n4 (site-b), a frontend in each site; the "
         "sites are 10 ms apart (`ukai-node --test-site-delay-ms`, docs/TESTING.md; node-to-node "
         f"copies are not delayed). A {size} disk with {written} written, 2 replicas, moved with "
         "`ukaictl relocate` while fio ran 4k random reads and writes (50/50, iodepth 4, direct) "
         "on it. Machine: 2 vCPUs shared by everything.\n")
o.append("| job | move | fio runs from |")
o.append("|---|---|---|")
o.append("| unthrottled | n1,n2 (site-a) -> site-b, no limit | site-b: the VM moved there, its disk follows |")
o.append(f"| throttled | back to site-a, --bandwidth {bandwidth} | site-a, the new site |")
o.append(f"| same-site | n1,n2 -> n2,n5 (all site-a), --bandwidth {bandwidth} | site-a: the distance never changes, so this is what the copy costs foreground I/O |")
o.append(f"| same-site-low | n2,n5 -> n1,n2 (all site-a), --bandwidth {low_bandwidth} | site-a: the same at a lower limit |\n")
o.append("## Copy throughput\n")
o.append("| job | bytes copied | time (s) | MB/s | vs plain cp + sync | target |")
o.append("|---|---:|---:|---:|---:|---|")
for label in labels:
    job, secs, rate = summary[label]
    tgt = ">= 50%" if label == "unthrottled" else f"--bandwidth {limit[label]}"
    o.append(f"| {label} | {job['bytes_done']} | {secs:.1f} | {rate/1e6:.0f} | {100*rate/cp_rate:.0f}% | {tgt} |")
o.append(f"\nPlain `cp` + `sync` of {int(copy_bytes)} bytes on the same filesystem, just before: "
         f"{cp_secs.strip() if isinstance(cp_secs, str) else cp_secs} s, {cp_rate/1e6:.0f} MB/s.\n")
o.append("## Foreground latency (fio 4k randrw qd4, microseconds)\n")
o.append("| job | phase | read p50 | read p99 | write p50 | write p99 | IOPS |")
o.append("|---|---|---:|---:|---:|---:|---:|")
for r in rows:
    o.append(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.0f} | {r[5]:.0f} | {r[6]:.0f} |")
o.append("\n## Reads from the new site (4k randread qd1, microseconds)\n")
o.append("| job | new site | p50 before | p50 after | p99 before | p99 after |")
o.append("|---|---|---:|---:|---:|---:|")
for label, new in (("unthrottled", "site-b"), ("throttled", "site-a"), ("same-site", "site-a"),
                   ("same-site-low", "site-a")):
    b50, b99, _ = lat(f"{label}-newsite-before", "read")
    a50, a99, _ = lat(f"{label}-newsite-after", "read")
    o.append(f"| {label} | {new} | {b50:.0f} | {a50:.0f} | {b99:.0f} | {a99:.0f} |")
o.append("\n## Against the issue's targets\n")
job, secs, rate = summary["unthrottled"]
o.append(f"- Copy rate without a limit: {100*rate/cp_rate:.0f}% of plain cp (target 50%): "
         f"{'met' if rate >= 0.5 * cp_rate else 'not met'}.")
for label in ("throttled", "same-site", "same-site-low"):
    before = [r for r in rows if r[0] == label and r[1] == "before"][0]
    during = [r for r in rows if r[0] == label and r[1] == "during"][0]
    worst = max(during[3] / before[3], during[5] / before[5])
    what = ("the copy's own cost (same site, the distance unchanged)" if label.startswith("same-site")
            else "from the new site (blocks come closer during the job)")
    o.append(f"- {label}, --bandwidth {limit[label]}: foreground p99 during the job vs before, {what}: "
             f"read {during[3]/before[3]:.2f}x, write {during[5]/before[5]:.2f}x (target at most 2x): "
             f"{'met' if worst <= 2 else 'not met'}.")
open(out, "w").write("\n".join(o) + "\n")
print(f"relocate.sh: wrote {out}", file=sys.stderr)
EOF
