#!/usr/bin/env bash
# Installs the Debian packages UKAI needs (only those missing) and builds
# build/bin/{ukai-node,ukai-fuse,ukaictl} and the tests. Idempotent: a second
# run with nothing changed takes seconds.
#   UKAI_BUILD_TYPE=Debug|Release|RelWithDebInfo (default RelWithDebInfo)
#   UKAI_EXTRA_PACKAGES="fio ..." installs more packages in the same step.
#   UKAI_BUILD_DIR=build-asan UKAI_SANITIZE=ON builds with ASan + UBSan there.
#   UKAI_BUILD_DIR=build-tsan UKAI_TSAN=ON UKAI_CC=clang builds with clang (which
#     also checks the thread-safety annotations) and ThreadSanitizer there.
#   UKAI_TARGETS="a b" builds only those targets.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

packages=(cmake g++ make pkg-config
  libfuse3-dev fuse3 liburing-dev libzookeeper-mt-dev zookeeper libslf4j-java
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev librocksdb-dev libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev
  libssl-dev openssl clang libclang-rt-dev clang-format)
# shellcheck disable=SC2206
packages+=(${UKAI_EXTRA_PACKAGES:-})

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "build.sh: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "build.sh: missing packages need root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q "${missing[@]}" >&2
fi

build_type=${UKAI_BUILD_TYPE:-RelWithDebInfo}
build_dir=${UKAI_BUILD_DIR:-build}
sanitize=${UKAI_SANITIZE:-OFF}
tsan=${UKAI_TSAN:-OFF}
compilers=()
if [[ ${UKAI_CC:-} == clang ]]; then compilers=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++); fi
cache=$build_dir/CMakeCache.txt
if [[ ! -f $cache ]] || ! grep -q "CMAKE_BUILD_TYPE:STRING=$build_type" "$cache" ||
   ! grep -q "UKAI_SANITIZE:BOOL=$sanitize" "$cache" || ! grep -q "UKAI_TSAN:BOOL=$tsan" "$cache"; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" -DUKAI_SANITIZE="$sanitize" \
    -DUKAI_TSAN="$tsan" "${compilers[@]+"${compilers[@]}"}" >&2
fi
targets=()
for t in ${UKAI_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j2 "${targets[@]+"${targets[@]}"}" >&2
echo "build.sh: binaries in $top/$build_dir/bin" >&2
