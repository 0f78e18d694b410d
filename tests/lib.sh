# Shared helpers of the integration tests (sourced). Each test starts its own
# cluster with deploy/local-cluster.sh in a fresh directory and stops it on
# exit; a test fails on any failed check or any ERROR line in a daemon log.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export UKAI_BIN=${UKAI_BIN:-$top/build/bin}  # local-cluster.sh uses the same binaries
export PATH=$UKAI_BIN:$PATH
cluster_tool=$top/deploy/local-cluster.sh
test_name=$(basename "$0" .sh)
failures=0

log() { echo "[$test_name] $*" >&2; }
fail() { echo "[$test_name] FAIL: $*" >&2; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1; shift
  if "$@"; then log "ok: $what"; else fail "$what"; fi
}
check_eq() {  # check_eq DESCRIPTION EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then log "ok: $1"; else fail "$1: expected '$2', got '$3'"; fi
}

# check_error DESCRIPTION PATTERN COMMAND...: the command must exit ${want_rc:-1}
# (not crash, not succeed) within 60 s, printing exactly one line matching
# PATTERN on stderr.
check_error() {
  local what=$1 pattern=$2; shift 2
  local err rc=0 want=${want_rc:-1}
  err=$(timeout 60 "$@" 2>&1 >/dev/null) || rc=$?
  if [[ $rc -ne $want ]]; then fail "$what: exit $rc (want $want); stderr: $err"; return; fi
  if [[ $(printf '%s\n' "$err" | wc -l) -ne 1 ]]; then fail "$what: stderr is not one line: $err"; return; fi
  if ! grep -qiE -- "$pattern" <<<"$err"; then fail "$what: stderr '$err' does not match /$pattern/"; return; fi
  log "ok: $what ($err)"
}

start_cluster() {  # start_cluster [local-cluster.sh start options]
  cluster_dir=$(mktemp -d "${UKAI_TEST_TMP:-/var/tmp}/ukai-$test_name.XXXXXX")
  trap finish EXIT
  eval "$("$cluster_tool" start --dir "$cluster_dir" "$@")"
  export UKAI_ZK UKAI_ADMIN UKAI_MOUNT  # and UKAI_TLS_DIR, UKAI_CA_DIR: ukaictl is the admin
  log "cluster in $cluster_dir"
}

node_pid() { cat "$cluster_dir/pids/$1.pid"; }
node_addr() { grep "^NODE_$1_PORT=" "$cluster_dir/cluster.env" | sed 's/.*=/127.0.0.1:/'; }

finish() {
  local rc=$?
  set +e
  if [[ -n ${cluster_dir:-} ]]; then
    "$cluster_tool" stop --dir "$cluster_dir" >/dev/null 2>&1
    # Our own log format is "<time> ERROR <message>": a broken invariant.
    if grep -HE '^[0-9T:.-]+ ERROR ' "$cluster_dir"/logs/*.log >&2; then
      fail "ERROR lines in daemon logs"
    fi
    if grep -HE 'AddressSanitizer|runtime error:|terminate called' "$cluster_dir"/logs/*.log >&2; then
      fail "sanitizer report or crash in daemon logs"
    fi
    if ((failures == 0 && rc == 0)); then rm -rf "$cluster_dir"; else log "kept $cluster_dir for inspection"; fi
  fi
  if ((failures > 0 || rc != 0)); then
    log "FAILED ($failures failed checks, exit $rc)"
    exit 1
  fi
  log "PASSED"
}

# wait_until SECONDS COMMAND...: polls every 0.1 s.
wait_until() {
  local limit=$1; shift
  local end=$(($(date +%s%N) + limit * 1000000000))
  until "$@" 2>/dev/null; do
    (($(date +%s%N) < end)) || return 1
    sleep 0.1
  done
}
