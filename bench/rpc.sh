#!/usr/bin/env bash
# Transport cost on this machine: gRPC unary calls, one bidirectional stream
# (one request per message), one stream whose sender coalesces the requests
# queued meanwhile, and UKAI's block I/O transport (common/wire), 4 KiB
# payloads, at depth 1 and 16, alternated over three rounds in one run.
# Writes bench/RPC.md. Stops the server it starts.
#   bench/rpc.sh [--seconds 5] [--out bench/RPC.md]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=5 out=$top/bench/RPC.md
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "rpc.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
"$top/deploy/build.sh"
bin=$top/build/bin/rpc_bench
port=$((30000 + RANDOM % 20000))
"$bin" serve "$port" & server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
results=$(mktemp)
for round in 1 2 3; do
  for depth in 1 16; do
    for mode in unary stream batch wire; do
      "$bin" "$mode" "127.0.0.1:$port" --depth "$depth" --seconds "$seconds" >> "$results" 2>/dev/null
    done
  done
done
python3 - "$results" "$out" <<'PY'
import json, statistics, sys, time
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for mode in ("unary", "stream", "batch", "wire"):
    for depth in (1, 16):
        v = [r["round_trips_per_second"] for r in rows if r["mode"] == mode and r["depth"] == depth]
        med[(mode, depth)] = statistics.median(v)
L = ["# Transport cost: gRPC unary vs one stream vs coalesced batches vs the block I/O transport\n",
     f"Produced by `bench/rpc.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
     "an echo server and client on loopback, 4 KiB payloads, median of three alternated "
     "rounds. Every UKAI 4 KiB read is one block I/O call plus FUSE and storage; every "
     "write is two (one per replica).\n",
     "| depth | gRPC unary round trips/s | stream | stream / unary | coalesced batches | batches / unary | block I/O transport | transport / unary |",
     "|---:|---:|---:|---:|---:|---:|---:|---:|"]
for d in (1, 16):
    u, s, b, w = med[("unary", d)], med[("stream", d)], med[("batch", d)], med[("wire", d)]
    L.append(f"| {d} | {u:.0f} | {s:.0f} | {s / u:.2f}x | {b:.0f} | {b / u:.2f}x | {w:.0f} | {w / u:.2f}x |")
L.append("\n`stream`: one request per message. `coalesced batches`: callers queue their "
         "request; one sender puts everything queued into one message while the previous "
         "one is in flight; one reader completes them. `block I/O transport`: common/wire, "
         "what libukai uses for reads, writes and flushes: callers send on one TCP "
         "connection, one reader thread matches replies by tag, the server answers inline "
         "on the connection's thread.")
open(sys.argv[2], "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
rm -f "$results"
