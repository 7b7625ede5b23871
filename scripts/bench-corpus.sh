#!/usr/bin/env bash
# The real-text corpus of the data benchmarks (benchmarks/bench_corpora.py), offline: Debian packages
# ship the text (python3-doc's HTML pages, licences, copyright files, changelogs, translated man pages).
# python3-doc is the one not installed by default: apt installs it when this runs as root. Without it
# the script stops (the rows would be measured on another corpus); BENCH_CORPUS_PARTIAL=1 builds from the
# sources present, and the rows then name what the corpus held.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s python3-doc >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-doc; } >/tmp/bench-corpus-apt.log 2>&1 \
    && echo "bench-corpus: installed python3-doc" \
    || echo "bench-corpus: could not install python3-doc (see /tmp/bench-corpus-apt.log)"
fi
if ! dpkg -s python3-doc >/dev/null 2>&1 && [[ ${BENCH_CORPUS_PARTIAL:-0} != 1 ]]; then
  echo "bench-corpus: python3-doc is not installed (apt-get install python3-doc, as root), so the corpus would" \
       "lack its largest source; stopping. BENCH_CORPUS_PARTIAL=1 builds it from what is installed." >&2
  exit 1
fi
.venv/bin/python benchmarks/bench_corpora.py real
