#!/usr/bin/env bash
# What TLS costs on the network path: the same fio jobs from a frontend on
# another host (network namespaces on one bridge) against two clusters side
# by side in one run, one with mutual TLS (the default) and one started
# --insecure-plaintext, alternated job by job; then a relocation between
# nodes on different hosts in each, timed. Writes bench/TLS.md with every
# ratio TLS/plaintext.
#
#   bench/tls.sh [--runtime S] [--ramp S] [--rounds N] [--size 1G] [--dir /var/tmp/ukai-tls-bench] [--out bench/TLS.md]
#                [--only 'write 1M 4'] [--no-relocate]
#
# --only runs one fio job (while tuning or profiling; the report then has
# that row only); --no-relocate skips the relocation.
#
# Hosts: st1 (ZooKeeper, node n1 of each cluster), st2 (n2), st3 (n3), hv
# (a frontend of each cluster). Each cluster has its own ZooKeeper root. The
# frontend never shares a run directory with a node, so all its block I/O
# is TCP (TLS or not); nodes on different hosts copy over TCP as well.
#
# Needs root (ip netns, FUSE). Stops everything it started, by pid.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runtime=8 ramp=2 rounds=5 size=1G dir=/var/tmp/ukai-tls-bench out=$top/bench/TLS.md
only='' relocate=1
while (($#)); do
  case $1 in
    --runtime) runtime=$2; shift 2 ;;
    --ramp) ramp=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-relocate) relocate=0; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "tls.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# The fio jobs: rw, block size, iodepth.
jobs=("randread 4k 16" "randwrite 4k 16" "randread 4k 1" "randwrite 4k 1" "write 1M 4" "read 1M 4")
if [[ -n $only ]]; then
  [[ " ${jobs[*]/%/,} " == *" $only,"* ]] || { echo "tls.sh: --only: no job '$only'" >&2; exit 2; }
  jobs=("$only")
fi
UKAI_EXTRA_PACKAGES="fio python3 iproute2 util-linux ${UKAI_EXTRA_PACKAGES:-}" "$top/deploy/build.sh"
bin=$top/build/bin
tag=ub$$
declare -A addr=([st1]=10.79.0.1 [st2]=10.79.0.2 [st3]=10.79.0.3 [hv]=10.79.0.10)
pids=() mounts=()

cleanup() {
  set +e
  for m in "${mounts[@]}"; do fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  for h in sw st1 st2 st3 hv; do ip netns del "$tag-$h" 2>/dev/null; done
}
trap cleanup EXIT
rm -rf "$dir"; mkdir -p "$dir/logs" "$dir/json"
printf '%s\n' "${jobs[@]}" > "$dir/jobs.txt"

spawn() {  # spawn HOST NAME COMMAND...
  local h=$1 name=$2; shift 2
  nsenter --net="/run/netns/$tag-$h" -- "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null &
  pids+=($!)
  pid_of[$name]=$!
}
declare -A pid_of
# cpu_ticks NAME...: user + system CPU of those processes so far, in clock ticks.
cpu_ticks() {
  local t=0 n f
  for n in "$@"; do
    read -r -a f < "/proc/${pid_of[$n]}/stat"
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}
on() { local h=$1; shift; nsenter --net="/run/netns/$tag-$h" -- "$@"; }

ip netns add "$tag-sw"
ip -n "$tag-sw" link add bench0 type bridge
ip -n "$tag-sw" link set bench0 up
for h in st1 st2 st3 hv; do
  ip netns add "$tag-$h"
  ip -n "$tag-$h" link set lo up
  ip -n "$tag-sw" link add "v-$h" type veth peer name "p-$h"
  ip -n "$tag-sw" link set "p-$h" netns "$tag-$h" name eth0
  ip -n "$tag-sw" link set "v-$h" master bench0 up
  ip -n "$tag-$h" addr add "${addr[$h]}/24" dev eth0
  ip -n "$tag-$h" link set eth0 up
done

# One ZooKeeper for both clusters.
mkdir -p "$dir/zk/data"
printf 'tickTime=2000\ndataDir=%s\nclientPort=2181\nclientPortAddress=%s\n4lw.commands.whitelist=srvr\n' \
  "$dir/zk/data" "${addr[st1]}" > "$dir/zk/zoo.cfg"
spawn st1 zk java -Xmx256m -Dzookeeper.admin.enableServer=false \
  -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
  org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zk/zoo.cfg"
zk=${addr[st1]}:2181
for _ in $(seq 300); do on st1 bash -c "exec 3<>/dev/tcp/${addr[st1]}/2181" 2>/dev/null && break; sleep 0.1; done

"$bin/ukaictl" ca init --ca "$dir/ca" --name tls-bench >/dev/null
for id in n1 n2 n3; do "$bin/ukaictl" cert issue --ca "$dir/ca" --role node --id "$id" --out "$dir/tls/$id" >/dev/null; done
"$bin/ukaictl" cert issue --ca "$dir/ca" --role frontend --id hv --out "$dir/tls/hv" >/dev/null
"$bin/ukaictl" cert issue --ca "$dir/ca" --role admin --id ops --out "$dir/tls/ops" >/dev/null

# security_flags CLUSTER ID: the flags of process ID in CLUSTER (tls|plain).
security_flags() { if [[ $1 == tls ]]; then echo "--tls-dir $dir/tls/$2"; else echo --insecure-plaintext; fi; }
port_base() { if [[ $1 == tls ]]; then echo 7700; else echo 7800; fi; }
for c in tls plain; do
  base=$(port_base "$c") i=1
  for h in st1 st2 st3; do
    # shellcheck disable=SC2046
    spawn "$h" "$c-n$i" "$bin/ukai-node" --id "n$i" --site dc --listen "${addr[$h]}:$base" \
      --io-listen "${addr[$h]}:$((base + 1))" --data "$dir/$c/n$i" --zk "$zk" --zk-root "/$c" \
      --run-dir "$dir/run-$h" $(security_flags "$c" "n$i")
    i=$((i + 1))
  done
done
admin() {  # admin CLUSTER ARGS...: ukaictl against CLUSTER, from hv
  local c=$1; shift
  # shellcheck disable=SC2046
  on hv env UKAI_ADMIN="${addr[st1]}:$(port_base "$c")" "$bin/ukaictl" $(security_flags "$c" ops) "$@"
}
for c in tls plain; do
  for _ in $(seq 300); do
    [[ $(admin "$c" --json node list 2>/dev/null | grep -c '"up": true') == 3 ]] && break
    sleep 0.2
  done
  mkdir -p "$dir/mnt-$c"
  mounts+=("$dir/mnt-$c")
  # shellcheck disable=SC2046
  spawn hv "$c-fuse" "$bin/ukai-fuse" "$dir/mnt-$c" --site dc --zk "$zk" --zk-root "/$c" \
    --run-dir "$dir/run-hv" --state-dir "$dir/state-$c" $(security_flags "$c" hv)
  for _ in $(seq 300); do mountpoint -q "$dir/mnt-$c" && break; sleep 0.1; done
  admin "$c" disk create bench --size "$size" --replicas 2 --nodes n1,n2 >/dev/null
  for _ in $(seq 100); do [[ -e $dir/mnt-$c/bench ]] && break; sleep 0.1; done
  fio --name=fill --filename="$dir/mnt-$c/bench" --rw=write --bs=1M --iodepth=4 --ioengine=libaio \
    --direct=1 --size="$size" --end_fsync=1 >/dev/null
done

# fio, the two clusters alternated job by job, --rounds times.
for ((r = 1; r <= rounds; r++)); do
  for job in "${jobs[@]}"; do
    read -r rw bs depth <<<"$job"
    for c in tls plain; do
      before="$(cpu_ticks "$c-fuse") $(cpu_ticks "$c-n1" "$c-n2" "$c-n3")"
      fio --name="$rw-$bs-qd$depth" --filename="$dir/mnt-$c/bench" --rw="$rw" --bs="$bs" \
        --iodepth="$depth" --ioengine=libaio --direct=1 --time_based --runtime="$runtime" \
        --ramp_time="$ramp" --size="$size" --output-format=json \
        --output="$dir/json/$c-$rw-$bs-$depth-$r.json" >/dev/null
      # CPU of the frontend and of the nodes over the whole job, ramp included.
      echo "$before $(cpu_ticks "$c-fuse") $(cpu_ticks "$c-n1" "$c-n2" "$c-n3") $((runtime + ramp))" \
        > "$dir/json/$c-$rw-$bs-$depth-$r.cpu"
      echo "round $r: $c $rw $bs qd$depth done" >&2
    done
  done
done

# A relocation n1,n2 -> n2,n3 in each cluster: node-to-node copies over TCP.
((relocate)) || : > "$dir/relocate.txt"
for c in $( ((relocate)) && echo tls plain); do
  start=$(date +%s%N)
  job=$(admin "$c" relocate bench --nodes n2,n3)
  admin "$c" job wait "$job" >/dev/null
  echo "$c $((($(date +%s%N) - start) / 1000000))" >> "$dir/relocate.txt"  # ms
done

python3 - "$dir" "$out" "$rounds" "$runtime" "$ramp" "$size" <<'PY'
import json, statistics, subprocess, sys
d, out, rounds, runtime, ramp, size = sys.argv[1:]
rounds = int(rounds)
jobs = [(rw, bs, int(qd)) for rw, bs, qd in (l.split() for l in open(f"{d}/jobs.txt"))]
def stats(c, rw, bs, qd, r):
    j = json.load(open(f"{d}/json/{c}-{rw}-{bs}-{qd}-{r}.json"))["jobs"][0]
    side = j["read"] if "read" in rw else j["write"]
    return {"iops": side["iops"], "mbs": side["bw_bytes"] / 1e6,
            "mean": side["clat_ns"]["mean"] / 1e3,
            "p99": side["clat_ns"]["percentile"]["99.000000"] / 1e3}
L = ["# TLS against plaintext, from a frontend on another host", "",
     f"`bench/tls.sh`: {rounds} rounds, {runtime} s per job after {ramp} s unmeasured, a "
     f"{size} disk with 2 replicas on nodes of two other network-namespace hosts, the TLS and "
     "the plaintext cluster alternated job by job in one run (fio, libaio, direct=1). Every "
     "row is the median round; the ratio is TLS / plaintext for each round.", "",
     "| job | TLS IOPS | plain IOPS | TLS MB/s | plain MB/s | TLS mean/p99 lat (us) | plain mean/p99 lat (us) | TLS/plain (rounds) | target | met |",
     "|---|---|---|---|---|---|---|---|---|---|"]
targets = {("randread", "4k", 16): ("IOPS", 0.85), ("randwrite", "4k", 16): ("IOPS", 0.85),
           ("write", "1M", 4): ("MB/s", 0.80), ("read", "1M", 4): ("MB/s", 0.80),
           ("randread", "4k", 1): ("latency", 1.20), ("randwrite", "4k", 1): ("latency", 1.20)}
for rw, bs, qd in jobs:
    t = [stats("tls", rw, bs, qd, r) for r in range(1, rounds + 1)]
    p = [stats("plain", rw, bs, qd, r) for r in range(1, rounds + 1)]
    kind, want = targets[(rw, bs, qd)]
    key = {"IOPS": "iops", "MB/s": "mbs", "latency": "mean"}[kind]
    ratios = [a[key] / b[key] for a, b in zip(t, p)]
    med = statistics.median(ratios)
    ok = med <= want if kind == "latency" else med >= want
    tm = sorted(t, key=lambda s: s["iops"])[len(t) // 2]
    pm = sorted(p, key=lambda s: s["iops"])[len(p) // 2]
    target = f"mean latency at most +{round((want - 1) * 100)}%" if kind == "latency" else f"{kind} at least {round(want * 100)}%"
    L.append(f"| {rw} {bs} qd{qd} | {tm['iops']:.0f} | {pm['iops']:.0f} | {tm['mbs']:.1f} | {pm['mbs']:.1f} | "
             f"{tm['mean']:.0f} / {tm['p99']:.0f} | {pm['mean']:.0f} / {pm['p99']:.0f} | "
             f"{med * 100:.1f}% ({' / '.join(f'{x * 100:.0f}%' for x in ratios)}) | {target} | {'yes' if ok else 'NO'} |")
hz = int(subprocess.run(["getconf", "CLK_TCK"], capture_output=True, text=True).stdout)
def cpu_us_per_io(c, rw, bs, qd, r):
    """CPU microseconds per I/O of the frontend and of the nodes in one job."""
    f0, n0, f1, n1, secs = map(int, open(f"{d}/json/{c}-{rw}-{bs}-{qd}-{r}.cpu").read().split())
    ios = stats(c, rw, bs, qd, r)["iops"] * secs
    return ((f1 - f0) / hz * 1e6 / ios, (n1 - n0) / hz * 1e6 / ios)
L += ["", "## Where the CPU goes", "",
      "CPU time per I/O (user + system, from /proc, the ramp included), median round: the "
      "frontend process on its host, and the three nodes together. Every process of both "
      "clusters shares this machine's 2 cores, so a job that keeps them busy loses in IOPS "
      "what TLS adds here.", "",
      "| job | frontend TLS | frontend plain | nodes TLS | nodes plain | TLS adds |",
      "|---|---|---|---|---|---|"]
for rw, bs, qd in jobs:
    t = [cpu_us_per_io("tls", rw, bs, qd, r) for r in range(1, rounds + 1)]
    p = [cpu_us_per_io("plain", rw, bs, qd, r) for r in range(1, rounds + 1)]
    tf, tn = statistics.median(x[0] for x in t), statistics.median(x[1] for x in t)
    pf, pn = statistics.median(x[0] for x in p), statistics.median(x[1] for x in p)
    L.append(f"| {rw} {bs} qd{qd} | {tf:.0f} us | {pf:.0f} us | {tn:.0f} us | {pn:.0f} us | "
             f"{(tf + tn) / (pf + pn) * 100 - 100:+.0f}% |")
L += ["", "Sealing and opening every byte is work no tuning removes: AES-128-GCM runs at about 4 GB/s per core here (`openssl speed -evp aes-128-gcm`), and a 1 MiB write to 2 replicas is sealed twice by the frontend and opened once by each node, about 1 ms of CPU per MiB on machines whose 2 cores every process of both clusters shares. That alone holds 1 MiB transfers under 80% of plaintext here; see docs/SECURITY.md, \"What it costs\"."]
rel = dict(line.split() for line in open(f"{d}/relocate.txt"))
rate = float(rel["plain"]) / float(rel["tls"]) if rel else 0
L += [] if not rel else ["", "## Relocation", "",
      f"Relocating the {size} disk's replica from n1 to n3 (node-to-node pulls over TCP): "
      f"TLS {float(rel['tls']) / 1000:.1f} s, plaintext {float(rel['plain']) / 1000:.1f} s, so TLS copies at "
      f"{rate * 100:.0f}% of the plaintext rate (target at least 85%: {'met' if rate >= 0.85 else 'NOT met'}). "
      "One run each; the relocation is not repeated.", ""]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
