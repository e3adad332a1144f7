#!/usr/bin/env bash
# Throughput of the catalog page (/) against /healthz of the same coinfront process.
#
#   scripts/bench-catalog.sh                      build, start, load both endpoints, print a table
#   scripts/bench-catalog.sh --parse CAT HEALTH   only print the table from two saved wrk outputs
#
# BENCH_DURATION (default 15s) sets the length of each measured wrk run.
# Goal: the catalog serves at least 70 % of the requests per second that /healthz does.
set -euo pipefail

THREADS=2
CONNECTIONS=64
DURATION="${BENCH_DURATION:-15s}"
WARMUP=3s
GOAL_PERCENT=70

say() { printf '==> %s\n' "$*" >&2; }

# --- parsing wrk's output (with --latency) ---------------------------------------------------
# "Requests/sec:   7189.24"
wrk_rps() { awk '$1 == "Requests/sec:" { print $2; found = 1 } END { exit !found }' "$1"; }
# the "99%" line of "Latency Distribution", e.g. "     99%   15.89ms" -> 15.89ms
wrk_p99() { awk '$1 == "99%" { print $2; found = 1 } END { exit !found }' "$1"; }
# "Non-2xx or 3xx responses: 12" -> 12 (0 when absent)
wrk_non2xx() { awk '/^ *Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$1"; }
# "Socket errors: connect 0, read 0, write 0, timeout 3" -> 3 (sum; 0 when absent)
wrk_socket_errors() {
    awk '/^ *Socket errors:/ { gsub(",", ""); n = $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"
}

report() { # report CATALOG_OUTPUT HEALTHZ_OUTPUT
    local cat_out=$1 health_out=$2 cat_rps health_rps cat_p99 health_p99 percent verdict
    cat_rps=$(wrk_rps "$cat_out") || { echo "no Requests/sec line in $cat_out" >&2; return 1; }
    health_rps=$(wrk_rps "$health_out") || { echo "no Requests/sec line in $health_out" >&2; return 1; }
    cat_p99=$(wrk_p99 "$cat_out") || { echo "no 99% latency line in $cat_out" >&2; return 1; }
    health_p99=$(wrk_p99 "$health_out") || { echo "no 99% latency line in $health_out" >&2; return 1; }
    percent=$(awk -v c="$cat_rps" -v h="$health_rps" 'BEGIN { if (h > 0) printf "%.1f", 100 * c / h; else print "n/a" }')
    # compare unrounded: 69.99 % is below the goal even though it prints as 70.0
    if awk -v c="$cat_rps" -v h="$health_rps" -v g="$GOAL_PERCENT" 'BEGIN { exit !(h > 0 && 100 * c >= g * h) }'; then
        verdict="goal met"
    else
        verdict="BELOW GOAL"
    fi
    echo
    printf '%-10s %14s %12s %10s %14s\n' endpoint requests/s p99 non-2xx socket-errors
    printf '%-10s %14s %12s %10s %14s\n' / "$cat_rps" "$cat_p99" \
        "$(wrk_non2xx "$cat_out")" "$(wrk_socket_errors "$cat_out")"
    printf '%-10s %14s %12s %10s %14s\n' /healthz "$health_rps" "$health_p99" \
        "$(wrk_non2xx "$health_out")" "$(wrk_socket_errors "$health_out")"
    echo
    printf 'catalog/healthz requests/s: %s %% (goal >= %s %%): %s\n' "$percent" "$GOAL_PERCENT" "$verdict"
    if [[ $(wrk_non2xx "$cat_out") != 0 || $(wrk_non2xx "$health_out") != 0 ]]; then
        echo "warning: some responses were not 2xx/3xx; the numbers above do not measure the pages" >&2
    fi
}

if [[ ${1:-} == --parse ]]; then
    [[ $# -eq 3 ]] || { echo "usage: $0 --parse CATALOG_WRK_OUTPUT HEALTHZ_WRK_OUTPUT" >&2; exit 2; }
    report "$2" "$3"
    exit
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --- tools ------------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

say "building the release binary"
cargo build --release
bin="$PWD/target/release/coinfront"

# --- start the shop ---------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/coinfront-bench.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=
for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 40000))
    if ! port_in_use "$candidate"; then port=$candidate; break; fi
done
[[ -n $port ]] || { echo "no free port found" >&2; exit 1; }
base="http://127.0.0.1:$port"

say "starting $bin on $base (data in $tmp/data)"
# Default settings only: run from the temporary folder (no ./coinfront.toml there) and without
# any COINFRONT_* or DATABASE_URL from the caller's environment.
unset_args=(-u DATABASE_URL)
while read -r name; do unset_args+=(-u "$name"); done < <(compgen -e | grep '^COINFRONT_' || true)
(
    cd "$tmp"
    exec env "${unset_args[@]}" \
        COINFRONT_DATA_DIR="$tmp/data" COINFRONT_BIND="127.0.0.1:$port" COINFRONT_LOG=warn \
        "$bin" serve
) >"$tmp/server.log" 2>&1 &
server_pid=$!

ready=
for _ in $(seq 300); do # up to 30 s
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "coinfront exited during start-up:" >&2
        cat "$tmp/server.log" >&2
        server_pid=
        exit 1
    fi
    if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then ready=1; break; fi
    sleep 0.1
done
[[ -n $ready ]] || { echo "coinfront did not answer /healthz within 30 s:" >&2; cat "$tmp/server.log" >&2; exit 1; }
curl -fsS -o /dev/null "$base/" || { echo "GET / does not succeed:" >&2; cat "$tmp/server.log" >&2; exit 1; }

# --- load -------------------------------------------------------------------------------------
say "warming up ($WARMUP on /)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$base/" >/dev/null

say "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $base/"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$base/" | tee "$tmp/catalog.txt" >&2

say "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $base/healthz"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$base/healthz" | tee "$tmp/healthz.txt" >&2

kill -0 "$server_pid" 2>/dev/null || { echo "coinfront died during the run:" >&2; cat "$tmp/server.log" >&2; exit 1; }
if [[ -s $tmp/server.log ]]; then
    say "server log (warnings and errors):"
    tail -n 20 "$tmp/server.log" >&2
fi

report "$tmp/catalog.txt" "$tmp/healthz.txt"
