#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds, and runs every test:
# the unit tier (in-memory stores, no network) and the integration tier (real
# ZooKeeper, real nodes and real FUSE mounts on loopback, one cluster per test).
#
#   tests/run.sh                 everything (what CI runs)
#   tests/run.sh -L unit         one tier; any other ctest arguments pass through
#   tests/run.sh -R node_kill    one test
# Must run as root (FUSE mounts, package installs).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
UKAI_EXTRA_PACKAGES="fio qemu-utils python3 e2fsprogs util-linux procps ${UKAI_EXTRA_PACKAGES:-}" \
  "$top/deploy/build.sh"
mkdir -p "${UKAI_TEST_TMP:-/var/tmp}"
cd "$top/build"
ctest --output-on-failure -j2 "$@"
