#!/usr/bin/env bash
# Issue 18's like-for-like data and loader benchmarks at their README sizes, one after another (run
# nothing heavy beside them: the machine has 2 cores), each recording results/<row>.json; then the
# README table is printed from those records. About 26 minutes on the project's machine (2026-12-07).
set -euo pipefail
cd "$(dirname "$0")/.."
B=.venv/bin/python
mkdir -p benchmarks/results
log=benchmarks/results/stderr.log; : > "$log"
step() { echo "bench-data: $(date +%T) $*"; "$@" > /dev/null 2>>"$log" || { echo "bench-data: failed: $* (see $log)"; exit 1; }; }
step env OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false $B benchmarks/loader_vs_hf_text.py --docs 10000 --repeats 3 --record
step $B benchmarks/provenance_query.py --docs 200000 --repeats 5 --record
step $B benchmarks/decont_vs_datatrove.py --corpus real --repeats 3 --record
step $B benchmarks/decont_vs_datatrove.py --repeats 3 --record
step $B benchmarks/fineweb_chain.py --corpus real --docs 2000 --repeats 3 --record
step $B benchmarks/fineweb_chain.py --docs 2000 --repeats 3 --record
step $B benchmarks/data_provenance.py --docs 1500,3000,8000 --repeats 3 --record
$B benchmarks/table.py --write
