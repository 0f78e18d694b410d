#!/usr/bin/env bash
# Try UKAI in one command: installs what is missing, builds, starts a local
# cluster on loopback (a private ZooKeeper, nodes n1 n2 in site-a and n3 in
# site-b, a FUSE frontend), makes a demo disk and says how to use it.
#   UKAI_QUICKSTART_DIR  where the cluster lives (default: .cluster in the repo)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${UKAI_QUICKSTART_DIR:-$top/.cluster}
"$top/deploy/build.sh"
if "$top/deploy/local-cluster.sh" status --dir "$dir" >/dev/null 2>&1; then
  echo "quickstart: a cluster already runs in $dir; reusing it" >&2
  source <(grep -E '^UKAI_(ZK|ADMIN|MOUNT|TLS_DIR|CA_DIR|RUN_DIR)=' "$dir/cluster.env" | sed 's/^/export /')
else
  "$top/deploy/local-cluster.sh" stop --dir "$dir" >/dev/null 2>&1 || true
  eval "$("$top/deploy/local-cluster.sh" start --dir "$dir")"
  export UKAI_ZK UKAI_ADMIN UKAI_MOUNT UKAI_TLS_DIR UKAI_CA_DIR UKAI_RUN_DIR
fi
ukaictl=$top/build/bin/ukaictl
if ! "$ukaictl" disk info demo >/dev/null 2>&1; then
  "$ukaictl" disk create demo --size 10G --replicas 2 >&2
fi
"$ukaictl" node list
echo
"$ukaictl" disk info demo
cat <<EOF

UKAI is running. In this shell:

  export UKAI_ZK=$UKAI_ZK UKAI_ADMIN=$UKAI_ADMIN UKAI_MOUNT=$UKAI_MOUNT
  export UKAI_TLS_DIR=$UKAI_TLS_DIR UKAI_CA_DIR=$UKAI_CA_DIR UKAI_RUN_DIR=${UKAI_RUN_DIR:-}
  export PATH=$top/build/bin:\$PATH

The demo disk is the file $UKAI_MOUNT/demo (10 GiB, thin, 2 replicas), root's with mode
0600 (chown it to the user your QEMU runs as; libvirt does that itself). Use it like any
raw image:

  qemu-system-x86_64 -m 1G -drive file=$UKAI_MOUNT/demo,format=raw,cache=none,aio=native
  qemu-img convert -O raw your-image.qcow2 $UKAI_MOUNT/demo
  ukaictl disk create vm2 --size 20G --sites site-a,site-b   # appears at $UKAI_MOUNT/vm2
  ukaictl disk resize demo --size 20G                         # online
  deploy/local-cluster.sh mount --dir $dir --site site-b /mnt/ukai-b   # a second hypervisor

Every connection is mutual TLS: the cluster's CA is in $UKAI_CA_DIR, this
shell's admin certificate in $UKAI_TLS_DIR (docs/SECURITY.md). A second
hypervisor's certificate: ukaictl cert issue --role frontend --id hv2 --out DIR

Stop everything with: deploy/local-cluster.sh stop --dir $dir
EOF
