#!/usr/bin/env bash
# labels: slow
# UKAI on separate hosts, made with network namespaces: five "hosts" on one
# bridge (the network a tenant or a stranger can reach), the four cluster
# hosts also on a second, private bridge that only ZooKeeper listens on
# (deploy/MULTIHOST.md "Keep ZooKeeper on the private network"):
#
#   h1 tokyo  ZooKeeper 1, ukai-node@t1, ukai-fuse@ukai (frontend hv1)
#   h2 tokyo  ZooKeeper 2, ukai-node@t2, the operator's ukaictl
#   h3 osaka  ZooKeeper 3, ukai-node@o1, ukai-fuse@ukai (frontend hv3)
#   h4 osaka  ukai-node@o2
#   x         a stranger on the public network
#
# Every daemon is started with the command line of its systemd unit in
# deploy/systemd/ and the settings deploy/MULTIHOST.md writes, with the
# unit's paths (/usr/local/bin, /etc/ukai, /run/ukai, /var/lib/ukai, /mnt)
# moved under the host's directory. Processes enter only the network
# namespace (nsenter --net), so the mounts are visible to the checks.
source "$(dirname "$0")/../lib.sh"
[[ $(id -u) == 0 ]] || { echo "multihost: needs root (ip netns, FUSE)" >&2; exit 1; }
command -v nsenter >/dev/null || { echo "multihost: needs nsenter (util-linux)" >&2; exit 1; }

work=$(mktemp -d "${UKAI_TEST_TMP:-/var/tmp}/ukai-multihost.XXXXXX")
chmod 711 "$work"  # user nobody passes through to a mount point below
tag=um$$
declare -A pub=([h1]=10.77.1.11 [h2]=10.77.1.12 [h3]=10.77.2.21 [h4]=10.77.2.22 [x]=10.77.9.9)
declare -A priv=([h1]=10.78.0.11 [h2]=10.78.0.12 [h3]=10.78.0.21 [h4]=10.78.0.22)
zk="${priv[h1]}:2181,${priv[h2]}:2181,${priv[h3]}:2181"
pids=() mounts=() qemus=()

on() { local h=$1; shift; nsenter --net="/run/netns/$tag-$h" -- "$@"; }
ns() { echo "nsenter --net=/run/netns/$tag-$1 --"; }  # for check_error: $(ns HOST) COMMAND...
refused() { ! "$@" 2>/dev/null; }
spawn() {  # spawn HOST NAME COMMAND...: a daemon on HOST, logged in logs/NAME.log
  local h=$1 name=$2; shift 2
  # nsenter execs the daemon: $! is the daemon's pid.
  nsenter --net="/run/netns/$tag-$h" -- "$@" >>"$work/logs/$name.log" 2>&1 </dev/null &
  pids+=($!)
}

teardown() {
  local rc=$?
  set +e
  for p in "${qemus[@]}"; do kill -TERM "$p" 2>/dev/null; done
  exec 7>&- 8>&-
  for m in "${mounts[@]}"; do fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}" "${qemus[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  for h in sw h1 h2 h3 h4 x; do ip netns del "$tag-$h" 2>/dev/null; done
  if grep -HE '^[0-9T:.-]+ ERROR |AddressSanitizer|runtime error:|terminate called' "$work"/logs/*.log >&2; then
    fail "ERROR lines or crashes in daemon logs"
  fi
  if ((failures == 0 && rc == 0)); then rm -rf "$work"; else log "kept $work for inspection"; fi
  if ((failures > 0 || rc != 0)); then log "FAILED ($failures failed checks, exit $rc)"; exit 1; fi
  log "PASSED"
}
trap teardown EXIT
mkdir -p "$work/logs"

# ---------------------------------------------------------------- the network
make_network() {
  ip netns add "$tag-sw"
  for br in pub priv; do
    ip -n "$tag-sw" link add "$br" type bridge
    ip -n "$tag-sw" link set "$br" up
  done
  for h in h1 h2 h3 h4 x; do
    ip netns add "$tag-$h"
    ip -n "$tag-$h" link set lo up
    plug "$h" pub eth0 "${pub[$h]}/16"
    if [[ -n ${priv[$h]:-} ]]; then plug "$h" priv eth1 "${priv[$h]}/24"; fi
  done
}
plug() {  # plug HOST BRIDGE IFNAME ADDRESS/PREFIX
  local h=$1 br=$2 ifname=$3 addr=$4
  local end="v$br-$h"
  # Both ends made here, then one moved: made straight in HOST, the peer
  # can collide with an interface index there.
  ip -n "$tag-sw" link add "$end" type veth peer name "p$br-$h"
  ip -n "$tag-sw" link set "p$br-$h" netns "$tag-$h" name "$ifname"
  ip -n "$tag-sw" link set "$end" master "$br" up
  ip -n "$tag-$h" addr add "$addr" dev "$ifname"
  ip -n "$tag-$h" link set "$ifname" up
}
make_network

# ---------------------------------------------------------------- ZooKeeper
start_zk() {  # start_zk HOST MYID: zoo.cfg as deploy/MULTIHOST.md writes it
  local h=$1 id=$2 d=$work/$1/zookeeper
  mkdir -p "$d/data"
  echo "$id" > "$d/data/myid"
  cat > "$d/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$d/data
clientPort=2181
clientPortAddress=${priv[$h]}
server.1=${priv[h1]}:2888:3888
server.2=${priv[h2]}:2888:3888
server.3=${priv[h3]}:2888:3888
4lw.commands.whitelist=srvr,ruok
EOF
  spawn "$h" "zk$id" java -Xmx256m -Dzookeeper.admin.enableServer=false \
    -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg"
}
zk_serving() { on h2 bash -c "exec 3<>/dev/tcp/${priv[h1]}/2181 && echo srvr >&3 && grep -qE 'Mode: (leader|follower)' <&3"; }
start_zk h1 1; start_zk h2 2; start_zk h3 3

# ---------------------------------------------------------------- certificates
# deploy/MULTIHOST.md "Certificates": on the operator's host, then copied.
ca=$work/h2/etc/ca ops=$work/h2/ops-tls
ukaictl ca init --ca "$ca" --name multihost >/dev/null
issue() {  # issue ROLE ID HOST DIR: the identity's TLS directory /etc/ukai/tls/DIR on HOST
  mkdir -p -m 700 "$work/$3/etc/tls"
  ukaictl cert issue --ca "$ca" --role "$1" --id "$2" --out "$work/$3/etc/tls/$4" >/dev/null
}
issue node t1 h1 node-t1; issue node t2 h2 node-t2; issue node o1 h3 node-o1; issue node o2 h4 node-o2
issue frontend hv1 h1 frontend-ukai; issue frontend hv3 h3 frontend-ukai
ukaictl cert issue --ca "$ca" --role admin --id ops --out "$ops" >/dev/null
check "ZooKeeper's ensemble serves on the private network" wait_until 60 zk_serving

# ---------------------------------------------------------------- the units
# unit_command UNIT INSTANCE HOST: the unit's ExecStart for INSTANCE on HOST.
unit_command() {
  local unit=$top/deploy/systemd/$1 inst=$2 root=$work/$3 line
  line=$(sed -n 's/^ExecStart=//p' "$unit")
  line=${line//%i/$inst}
  line=${line//\/usr\/local\/bin\//$UKAI_BIN/}
  line=${line//\/etc\/ukai\//$root/etc/}
  line=${line//\/run\/ukai/$root/run}
  line=${line//\/var\/lib\/ukai\//$root/var/}
  line=${line//\/mnt\//$root/mnt/}
  echo "$line"
}
# run_unit UNIT INSTANCE HOST ENVFILE: starts it with the unit's environment.
run_unit() {
  local cmd
  cmd=$(unit_command "$1" "$2" "$3")
  # shellcheck disable=SC1090
  cmd=$(set -a; source "$4"; eval "echo $cmd")
  # shellcheck disable=SC2086
  spawn "$3" "$3-$2" $cmd
}
start_node() {  # start_node HOST ID SITE: /etc/ukai/node-ID.env as MULTIHOST.md writes it
  local h=$1 id=$2 site=$3 env=$work/$1/etc/node-$2.env
  cat > "$env" <<EOF
UKAI_SITE=$site
UKAI_LISTEN=${pub[$h]}:7700
UKAI_IO_LISTEN=${pub[$h]}:7701
UKAI_DATA=$work/$h/var/$id
UKAI_ZK=$zk
UKAI_CAPACITY=2G
EOF
  run_unit ukai-node@.service "$id" "$h" "$env"
}
start_frontend() {  # start_frontend HOST SITE: /etc/ukai/fuse.env as MULTIHOST.md writes it
  local h=$1 env=$work/$1/etc/fuse.env
  printf 'UKAI_SITE=%s\nUKAI_ZK=%s\n' "$2" "$zk" > "$env"
  mkdir -p "$work/$h/mnt/ukai"  # the unit's ExecStartPre
  mounts+=("$work/$h/mnt/ukai")
  run_unit ukai-fuse@.service ukai "$h" "$env"
}
start_node h1 t1 tokyo; start_node h2 t2 tokyo; start_node h3 o1 osaka; start_node h4 o2 osaka
admin() { on h2 env UKAI_ADMIN="${pub[h1]}:7700,${pub[h2]}:7700,${pub[h3]}:7700" UKAI_TLS_DIR="$ops" ukaictl "$@"; }
four_up() { [[ $(admin --json node list | grep -c '"up": true') == 4 ]]; }
check "four nodes in two sites come up over TLS" wait_until 60 four_up
start_frontend h1 tokyo; start_frontend h3 osaka
m1=$work/h1/mnt/ukai m3=$work/h3/mnt/ukai
check "both frontends mount" wait_until 30 bash -c "mountpoint -q $m1 && mountpoint -q $m3"

# ---------------------------------------------------------------- end to end
admin disk create vm1 --size 64M --replicas 2 --sites tokyo,osaka >/dev/null
head -c 8M /dev/urandom > "$work/pattern"
check "hv1 writes a disk with a replica in each site" \
  dd if="$work/pattern" of="$m1/vm1" bs=1M oflag=direct conv=notrunc,fsync status=none
same_as_pattern() { cmp -s <(dd if="$1" bs=1M count=8 iflag=direct status=none) "$work/pattern"; }
check "hv3, in the other site, reads it back byte-exact over TLS" same_as_pattern "$m3/vm1"

admin disk create rel --size 32M --replicas 2 --sites tokyo >/dev/null
dd if="$work/pattern" of="$m1/rel" bs=1M oflag=direct conv=notrunc,fsync status=none
job=$(admin relocate rel --sites osaka)
check "a relocation from tokyo to osaka finishes" admin job wait "$job"
check "and the disk reads back byte-exact from osaka" same_as_pattern "$m3/rel"
holders=$(admin --json disk info rel | python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin)["node_bytes"])))')
check_eq "its blocks are on the osaka nodes only" "o1 o2" "$holders"

# ---------------------------------------------------------------- live migration
# As tests/integration/migrate.sh, with QEMU on h1 and h3 and the migration
# stream on the public network.
as --32 -o "$work/ring_writer.o" "$top/tests/guest/ring_writer.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$work/ring_writer.bin" "$work/ring_writer.o"
admin disk create vm --size 1M --replicas 2 --sites tokyo,osaka >/dev/null
dd if="$work/ring_writer.bin" of="$m1/vm" conv=notrunc,fsync status=none
qmp() { python3 "$top/tests/qmp.py" "$@"; }
run_qemu() {  # run_qemu HOST NAME MOUNT [QEMU ARGS...]
  local h=$1 name=$2 mnt=$3; shift 3
  : > "$work/$name.serial"
  nsenter --net="/run/netns/$tag-$h" -- qemu-system-x86_64 -accel tcg -m 32 -display none -monitor none -no-reboot \
    -drive "file=$mnt/vm,format=raw,cache=none,aio=threads,if=ide" \
    -serial "file:$work/$name.serial" -qmp "unix:$work/$name.qmp,server=on,wait=off" "$@" \
    2> "$work/$name.err" &
  qemus+=($!)
}
writes() { grep -c '^W' "$work/$1.serial" || true; }
run_qemu h1 src "$m1"
exec 7<>"$m1/vm"  # the source host keeps the disk open for writing
src_writes() { test "$(writes src)" -ge 3; }
dst_writes() { test "$(writes dst)" -ge 3; }
check "the guest boots on hv1 and writes" wait_until 60 src_writes
run_qemu h3 dst "$m3" -incoming "tcp:${pub[h3]}:4444"
wait_until 20 test -S "$work/dst.qmp" || true
check "hv1's QEMU migrates to hv3's" qmp "$work/src.qmp" migrate "{\"uri\": \"tcp:${pub[h3]}:4444\"}" >/dev/null
migrated() { qmp "$work/src.qmp" query-migrate | grep -q '"status": "completed"'; }
check "the migration completes" wait_until 120 migrated
check "the guest goes on writing on hv3" wait_until 60 dst_writes
check "no guest read ever mismatched or failed" bash -c "! grep -qE 'BAD|ERR' $work/src.serial $work/dst.serial"
writer_site=$(admin --json disk info vm | python3 -c 'import json, sys; print(json.load(sys.stdin)["writer"]["site"])')
check_eq "hv3 holds the writer epoch" osaka "$writer_site"
err=$(dd if=/dev/urandom of="$m1/vm" bs=4096 seek=200 count=1 oflag=direct conv=notrunc 2>&1) && rc=0 || rc=$?
exec 7>&-
check "hv1's write after the hand-over fails with EIO" grep -q "Input/output error" <<<"$err"

# ---------------------------------------------------------------- attacks
# A stranger on the public network.
check "ZooKeeper is not on the public network" \
  refused on x timeout 3 bash -c "exec 3<>/dev/tcp/${pub[h1]}/2181"
check "nor reachable from it at its private address" \
  refused on x timeout 3 bash -c "exec 3<>/dev/tcp/${priv[h1]}/2181"
check "a plaintext ukaictl reaches no node, warned that it is plaintext" bash -c \
  "! $(ns x) env UKAI_ADMIN=${pub[h1]}:7700 $UKAI_BIN/ukaictl --insecure-plaintext disk delete vm1 --force 2>$work/plain.err &&
   grep -q 'WARN ukaictl: --insecure-plaintext' $work/plain.err &&
   tail -1 $work/plain.err | grep -q 'cannot reach the admin service'"
ukaictl ca init --ca "$work/x/evil-ca" >/dev/null
ukaictl cert issue --ca "$work/x/evil-ca" --role admin --id ops --out "$work/x/evil" >/dev/null
check_error "an admin certificate of another CA reaches no node" "cannot reach the admin service" \
  $(ns x) env UKAI_ADMIN="${pub[h1]}:7700" ukaictl --tls-dir "$work/x/evil" disk delete vm1 --force
# The client waits a second so it reads the node's answer to a handshake
# that offered no certificate.
check "block I/O between hosts is TLS 1.3 with a node's certificate, and refuses a client without one" bash -c \
  "(sleep 1) | $(ns x) timeout 5 openssl s_client -connect ${pub[h1]}:7701 -CAfile $ca/ca.pem \
     -verify_hostname node.ukai >$work/sclient.out 2>&1; grep -q 'TLSv1.3' $work/sclient.out &&
   grep -q 'Verify return code: 0' $work/sclient.out && grep -q 'alert certificate required' $work/sclient.out"

# A cluster member with the wrong role, or a leaked epoch.
fe3=$work/h3/etc/tls/frontend-ukai
check_error "a frontend may not delete a disk" "refused: frontend hv3 may not call Admin.DeleteDisk" \
  $(ns h3) env UKAI_ADMIN="${pub[h1]}:7700" ukaictl --tls-dir "$fe3" disk delete vm1 --force
check_error "hv3 writing vm1 with hv1's epoch is refused" "does not hold the writer epoch" \
  $(ns h3) ukai-probe --zk "$zk" --tls-dir "$fe3" --disk vm1 write
check_error "a frontend may not ask for a copy" "frontend hv3 may not call NodeCopy.CopyBlock" \
  $(ns h3) ukai-probe --zk "$zk" --tls-dir "$fe3" --disk vm1 copy --source-address "${pub[x]}:7701"
check_error "a node may not name a forged copy source" "is at .*, not ${pub[x]}:7701" \
  $(ns h4) ukai-probe --zk "$zk" --tls-dir "$work/h4/etc/tls/node-o2" --disk vm1 copy --source-address "${pub[x]}:7701"
issue node n9 h4 node-n9
check_error "a node certificate of no registered node may not copy at all" "node n9 is not a registered node" \
  $(ns h4) ukai-probe --zk "$zk" --tls-dir "$work/h4/etc/tls/node-n9" --disk vm1 copy
check "vm1 is unchanged, on both sites" bash -c \
  "$(declare -f same_as_pattern); work=$work; same_as_pattern $m1/vm1 && same_as_pattern $m3/vm1"

# ZooKeeper from a cluster host without the credential.
zkcli() { on h2 timeout 60 /usr/share/zookeeper/bin/zkCli.sh -server "${priv[h2]}:2181" "$@" 2>&1; }
check "an anonymous zkCli on the private network cannot list /ukai" bash -c \
  "$(declare -f on zkcli); tag=$tag; $(declare -p priv); zkcli ls /ukai | grep -q 'Insufficient permission'"
check "nor delete a disk's name" bash -c \
  "$(declare -f on zkcli); tag=$tag; $(declare -p priv); zkcli deleteall /ukai/names/vm1 | grep -q 'Insufficient permission'"
check "vm1 is still there" bash -c "$(declare -f on admin); tag=$tag ops=$ops; $(declare -p pub); admin disk info vm1 >/dev/null"

# A local user of a hypervisor.
check "user nobody on hv1 cannot open vm1" \
  refused setpriv --reuid=nobody --regid=nogroup --clear-groups dd if="$m1/vm1" of=/dev/null bs=4k count=1 iflag=direct
