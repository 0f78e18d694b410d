#!/usr/bin/env python3
"""Writes numbered records to a disk file and logs the ones a flush
acknowledged; the checker verifies a disk against such a log.

  ack_writer.py write FILE LOG --start OFF --count N [--record 1048576] [--flush-every 4] [--tag T]
                [--for SECONDS] [--stop-file PATH] [--rate MB_PER_S]
  ack_writer.py check FILE LOG [--allow-eio]
  ack_writer.py snapcheck SNAPFILE LOG --acked N --issued-after I [--old-tag T]

Record i holds bytes derived from (tag, i), so the checker needs only the log.
With --for, the writer stops after that many seconds, and with --stop-file
once that file exists (both at a flush), if the records are not all written
by then. --rate paces the writes (MB/s, 10^6 bytes).
`check` exits 1 if any acknowledged record reads back different; with
--allow-eio a record whose read fails with EIO is counted, not failed
(a block whose only clean replica is down must fail, never return old data).
`snapcheck` checks a snapshot taken while the writer ran: the first N log
lines (acknowledged before the snapshot began) read back in it exactly, and
every record of the run with an index above I (written after the snapshot
returned) does not: there it reads what was there before (zeros, or with
--old-tag, the records an earlier run of that tag wrote at the same offsets).
"""
import argparse
import hashlib
import os
import sys
import time


def record_bytes(tag, i, size):
    seed = hashlib.sha256(f"{tag}:{i}".encode()).digest()
    out = bytearray()
    block = seed
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 128  # 4 KiB per hash: fast enough, unique per record
    return bytes(out[:size])


def write(args):
    fd = os.open(args.file, os.O_RDWR)
    pending = []
    began = time.monotonic()
    stop_at = began + args.for_seconds if args.for_seconds else None
    with open(args.log, "a", buffering=1) as log:
        for i in range(args.count):
            if not pending and ((stop_at is not None and time.monotonic() > stop_at) or
                                (args.stop_file and os.path.exists(args.stop_file))):
                break
            if args.rate:  # no faster than --rate since the start
                ahead = i * args.record / (args.rate * 1e6) - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
            off = args.start + i * args.record
            data = record_bytes(args.tag, i, args.record)
            if os.pwrite(fd, data, off) != len(data):
                print(f"ack_writer: short write of record {i}", file=sys.stderr)
                return 1
            pending.append((i, off))
            if len(pending) >= args.flush_every or i == args.count - 1:
                os.fsync(fd)
                for j, o in pending:
                    log.write(f"{args.tag} {j} {o} {args.record}\n")
                pending = []
    os.close(fd)
    return 0


def check(args):
    fd = os.open(args.file, os.O_RDONLY)
    latest = {}
    with open(args.log) as log:
        for line in log:
            tag, i, off, size = line.split()
            latest[int(off)] = (tag, int(i), int(size))  # later records win
    bad = eio = 0
    for off, (tag, i, size) in sorted(latest.items()):
        try:
            got = os.pread(fd, size, off)
        except OSError as e:
            if args.allow_eio and e.errno == 5:
                eio += 1
                continue
            print(f"ack_writer: record {tag}/{i} at {off}: {e}", file=sys.stderr)
            bad += 1
            continue
        if got != record_bytes(tag, i, size):
            print(f"ack_writer: record {tag}/{i} at {off} differs", file=sys.stderr)
            bad += 1
    os.close(fd)
    print(f"checked={len(latest)} bad={bad} eio={eio}")
    return 1 if bad else 0


def snapcheck(args):
    fd = os.open(args.file, os.O_RDONLY)
    with open(args.log) as log:
        lines = [l.split() for l in log if l.strip()]
    bad = 0
    tag = lines[0][0] if lines else args.tag
    size = int(lines[0][3]) if lines else args.record
    start = int(lines[0][2]) - int(lines[0][1]) * size if lines else 0
    for tag_, i, off, size_ in lines[:args.acked]:
        if os.pread(fd, int(size_), int(off)) != record_bytes(tag_, int(i), int(size_)):
            print(f"snapcheck: record {tag_}/{i}, acknowledged before the snapshot, is not in it",
                  file=sys.stderr)
            bad += 1
    last = max((int(l[1]) for l in lines), default=-1)
    after = 0
    for i in range(args.issued_after + 1, last + 1):
        off = start + i * size
        got = os.pread(fd, size, off)
        old = record_bytes(args.old_tag, i, size) if args.old_tag else bytes(size)
        after += 1
        if got != old:
            print(f"snapcheck: record {tag}/{i}, written after the snapshot, shows in it",
                  file=sys.stderr)
            bad += 1
    os.close(fd)
    print(f"in_snapshot={min(args.acked, len(lines))} after_snapshot={after} bad={bad}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("file")
    w.add_argument("log")
    w.add_argument("--start", type=int, default=0)
    w.add_argument("--count", type=int, required=True)
    w.add_argument("--record", type=int, default=1 << 20)
    w.add_argument("--flush-every", type=int, default=4)
    w.add_argument("--tag", default="r")
    w.add_argument("--for", dest="for_seconds", type=float, default=0)
    w.add_argument("--stop-file")
    w.add_argument("--rate", type=float, default=0)
    c = sub.add_parser("check")
    c.add_argument("file")
    c.add_argument("log")
    c.add_argument("--allow-eio", action="store_true")
    sc = sub.add_parser("snapcheck")
    sc.add_argument("file")
    sc.add_argument("log")
    sc.add_argument("--acked", type=int, required=True)
    sc.add_argument("--issued-after", type=int, required=True)
    sc.add_argument("--old-tag")
    sc.add_argument("--tag", default="r")
    sc.add_argument("--record", type=int, default=1 << 20)
    args = ap.parse_args()
    if args.cmd == "snapcheck":
        return snapcheck(args)
    return write(args) if args.cmd == "write" else check(args)


if __name__ == "__main__":
    sys.exit(main())
