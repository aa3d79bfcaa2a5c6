#!/usr/bin/env bash
# Builds the benchmark in release and runs it. Arguments go to connector-bench, e.g.
#   bench/run.sh --quick
#   bench/run.sh --datasets ../shared/datasets
#   bench/run.sh --peers --datasets ../shared/datasets --out target/bench-results.json
#   bench/run.sh --only quality --datasets ../shared/datasets --embedding-model target/models/all-MiniLM-L6-v2
#                                         (also the hybrid rows: semantic retrieval on)
#   bench/run.sh --only scale --datasets ../shared/datasets --embedding-model target/models/all-MiniLM-L6-v2
#                                         (retrieve, lexical and fused, over all datasets in one
#                                          instance; page vectors from tune's cache)
#   bench/run.sh tune ../shared/datasets   (ranking variants, natively, on every dataset)
#   bench/run.sh tune --embedding-model target/models/all-MiniLM-L6-v2 ../shared/datasets   (fusion variants)
#   bench/run.sh soak --minutes 10      (connector-host serve under mixed load with faults)
# With --peers, a throwaway virtualenv (target/bench-venv) gets langchain-community,
# atlassian-python-api and llama-index-readers-confluence from PyPI; with --datasets, bm25s
# and PyStemmer (the baseline scored on the same files).
set -euo pipefail
cd "$(dirname "$0")/.."

peers=0
datasets=0
for arg in "$@"; do
    [ "$arg" = "--peers" ] && peers=1
    case "$arg" in --datasets|--datasets=*|--scifact|--scifact=*) datasets=1 ;; esac
done

cargo build --release -p connector-bench -p connector-host

if [ "$peers" = 1 ] || [ "$datasets" = 1 ]; then
    venv=target/bench-venv
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    if [ "$peers" = 1 ]; then
        "$venv/bin/python" -m pip install --quiet langchain-community atlassian-python-api llama-index-readers-confluence
    fi
    if [ "$datasets" = 1 ]; then
        "$venv/bin/python" -m pip install --quiet bm25s PyStemmer
    fi
    set -- --python "$venv/bin/python" "$@"
fi

exec target/release/connector-bench "$@"
