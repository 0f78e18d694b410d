#!/usr/bin/env bash
# Fails, naming the files, if any C++ file of the tree is not as clang-format
# (.clang-format: Google style, 100 columns) would write it. To fix:
#   clang-format -i $(git ls-files '*.cc' '*.h')
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h')
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]})); then
  echo "check_format: ${#bad[@]} file(s) not clang-formatted: ${bad[*]}" >&2
  echo "check_format: run: clang-format -i \$(git ls-files '*.cc' '*.h')" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files clang-formatted" >&2
