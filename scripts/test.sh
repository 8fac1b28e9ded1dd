#!/usr/bin/env bash
# The one command that checks the whole workspace, the way CI does (.ci/run):
# install what the tests need, build everything, run every test, then clippy and
# rustfmt. The tests start their own throwaway database servers on free ports;
# they neither need nor touch a system PostgreSQL or MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."

stage_started=$SECONDS
banner() {
    printf '\n======== %s ========\n' "$*"
    stage_started=$SECONDS
}
done_in() {
    printf -- '-------- done in %ss --------\n' "$((SECONDS - stage_started))"
}

banner "1/5 install test dependencies (scripts/install-test-deps.sh)"
scripts/install-test-deps.sh
done_in

banner "2/5 build: cargo build --workspace --all-targets"
cargo build --workspace --all-targets
done_in

banner "3/5 test: cargo test --workspace -- --test-threads=4"
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
RUST_BACKTRACE=${RUST_BACKTRACE:-1} cargo test --workspace -- --test-threads=4 2>&1 | tee "$test_log"
# One total over every test binary, for people and for CI's reading of the end.
test_totals=$(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) s += $i
        }
    } END { printf "%d passed, %d failed, %d skipped", p, f, s }' "$test_log")
done_in

banner "4/5 lint: cargo clippy --workspace --all-targets -- -D warnings"
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --workspace --all-targets -- -D warnings
else
    echo "skipped: clippy is not installed (rustup component add clippy)"
fi
done_in

banner "5/5 format: cargo fmt --all --check"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all --check
else
    echo "skipped: rustfmt is not installed (rustup component add rustfmt)"
fi
done_in

banner "all checks passed"
echo "tests: $test_totals"
