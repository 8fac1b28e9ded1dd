#!/usr/bin/env bash
# The long chaos run (issue 8, item 11): random fault trials on a release build — SIGKILLs
# at random moments of backup, restore, prune and copy; damaged chunks, manifests and
# config.json; full disks under the repository and under a restore — each followed by
# the checks in crates/cli/tests/it/chaos/faults.rs. The short run is part of
# `cargo test` (scripts/test.sh). Needs root for the tmpfs mounts of the full-disk
# trials (they are skipped, with the reason printed, otherwise).
#
#   scripts/chaos.sh                       200 trials of every kind on SQLite
#   OSTLER_CHAOS_TRIALS=20 scripts/chaos.sh
#   OSTLER_CHAOS_ENGINES=sqlite,postgres,mysql scripts/chaos.sh
#   OSTLER_CHAOS_SEED=123 OSTLER_CHAOS_KINDS=damage-chunk OSTLER_CHAOS_TRIALS=1 scripts/chaos.sh
#
# The table and every trial go to $OSTLER_CHAOS_REPORT (default target/chaos-report.md).
set -euo pipefail
cd "$(dirname "$0")/.."

export OSTLER_CHAOS_TRIALS=${OSTLER_CHAOS_TRIALS:-200}
export OSTLER_CHAOS_KINDS=${OSTLER_CHAOS_KINDS:-all}
export OSTLER_CHAOS_ENGINES=${OSTLER_CHAOS_ENGINES:-sqlite}
export OSTLER_CHAOS_REPORT=${OSTLER_CHAOS_REPORT:-$PWD/target/chaos-report.md}
# Chosen here when not given, so it is known even if the run is cut short.
export OSTLER_CHAOS_SEED=${OSTLER_CHAOS_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}

echo "chaos: $OSTLER_CHAOS_TRIALS trials of $OSTLER_CHAOS_KINDS on $OSTLER_CHAOS_ENGINES, seed $OSTLER_CHAOS_SEED"
cargo build --release -p ostler -p guestbook
status=0
cargo test --release -p ostler --test it -- chaos_trials_keep_data_safe --nocapture || status=$?
echo "report: $OSTLER_CHAOS_REPORT"
exit "$status"
