#!/usr/bin/env bash
# Mutual TLS and roles on the gRPC services of a local cluster (made secured
# by local-cluster.sh): who may call what, refusals that say why and change
# nothing, revocation taking effect on the next call, a node's certificate
# renewed without a restart, and the audit log naming the caller.
source "$(dirname "$0")/../lib.sh"
start_cluster
work=$cluster_dir/work; mkdir -p "$work"
admin=$(node_addr n1)

check "the admin's key is private" test "$(stat -c %a "$UKAI_TLS_DIR/key.pem")" = 600
check "the CA's key is private" test "$(stat -c %a "$UKAI_CA_DIR/ca.key")" = 600
check "a node's TLS directory is private" test "$(stat -c %a "$cluster_dir/tls/n1")" = 700
check "the admin may create a disk" ukaictl disk create d1 --size 64M

# Other identities of the same cluster.
ukaictl cert issue --role frontend --id hv9 --out "$work/hv9" >/dev/null
ukaictl cert issue --role backup --id bk1 --out "$work/bk1" >/dev/null
ukaictl cert issue --role admin --id ops2 --out "$work/ops2" >/dev/null
check_error "a frontend may not create a disk" "refused: frontend hv9 may not call Admin.CreateDisk \(admin only\)" \
  ukaictl --tls-dir "$work/hv9" disk create evil --size 1G
check_error "nor delete one" "refused: frontend hv9 may not call Admin.DeleteDisk" \
  ukaictl --tls-dir "$work/hv9" disk delete d1 --force
check_error "nor read the catalog" "refused: frontend hv9 may not call Admin.ListDisks" \
  ukaictl --tls-dir "$work/hv9" disk list
check "a backup identity may read the catalog" ukaictl --tls-dir "$work/bk1" disk info d1
check_error "but not snapshot" "refused: backup bk1 may not call Admin.CreateSnapshot" \
  ukaictl --tls-dir "$work/bk1" snap create d1@s1
check_error "nor drain a node" "refused: backup bk1 may not call Admin.DrainNode" \
  ukaictl --tls-dir "$work/bk1" node drain n1
check "none of that changed the catalog" bash -c \
  '[[ $(ukaictl --json disk list | grep -c "\"name\"") == 1 ]] && ukaictl disk info d1 >/dev/null &&
   ! ukaictl --json snap list d1 | grep -q s1'

# No certificate, a plaintext client, another cluster's CA.
check_error "no credentials at all" "no TLS credentials" env -u UKAI_TLS_DIR ukaictl disk list
check "a plaintext client reaches nothing, warned that it is plaintext" bash -c \
  "! env -u UKAI_TLS_DIR ukaictl --insecure-plaintext disk list 2>$work/plain.err &&
   grep -q 'WARN ukaictl: --insecure-plaintext' $work/plain.err &&
   tail -1 $work/plain.err | grep -q 'cannot reach the admin service'"
ukaictl ca init --ca "$work/evil-ca" >/dev/null
ukaictl cert issue --ca "$work/evil-ca" --role admin --id admin --out "$work/evil" >/dev/null
check_error "an admin certificate from another CA reaches nothing" "cannot reach the admin service" \
  ukaictl --tls-dir "$work/evil" disk delete d1 --force
check "d1 is still there" ukaictl disk info d1
check "the nodes speak TLS 1.3" bash -c "timeout 5 openssl s_client -connect $admin \
  -cert $UKAI_TLS_DIR/cert.pem -key $UKAI_TLS_DIR/key.pem -CAfile $UKAI_CA_DIR/ca.pem -alpn h2 \
  </dev/null 2>/dev/null | grep -q 'TLSv1.3'"

# Revocation: on the next call, through the crl.pem every TLS directory links to.
check "ops2 may create before it is revoked" ukaictl --tls-dir "$work/ops2" disk create d2 --size 64M
ukaictl cert revoke --role admin --id ops2 >/dev/null
sleep 1.2  # nodes look at crl.pem at most once a second
check_error "a revoked admin is refused" "revoked" ukaictl --tls-dir "$work/ops2" disk delete d2 --force
check "d2 is still there" ukaictl disk info d2
check_eq "cert list shows it revoked" "revoked" \
  "$(ukaictl --json cert list | python3 -c 'import json,sys; print([c["state"] for c in json.load(sys.stdin) if c["id"]=="ops2"][0])')"

# Renewal: a new certificate for n1 in its TLS directory is served without a restart.
served_serial() {
  timeout 5 openssl s_client -connect "$admin" -cert "$UKAI_TLS_DIR/cert.pem" -key "$UKAI_TLS_DIR/key.pem" \
    -CAfile "$UKAI_CA_DIR/ca.pem" -alpn h2 </dev/null 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2
}
serves_serial() { [[ $(served_serial) == "$1" ]]; }
pid_before=$(node_pid n1)
new_serial=$(ukaictl --json cert issue --role node --id n1 --out "$cluster_dir/tls/n1" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["serial"])')
check "n1 serves its renewed certificate within 15 s" wait_until 15 serves_serial "$new_serial"
check "without a restart" test "$(node_pid n1)" = "$pid_before"
check "and still answers" ukaictl --admin "$admin" disk info d1

# ZooKeeper: every znode UKAI made is the cluster identities' only.
zkcli() { timeout 60 /usr/share/zookeeper/bin/zkCli.sh -server "${UKAI_ZK%%,*}" "$@" 2>&1; }
check "an anonymous ZooKeeper client cannot list /ukai" bash -c \
  "$(declare -f zkcli); zkcli ls /ukai | grep -q 'Insufficient permission'"
check "nor read a disk's record" bash -c \
  "$(declare -f zkcli); zkcli get /ukai/disks/1 | grep -q 'Insufficient permission'"
check "nor delete a disk's name" bash -c \
  "$(declare -f zkcli); zkcli deleteall /ukai/names/d1 | grep -q 'Insufficient permission'"
check "nor rewrite a node's record" bash -c \
  "$(declare -f zkcli); zkcli set /ukai/nodes/n1 evil | grep -q 'Insufficient permission'"
check "d1 is still there after that" ukaictl disk info d1
check "the ZooKeeper credential is private" test "$(stat -c %a "$UKAI_TLS_DIR/zk-auth")" = 600

# The audit log: each mutation, with its caller, on the node that served it.
check "the audit log names the caller of a mutation" \
  grep -qE 'AUDIT admin admin Admin.CreateDisk \{name: "d1".*: OK' "$cluster_dir"/logs/n*.log
check "refused calls never reach a handler, so nothing of hv9 is audited as done" bash -c \
  "! grep -q 'AUDIT frontend hv9' $cluster_dir/logs/n*.log"

# The mount: the kernel checks each disk file's owner and mode
# (default_permissions), and chown/chmod are kept across a remount.
chmod 711 "$cluster_dir"  # another user may pass through to the mount point
f=$UKAI_MOUNT/d1
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
refused() { ! "$@" 2>/dev/null; }
check_eq "a disk file is the mounting user's and private" "root root 600" "$(stat -c '%U %G %a' "$f")"
check "another local user cannot read it" refused as_nobody dd if="$f" of=/dev/null bs=4k count=1 iflag=direct
check "nor write it" refused as_nobody dd if=/dev/zero of="$f" bs=4k count=1 oflag=direct conv=notrunc
check "nor take it" refused as_nobody chown nobody "$f"
check "nor create a file: the directory is read-only" refused as_nobody touch "$UKAI_MOUNT/new"
check "root gives it to the user, as libvirt does for a VM's QEMU" chown nobody:nogroup "$f"
check "who then writes it" as_nobody dd if=/dev/urandom of="$f" bs=4k count=1 oflag=direct conv=notrunc
check "and reads it" as_nobody dd if="$f" of=/dev/null bs=4k count=1 iflag=direct
check "and may narrow its mode" as_nobody chmod 0400 "$f"
check "which the kernel then enforces on its owner too" refused as_nobody dd if=/dev/zero of="$f" bs=4k count=1 oflag=direct conv=notrunc
ukaictl snap create d1@s1 >/dev/null
wait_until 5 test -e "$UKAI_MOUNT/d1@s1"
chmod 0666 "$UKAI_MOUNT/d1@s1"
check_eq "a snapshot never shows a write bit" "444" "$(stat -c %a "$UKAI_MOUNT/d1@s1")"
check "and no user may write it" refused as_nobody dd if=/dev/zero of="$UKAI_MOUNT/d1@s1" bs=4k count=1 oflag=direct conv=notrunc
"$cluster_tool" remount --dir "$cluster_dir" fuse >/dev/null
check_eq "owner and mode survive a remount" "nobody nogroup 400" "$(stat -c '%U %G %a' "$f")"
check_eq "and the snapshot's" "444" "$(stat -c %a "$UKAI_MOUNT/d1@s1")"
check "the mount's access table is private" test "$(stat -c %a "$cluster_dir/state/fuse/access")" = 600
