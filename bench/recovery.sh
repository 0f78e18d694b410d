#!/usr/bin/env bash
# The recovery benchmark. A disk on n1,n2 (site-a; n4 is site-a's spare):
#  1. catch-up: n2 is stopped, 1 GiB is written, n2 starts again; its repair
#     scan starts a repair that copies back only what n2 missed;
#  2. rebuild: with 4 GiB written, the node holding the second replica is
#     killed (kill -9) and stays dead; after the grace time (20 s here,
#     ukai-node --rereplicate-after) its replicas are rebuilt on site-a's
#     spare node.
# Each runs without and with foreground load (fio 4k random reads and writes,
# iodepth 4, on the disk's first --missed bytes). Writes bench/RECOVERY.md with:
#  - time from the event (node back, node dead) to every block healthy, the
#    repair job's own time, and its copy rate as a share of a plain `cp` +
#    `sync` of as many bytes on this machine, run just before;
#  - fio p50/p99 before and during each loaded run, and their ratio.
#
#   bench/recovery.sh [--missed 1G] [--lost 4G] [--phase 10] [--repair-bandwidth 0]
#                     [--dir /var/tmp/ukai-bench-recovery] [--out bench/RECOVERY.md]
#
# --repair-bandwidth is the nodes' limit on the repairs they start
# (ukai-node --repair-bandwidth; its default 0: none).
#
# Needs root (FUSE). Stops everything it started.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
missed=1G lost=4G phase=10 repair_bw=0 dir=/var/tmp/ukai-bench-recovery out=$top/bench/RECOVERY.md
while (($#)); do
  case $1 in
    --missed) missed=$2; shift 2 ;;
    --lost) lost=$2; shift 2 ;;
    --phase) phase=$2; shift 2 ;;
    --repair-bandwidth) repair_bw=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "recovery.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

UKAI_EXTRA_PACKAGES="fio python3 bc ${UKAI_EXTRA_PACKAGES:-}" "$top/deploy/build.sh"
ukaictl=$top/build/bin/ukaictl
tool=$top/deploy/local-cluster.sh
cluster=$dir/cluster
fio_pid=""
cleanup() {
  set +e
  [[ -n $fio_pid ]] && kill "$fio_pid" 2>/dev/null
  "$tool" stop --dir "$cluster" >/dev/null 2>&1
  rm -f "$dir/cp-src" "$dir/cp-dst"
}
trap cleanup EXIT
"$tool" stop --dir "$cluster" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/json"
say() { echo "recovery.sh: $*" >&2; }
now() { date +%s.%N; }
missed_bytes=$(numfmt --from=iec "$missed")
lost_bytes=$(numfmt --from=iec "$lost")

# The yardstick: cp + sync of as many bytes as the rebuild copies.
say "plain cp + sync of $lost_bytes bytes"
dd if=/dev/urandom of="$dir/cp-src" bs=1M count=$((lost_bytes >> 20)) status=none
sync
t0=$(now); cp "$dir/cp-src" "$dir/cp-dst"; sync; t1=$(now)
cp_secs=$(echo "$t1 - $t0" | bc)
rm -f "$dir/cp-src" "$dir/cp-dst"

eval "$("$tool" start --dir "$cluster" --rereplicate-after 20 --repair-bandwidth "$repair_bw")"
"$tool" add-node --dir "$cluster" --site site-a n4 >&2
export UKAI_ADMIN=$(grep '^UKAI_ADMIN=' "$cluster/cluster.env" | cut -d= -f2)
size=$(( (lost_bytes + missed_bytes) * 2 ))
"$ukaictl" disk create rec --size "$size" --nodes n1,n2 >&2
f=$UKAI_MOUNT/rec

healthy() {
  "$ukaictl" --json disk info rec | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(d["stale_replica_blocks"] + d["syncing_blocks"] + d["degraded_blocks"] != 0 or bool(d["job"]))'
}
fio_load() {  # fio_load NAME RUNTIME: 4k randrw qd4 on the first --missed bytes, JSON to $dir/json/NAME.json
  fio "--name=$1" "--filename=$f" --rw=randrw --rwmixread=50 --bs=4k --iodepth=4 --ioengine=libaio \
    --direct=1 "--size=$missed_bytes" --time_based "--runtime=$2" --output-format=json "--output=$dir/json/$1.json"
}
write_range() {  # write_range START BYTES
  fio --name=w "--filename=$f" --rw=write --bs=1M --iodepth=4 --ioengine=libaio --direct=1 \
    "--offset=$1" "--size=$2" --end_fsync=1 --output=/dev/null
}
last_repair() {  # the newest repair job's record
  "$ukaictl" --json job list | python3 -c '
import json, sys
jobs = [j for j in json.load(sys.stdin) if j["kind"] == "repair" and j["disk"] == "rec"]
print(json.dumps(max(jobs, key=lambda j: j["created_ms"])))'
}
# measure LABEL LOADED EVENT...: runs EVENT (which makes the disk unhealthy
# and starts the clock at its end), waits until healthy, records times.
measure() {
  local label=$1 loaded=$2; shift 2
  if [[ $loaded == 1 ]]; then
    fio_load "$label-before" "$phase"
    fio "--name=$label-during" "--filename=$f" --rw=randrw --rwmixread=50 --bs=4k --iodepth=4 \
      --ioengine=libaio --direct=1 "--size=$missed_bytes" --time_based --runtime=3600 --output-format=json \
      "--output=$dir/json/$label-during.json" &
    fio_pid=$!
    sleep 2
  fi
  "$@"
  local t0 t1
  t0=$(now)
  local limit=$(( $(date +%s) + 900 ))
  until healthy; do
    if (( $(date +%s) > limit )); then
      say "$label: not healthy after 15 minutes; giving up (see $cluster/logs and \`ukaictl job list\`)"
      "$ukaictl" job list >&2
      exit 1
    fi
    sleep 0.2
  done
  t1=$(now)
  if [[ $loaded == 1 ]]; then kill -INT "$fio_pid"; wait "$fio_pid" || true; fio_pid=""; fi
  echo "$t1 - $t0" | bc > "$dir/json/$label-secs"
  last_repair > "$dir/json/$label-job.json"
  say "$label: healthy after $(cat "$dir/json/$label-secs") s"
}

say "writing $lost (the data the rebuild copies)"
write_range $((missed_bytes * 2)) "$lost_bytes"

# 1. catch-up of n2, then of n1 (each missed $missed).
catch_up() {  # catch_up NODE START
  "$tool" stop-node --dir "$cluster" "$1" >&2
  write_range "$2" "$missed_bytes"
  "$tool" start-node --dir "$cluster" "$1" >&2
}
measure catch-up 0 catch_up n2 0
measure catch-up-loaded 1 catch_up n1 "$missed_bytes"

# 2. rebuild: the second replica's node dies; site-a's spare takes over.
# Blocks are on n1 and n2 now; killing n2 rebuilds on n4; n2 comes back
# empty-handed, and killing n4 then rebuilds on n2.
rebuild() {  # rebuild NODE
  kill -9 "$(cat "$cluster/pids/$1.pid")"
  sleep 20  # the grace time: the clock starts when re-replication may
}
measure rebuild 0 rebuild n2
"$tool" start-node --dir "$cluster" n2 >&2
measure rebuild-loaded 1 rebuild n4

python3 - "$dir/json" "$out" "$cp_secs" "$lost_bytes" "$missed" "$lost" "$phase" "$repair_bw" <<'PY'
import json, os, sys, datetime, subprocess
d, out, cp_secs, lost_bytes, missed, lost, phase, repair_bw = sys.argv[1:]
limit = "no limit" if repair_bw in ("0", "0M") else f"at most {repair_bw}B/s each"
cp_rate = int(lost_bytes) / float(cp_secs)
def lat(name):
    text = open(os.path.join(d, name + ".json")).read()
    j = json.loads(text[text.index("{"):])["jobs"][0]
    r, w = j["read"], j["write"]
    return (r["clat_ns"]["percentile"]["50.000000"] / 1000, r["clat_ns"]["percentile"]["99.000000"] / 1000,
            w["clat_ns"]["percentile"]["50.000000"] / 1000, w["clat_ns"]["percentile"]["99.000000"] / 1000,
            r["iops"] + w["iops"])
rows = []
for label, what in (("catch-up", f"n2 missed {missed}, then starts"), ("catch-up-loaded", f"n1 missed {missed}, then starts"),
                    ("rebuild", f"n2 (holding {lost} + what it caught up) killed; rebuilt on n4"),
                    ("rebuild-loaded", "n4 killed; rebuilt on n2")):
    job = json.load(open(os.path.join(d, label + "-job.json")))
    secs = float(open(os.path.join(d, label + "-secs")).read())
    job_secs = max(1e-3, (job["finished_ms"] - job["created_ms"]) / 1000)
    rate = job["bytes_done"] / job_secs
    rows.append((label, what, secs, job_secs, job["bytes_done"], rate))
fio_ver = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
o = ["# Recovery benchmark\n",
     f"Produced by `bench/recovery.sh` on {now}; {fio_ver}. A local cluster on loopback: ZooKeeper, "
     "nodes n1, n2, n4 (site-a) and n3 (site-b), one frontend; a disk with 2 replicas on n1,n2; "
     "nodes look for repair work every 10 s (`--repair-interval`, the first look 1 s after a node "
     "starts) and rebuild a dead node's replicas after 20 s (`--rereplicate-after 20`); the repairs "
     f"they start copy {limit} (`--repair-bandwidth {repair_bw}`). Loaded runs "
     f"have fio 4k random reads and writes (50/50, iodepth 4, direct) on the disk's first {missed}. "
     "Machine: 2 vCPUs shared by everything.\n",
     "## Time to healthy and copy rate\n",
     "\"Healthy\" is no block stale, syncing or short of replicas, and no job running. The clock "
     "starts when the node is back (catch-up) or when the grace time has passed (rebuild); it "
     "includes waiting for the next repair scan. The job's rate is its bytes copied over its own "
     "time.\n",
     "| run | what | to healthy (s) | job (s) | bytes copied | job MB/s | vs plain cp + sync |",
     "|---|---|---:|---:|---:|---:|---:|"]
for label, what, secs, job_secs, b, rate in rows:
    o.append(f"| {label} | {what} | {secs:.1f} | {job_secs:.1f} | {b} | {rate/1e6:.0f} | {100*rate/cp_rate:.0f}% |")
o.append(f"\nPlain `cp` + `sync` of {lost_bytes} bytes on the same filesystem, just before: "
         f"{float(cp_secs):.1f} s, {cp_rate/1e6:.0f} MB/s.\n")
o.append("## Foreground latency during recovery (fio 4k randrw qd4, microseconds)\n")
o.append(f"`before`: {phase} s just before the event; `during`: from 2 s before the event until healthy.\n")
o.append("| run | phase | read p50 | read p99 | write p50 | write p99 | IOPS |")
o.append("|---|---|---:|---:|---:|---:|---:|")
for label in ("catch-up-loaded", "rebuild-loaded"):
    for ph in ("before", "during"):
        r = lat(f"{label}-{ph}")
        o.append(f"| {label} | {ph} | {r[0]:.0f} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.0f} |")
o.append("")
for label in ("catch-up-loaded", "rebuild-loaded"):
    b, g = lat(f"{label}-before"), lat(f"{label}-during")
    o.append(f"- {label}: p99 during vs before: read {g[1]/b[1]:.2f}x, write {g[3]/b[3]:.2f}x; "
             f"IOPS {g[4]/b[4]:.2f}x.")
open(out, "w").write("\n".join(o) + "\n")
print(f"recovery.sh: wrote {out}", file=sys.stderr)
PY
