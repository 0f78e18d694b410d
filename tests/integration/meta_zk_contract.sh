#!/usr/bin/env bash
# The MetaStore contract test against a real ZooKeeper (the unit tier runs it
# against the in-memory store only).
source "$(dirname "$0")/../lib.sh"
start_cluster
check "MemMetaStore and ZkMetaStore pass the same contract" \
  env UKAI_TEST_ZK="$UKAI_ZK" "$UKAI_BIN/meta_test" --gtest_brief=1
