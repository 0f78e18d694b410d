#!/usr/bin/env python3
"""A QMP client for tests: runs one command on a QEMU's QMP socket and prints
its "return" as JSON; an error reply is printed on stderr, exit 1.

usage: qmp.py SOCKET COMMAND [ARGUMENTS-JSON]
  qmp.py src.qmp migrate '{"uri": "tcp:127.0.0.1:4444"}'
  qmp.py src.qmp query-migrate
"""
import json
import socket
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip())
    path, command = sys.argv[1], sys.argv[2]
    arguments = json.loads(sys.argv[3]) if len(sys.argv) == 4 else None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    f = s.makefile("rw")

    def reply():  # the next reply, skipping events
        while True:
            line = f.readline()
            if not line:
                sys.exit("qmp.py: QEMU closed the connection")
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg

    def call(cmd, args=None):
        req = {"execute": cmd}
        if args is not None:
            req["arguments"] = args
        f.write(json.dumps(req) + "\n")
        f.flush()
        return reply()

    json.loads(f.readline())  # the greeting
    call("qmp_capabilities")
    msg = call(command, arguments)
    if "error" in msg:
        print(f"qmp.py: {command}: {msg['error'].get('desc', msg['error'])}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(msg["return"]))


if __name__ == "__main__":
    main()
