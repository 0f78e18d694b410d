#!/usr/bin/env bash
# Bit rot on a node's disk: bytes of a stored page are overwritten behind the
# node's back. `ukaictl scrub` finds the page, marks that replica stale and a
# repair copies it back; a second scrub finds nothing. Rot met by a read is
# never returned and is repaired too, and the repaired node alone serves
# every acknowledged write.
source "$(dirname "$0")/../lib.sh"
start_cluster
w=$top/tests/ack_writer.py
log=$cluster_dir/acks.log

ukaictl disk create sc --size 64M --nodes n1,n2 >/dev/null
python3 "$w" write "$UKAI_MOUNT/sc" "$log" --tag data --count 32
id=$(ukaictl --json disk info sc | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
obj=$cluster_dir/data/n2/objects/$id/2.0
check "n2 stores block 2 in $obj" test -s "$obj"
rot() {  # rot NODE BLOCK PAGE: 16 bytes of the page overwritten behind the node's back
  python3 - "$cluster_dir/data/$1/objects/$id/$2.0" "$3" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    at = int(sys.argv[2]) * 4096 + 100
    f.seek(at)
    old = f.read(16)
    f.seek(at)
    f.write(bytes(b ^ 0xA5 for b in old))
    f.flush()
    os.fsync(f.fileno())
PY
}
rot n2 2 3

scrub=$(ukaictl --json scrub sc --wait)
summary=$(python3 -c '
import json, sys
j = json.loads(sys.argv[1])
print(j["state"], j["pages_checked"], j["bad_pages"], j["mismatched_pages"], "|", "; ".join(j["findings"]))' "$scrub")
log "scrub: $summary"
check "the scrub ends" grep -q '^done ' <<<"$summary"
check "it finds one page failing its checksum, on n2 in block 2" \
  grep -Eq '^done [0-9]+ 1 0 \| .*block 2 on n2: 1 page\(s\) fail' <<<"$summary"
caught_up() {
  ukaictl --json disk info sc | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(d["stale_replica_blocks"] + d["syncing_blocks"] != 0)'
}
check "the repair it starts makes every replica clean again within 60 s" wait_until 60 caught_up
again=$(ukaictl --json scrub sc --wait | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["state"], j["bad_pages"])')
check_eq "a second scrub finds nothing" "done 0" "$again"
# Rot on n1 now, and read: the read is right whichever replica it tries
# first (one that meets the rot marks it stale, and a repair scan fixes it).
rot n1 5 0
check "reads never return a rotten page" python3 "$w" check "$UKAI_MOUNT/sc" "$log"
found=$(ukaictl --json scrub sc --wait | python3 -c 'import json, sys; print(json.load(sys.stdin)["bad_pages"])')
log "a scrub after the read found $found rotten page(s) (0 if the read met it first)"
check "the rot is gone within 60 s" wait_until 60 caught_up
again=$(ukaictl --json scrub sc --wait | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["state"], j["bad_pages"])')
check_eq "and a scrub then finds nothing" "done 0" "$again"
"$cluster_tool" stop-node --dir "$cluster_dir" n1
check "n2 alone serves every acknowledged write" python3 "$w" check "$UKAI_MOUNT/sc" "$log"
"$cluster_tool" start-node --dir "$cluster_dir" n1
check_error "a scrub of an unknown disk is refused" "no disk named 'nosuch'" ukaictl scrub nosuch
