#!/usr/bin/env python3
"""Random reads and writes at any offset and length against a disk file,
checked against an in-memory model. Prints its seed; exits 1 on a mismatch.

usage: rw_model.py FILE SIZE [--ops N] [--seed S] [--max-len L] [--direct]
"""
import argparse
import mmap
import os
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("size", type=int)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-len", type=int, default=300000)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"rw_model: seed {seed}", file=sys.stderr)
    rng = random.Random(seed)
    fd = os.open(args.file, os.O_RDWR)
    model = bytearray(os.pread(fd, args.size, 0))
    if len(model) != args.size:
        print(f"rw_model: short initial read {len(model)}", file=sys.stderr)
        return 1
    for i in range(args.ops):
        off = rng.randrange(args.size)
        length = rng.randint(1, min(args.max_len, args.size - off))
        if rng.random() < 0.6:
            data = rng.randbytes(length)
            if os.pwrite(fd, data, off) != length:
                print(f"rw_model: short write at op {i}", file=sys.stderr)
                return 1
            model[off:off + length] = data
        else:
            got = os.pread(fd, length, off)
            if got != model[off:off + length]:
                print(f"rw_model: op {i}: read {off}+{length} differs", file=sys.stderr)
                return 1
        if i % 200 == 0:
            os.fsync(fd)
    os.fsync(fd)
    whole = os.pread(fd, args.size, 0)
    os.close(fd)
    if whole != bytes(model):
        print("rw_model: final content differs from the model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
