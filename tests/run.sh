#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds, and runs every test:
# the unit tier (in-memory stores, no network) and the integration tier (real
# ZooKeeper, real nodes and real FUSE mounts on loopback, one cluster per test).
#
#   tests/run.sh                 everything (what CI runs): the format check
#                                (clang-format), all tests on the normal build,
#                                the unit tier on a clang build with
#                                -Wthread-safety and ThreadSanitizer, then all
#                                tests again on an ASan + UBSan build (less the
#                                integration tests labelled "slow", whose code
#                                the unit tests cover there)
#   tests/run.sh -L unit         one tier; any other ctest arguments pass through
#   tests/run.sh -R node_kill    one test
#   tests/run.sh --soak ...      the long randomized versions too (UKAI_SOAK=1:
#                                25 kill -9 rounds in node_chaos instead of 5),
#                                and the "slow" tests in the sanitizer pass too
#   UKAI_SANITIZE_PASS=0         skip the ASan + UBSan pass
#   UKAI_TSAN_PASS=0             skip the clang / ThreadSanitizer pass
# Must run as root (FUSE mounts, package installs).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
args=()
for a in "$@"; do
  if [[ $a == --soak ]]; then export UKAI_SOAK=1; else args+=("$a"); fi
done
set -- "${args[@]+"${args[@]}"}"
UKAI_EXTRA_PACKAGES="fio qemu-utils qemu-system-x86 python3 e2fsprogs util-linux procps iproute2 binutils ${UKAI_EXTRA_PACKAGES:-}" \
  "$top/deploy/build.sh"
mkdir -p "${UKAI_TEST_TMP:-/var/tmp}"
"$top/tests/check_format.sh"
(cd "$top/build" && UKAI_BIN=$top/build/bin ctest --output-on-failure -j2 "$@")

if [[ ${UKAI_TSAN_PASS:-1} == 1 ]]; then
  echo "run.sh: the unit tier on a clang build: -Wthread-safety, ThreadSanitizer" >&2
  UKAI_BUILD_DIR=build-tsan UKAI_TSAN=ON UKAI_CC=clang UKAI_TARGETS=unit_tests \
    UKAI_BUILD_TYPE=RelWithDebInfo "$top/deploy/build.sh"
  # Debian's Abseil, gRPC and RocksDB are not built with TSan, so TSan cannot
  # see their synchronization; tests/tsan.supp names what comes from them.
  (cd "$top/build-tsan" &&
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$top/tests/tsan.supp" \
      ctest --output-on-failure -j2 -L unit)
fi

if [[ ${UKAI_SANITIZE_PASS:-1} == 1 ]]; then
  echo "run.sh: the same tests on an AddressSanitizer + UBSan build" >&2
  UKAI_BUILD_DIR=build-asan UKAI_SANITIZE=ON UKAI_BUILD_TYPE=RelWithDebInfo "$top/deploy/build.sh"
  # Third-party globals (gRPC, protobuf) are not freed at exit; leaks are not
  # what this pass is for. Any other report fails the test that saw it.
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  skip=(-LE slow)
  [[ ${UKAI_SOAK:-0} == 1 ]] && skip=()
  (cd "$top/build-asan" && UKAI_BIN=$top/build-asan/bin ctest --output-on-failure -j2 "${skip[@]+"${skip[@]}"}" "$@")
fi
