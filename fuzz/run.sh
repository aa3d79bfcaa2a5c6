#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, then minimises its corpus.
#   fuzz/run.sh [SECONDS]        (per target, default 60)
# Needs the nightly toolchain and cargo-fuzz; both are installed when missing (rustup, crates.io).
# The corpus lives in fuzz/corpus/<target>, minimised (the small ones are kept in the
# repository, see .gitignore); a crash leaves its input in fuzz/artifacts/<target>/ and
# makes the script fail at the end.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi

targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build
mkdir -p logs
failed=()
printf '\n| target | seconds | executions | execs/s | corpus files | crashes |\n| --- | ---: | ---: | ---: | ---: | ---: |\n' > logs/summary.md
for target in $targets; do
    mkdir -p "corpus/$target"
    status=0
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=30 -rss_limit_mb=4096 \
        > "logs/$target.log" 2>&1 || status=$?
    cargo +nightly fuzz cmin "$target" "corpus/$target" > "logs/$target.cmin.log" 2>&1 || true
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$target.log" | grep -o '[0-9]*$' || echo 0)
    files=$(find "corpus/$target" -type f | wc -l)
    crashes=0
    if [ "$status" != 0 ]; then
        crashes=1
        failed+=("$target")
    fi
    printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "${executions:-0}" \
        "$(( ${executions:-0} / seconds ))" "$files" "$crashes" >> logs/summary.md
done
cat logs/summary.md
if [ "${#failed[@]}" != 0 ]; then
    echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)" >&2
    exit 1
fi
