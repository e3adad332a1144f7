#!/usr/bin/env bash
# Prints the top-level module cycles and the lower-layer files that name AppState
# (see scripts/module-graph.py). `--check` exits 1 when there is either.
exec python3 "$(dirname "${BASH_SOURCE[0]}")/module-graph.py" "$@"
