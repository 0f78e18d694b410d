#!/usr/bin/env bash
# The data-path benchmark: the same fio jobs on a UKAI disk (2 replicas, under
# the FUSE mount of a local cluster) and on a local file beside it (same
# filesystem), run alternately in one invocation, and, when the shared peers
# kit is present, on libfuse3's passthrough_ll (the FUSE ceiling). Writes
# bench/RESULTS.md with IOPS, MB/s, mean and p99 latency and every ratio to the
# local file.
#
#   bench/fio.sh [--runtime S] [--ramp S] [--rounds N] [--size 2G] [--dir /var/tmp/ukai-bench] [--out bench/RESULTS.md]
#
# Every job runs --rounds times (default 3) per system, systems alternated
# within each round; the report gives the median and each round's ratio.
# Each run first does --ramp seconds (default 5) of the same job unmeasured
# (fio's ramp_time): this host pages out memory idle for 30 s (DAMON), and a
# system that waited for the others would otherwise be measured paging its
# own code and metadata back in.
#
# The same jobs from a frontend on another (network-namespace) host, TLS
# against plaintext side by side: bench/tls.sh (bench/TLS.md).
#
# Needs root (FUSE). Installs fio if missing. Stops everything it started.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runtime=10 ramp=5 rounds=3 size=2G dir=/var/tmp/ukai-bench out=$top/bench/RESULTS.md
while (($#)); do
  case $1 in
    --runtime) runtime=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --ramp) ramp=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "fio.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

UKAI_EXTRA_PACKAGES="fio python3 ${UKAI_EXTRA_PACKAGES:-}" "$top/deploy/build.sh"
cluster=$dir/cluster
passthrough_pid=""
cleanup() {
  set +e
  if [[ -n $passthrough_pid ]]; then
    fusermount3 -u "$dir/pt-mnt" 2>/dev/null
    kill "$passthrough_pid" 2>/dev/null
  fi
  "$top/deploy/local-cluster.sh" stop --dir "$cluster" >/dev/null 2>&1
}
trap cleanup EXIT
"$top/deploy/local-cluster.sh" stop --dir "$cluster" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/json"
eval "$("$top/deploy/local-cluster.sh" start --dir "$cluster")"
export UKAI_ADMIN
"$top/build/bin/ukaictl" disk create bench --size "$size" --replicas 2 >&2

targets=("ukai:$UKAI_MOUNT/bench" "local:$dir/local.img")
# The FUSE ceiling, built exactly as ../shared/peers/bench.sh does, if present.
patch=$top/../shared/peers/passthrough_ll_odirect_patch.py
examples=/usr/share/doc/libfuse3-dev/examples
if [[ -f $patch && -f $examples/passthrough_ll.c ]]; then
  mkdir -p "$dir/pt" "$dir/pt-src" "$dir/pt-mnt"
  cp "$examples/passthrough_ll.c" "$examples/passthrough_helpers.h" "$dir/pt/"
  if python3 "$patch" "$dir/pt/passthrough_ll.c" &&
     gcc -O2 $(pkg-config fuse3 --cflags) "$dir/pt/passthrough_ll.c" -o "$dir/pt/passthrough_ll" \
       $(pkg-config fuse3 --libs) 2>"$dir/pt/build.log"; then
    "$dir/pt/passthrough_ll" -f -o source="$dir/pt-src" "$dir/pt-mnt" >"$dir/pt/daemon.log" 2>&1 &
    passthrough_pid=$!
    for _ in $(seq 50); do mountpoint -q "$dir/pt-mnt" && break; sleep 0.1; done
    targets+=("fuse-passthrough:$dir/pt-mnt/image.raw")
  fi
fi

# Same content everywhere: reads must hit written data, not holes.
for t in "${targets[@]}"; do
  name=${t%%:*} file=${t#*:}
  [[ $name == ukai ]] || truncate -s "$size" "$file"
  echo "fio.sh: filling $name" >&2
  fio --name=fill --filename="$file" --rw=write --bs=1M --iodepth=4 --ioengine=libaio --direct=1 \
    --size="$size" --end_fsync=1 --output=/dev/null
done

jobs=("randwrite 4k 1" "randwrite 4k 16" "randread 4k 1" "randread 4k 16" "write 1M 4" "read 1M 4")
for round in $(seq "$rounds"); do
  for job in "${jobs[@]}"; do
    read -r rw bs depth <<<"$job"
    for t in "${targets[@]}"; do  # alternate systems per job: noise hits all alike
      name=${t%%:*} file=${t#*:}
      echo "fio.sh: round $round/$rounds: $name $rw bs=$bs iodepth=$depth" >&2
      fio --name="$rw-$bs-qd$depth" --filename="$file" --rw="$rw" --bs="$bs" --iodepth="$depth" \
        --ioengine=libaio --direct=1 --size="$size" --runtime="$runtime" --ramp_time="$ramp" --time_based \
        --output-format=json --output="$dir/json/$name-$rw-$bs-$depth-$round.json"
    done
  done
done

python3 - "$dir/json" "$out" "$runtime" "$size" "$rounds" "$ramp" <<'PY'
import glob, json, os, platform, statistics, subprocess, sys, time
jdir, out, runtime, size, nrounds, ramp = sys.argv[1:7]
runs = {}
for path in glob.glob(f"{jdir}/*.json"):
    name, rw, bs, depth, rnd = os.path.basename(path)[:-5].rsplit("-", 4)
    job = json.load(open(path))["jobs"][0]
    side = job["write" if "write" in rw else "read"]
    lat = side["clat_ns"]
    runs.setdefault((rw, bs, int(depth), name), {})[int(rnd)] = {
        "iops": side["iops"], "mbs": side["bw_bytes"] / 1e6,
        "mean_us": side["lat_ns"]["mean"] / 1000,
        "p99_us": lat.get("percentile", {}).get("99.000000", 0) / 1000}
# The median round of each (job, system), by IOPS.
rows = {}
for key, by_round in runs.items():
    ordered = sorted(by_round.values(), key=lambda r: r["iops"])
    rows[key] = ordered[(len(ordered) - 1) // 2]
systems = [s for s in ("ukai", "local", "fuse-passthrough") if any(k[3] == s for k in rows)]
order = [("randwrite", "4k", 1), ("randwrite", "4k", 16), ("randread", "4k", 1),
         ("randread", "4k", 16), ("write", "1M", 4), ("read", "1M", 4)]
targets = {("randread", "4k", 16): 0.40, ("read", "1M", 4): 0.50,
           ("randwrite", "4k", 16): 0.15, ("write", "1M", 4): 0.25}
L = []
L.append("# Data-path benchmark: UKAI vs a local file\n")
L.append(f"Produced by `bench/fio.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
         f"fio {subprocess.run(['fio', '--version'], capture_output=True, text=True).stdout.strip()}, "
         f"libaio, direct=1, {runtime} s per job after {ramp} s unmeasured (fio ramp_time: this "
         f"host pages out memory idle for 30 s), {size} file, {nrounds} rounds with the systems "
         "alternated within each; every row is the median round of its job and system. "
         f"Machine: {os.cpu_count()} vCPUs, kernel {platform.release()}. UKAI: a local cluster "
         "(ZooKeeper, 3 nodes, 1 FUSE frontend, all on loopback), disk with 2 replicas, both "
         "in the frontend's site (so both replicas share this machine's one disk). "
         "`local`: a file on the same filesystem as the nodes' RocksDB stores. "
         "`fuse-passthrough`: libfuse3's passthrough_ll, patched for O_DIRECT "
         "(../shared/peers), the ceiling of any FUSE frontend here.\n")
L.append("| job | system | IOPS | MB/s | mean lat (us) | p99 lat (us) | vs local |")
L.append("|---|---|---:|---:|---:|---:|---:|")
for key in order:
    base = rows.get(key + ("local",))
    for s in systems:
        r = rows.get(key + (s,))
        if not r: continue
        ratio = f"{r['iops'] / base['iops']:.1%}" if base and base["iops"] else "-"
        L.append(f"| {key[0]} {key[1]} qd{key[2]} | {s} | {r['iops']:.0f} | {r['mbs']:.1f} | "
                 f"{r['mean_us']:.0f} | {r['p99_us']:.0f} | {ratio} |")
L.append("\n## Against the issue's targets (UKAI as a share of the local file)\n")
L.append("| job | target | UKAI (medians) | each round | passthrough (FUSE ceiling) | UKAI vs passthrough | met |")
L.append("|---|---:|---:|---|---:|---:|---|")
for key, goal in targets.items():
    u, l, p = (rows.get(key + (s,)) for s in ("ukai", "local", "fuse-passthrough"))
    if not (u and l): continue
    ru = u["iops"] / l["iops"]
    ur, lr = runs[key + ("ukai",)], runs[key + ("local",)]
    each = " / ".join(f"{ur[r]['iops'] / lr[r]['iops']:.0%}" for r in sorted(ur) if r in lr)
    rp = f"{p['iops'] / l['iops']:.1%}" if p else "-"
    up = f"{u['iops'] / p['iops']:.1%}" if p else "-"
    L.append(f"| {key[0]} {key[1]} qd{key[2]} | {goal:.0%} | {ru:.1%} | {each} | {rp} | {up} | "
             f"{'yes' if ru >= goal else 'no'} |")
L.append("""
## Reading these numbers

- `local` is served largely from the host's cache (this virtual disk acknowledges
  O_DIRECT writes from a host cache), so it moves by up to 2x between runs; the
  passthrough column, run in the same minutes, is the steadier yardstick.
- For scale, ../shared/peers/README.md measured on this machine (other runs):
  GlusterFS replica 2 at about 15% / 40% / 5% / 10% of the local file on the four
  target jobs (4k randread qd16 / 1M read / 4k randwrite qd16 / 1M write) and Ceph 16
  rbd-fuse at about 4% / 14% / 1% / 2%.
- Where the time goes, from profiles, and what was changed for it:
  docs/ARCHITECTURE.md, "Performance notes". On two cores everything here shares
  the CPU: fio, the kernel's FUSE and loopback TCP, the frontend, two replica nodes
  (each write is stored twice: extent file plus RocksDB checksum index) and the
  kernel's writeback.
""")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
echo "fio.sh: wrote $out" >&2
