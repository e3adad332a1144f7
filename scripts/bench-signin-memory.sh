#!/usr/bin/env bash
# Resident memory of the release binary under failed staff sign-ins (issue 14, item 0).
#
#   scripts/bench-signin-memory.sh             build the release binary, start it, measure
#   BENCH_BIN=/path/to/coinfront scripts/bench-signin-memory.sh   measure that binary
#
# Runs SIGNINS (default 1000) failed sign-ins at each concurrency in CONCURRENCY (default
# "1 2 16 64"), every one from its own source address (X-Forwarded-For through a trusted
# proxy) and for its own unknown email, so neither the rate limiter nor a lock-out answers
# before the password hash is computed (an unknown email costs the same hash as a wrong
# password). Samples VmRSS of the process from /proc every 50 ms and prints the peak per
# concurrency, then the process's VmHWM. Goal: the peak stays under 100 MB.
set -euo pipefail

SIGNINS="${SIGNINS:-1000}"
CONCURRENCY="${CONCURRENCY:-1 2 16 64}"
GOAL_MB=100

say() { printf '==> %s\n' "$*" >&2; }

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

bin="${BENCH_BIN:-}"
if [ -z "$bin" ]; then
    say "building the release binary"
    (cd "$root" && cargo build --release --quiet --bin coinfront)
    # The target dir may be shared: measure a copy, not a file another build may replace.
    cp "${CARGO_TARGET_DIR:-$root/target}/release/coinfront" "$work/coinfront"
    bin="$work/coinfront"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/coinfront.toml" <<EOF
bind = "127.0.0.1:$port"
data_dir = "$work/data"
log_format = "json"

[http]
trusted_proxies = ["127.0.0.1"]

[rate_limits.staff_login]
per_minute = 1000000
burst = 1000000
EOF

say "starting $bin on port $port"
COINFRONT_LOG=warn "$bin" --config "$work/coinfront.toml" > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null || { cat "$work/server.log" >&2; exit 1; }

python3 - "$port" "$pid" "$SIGNINS" "$GOAL_MB" $CONCURRENCY <<'PY'
import http.client, re, sys, threading, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor

port, pid, signins, goal_mb = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
levels = [int(c) for c in sys.argv[5:]]

def status(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024  # kB -> MB
    return 0

# One CSRF cookie and token for every attempt (the token is bound to the cookie only).
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
conn.request("GET", "/console/login")
resp = conn.getresponse()
page = resp.read().decode()
cookie = "; ".join(c.split(";")[0] for c in resp.headers.get_all("Set-Cookie") or [])
csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

peak = 0
def sampler(stop):
    global peak
    while not stop.is_set():
        peak = max(peak, status("VmRSS"))
        time.sleep(0.05)

counter = iter(range(10**9))
lock = threading.Lock()
def attempt(_):
    with lock:
        n = next(counter)
    body = urllib.parse.urlencode({
        "csrf_token": csrf,
        "email": f"nobody-{n}@example.com",
        "password": "not the password at all",
    })
    ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/console/login", body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": cookie,
        "X-Forwarded-For": ip,
    })
    r = c.getresponse()
    r.read()
    c.close()
    return r.status

print(f"start: VmRSS {status('VmRSS')} MB")
print(f"{'concurrency':>11} {'sign-ins':>9} {'seconds':>8} {'statuses':>16} {'peak VmRSS MB':>14} {'VmRSS after MB':>15}")
for level in levels:
    peak = status("VmRSS")
    stop = threading.Event()
    t = threading.Thread(target=sampler, args=(stop,))
    t.start()
    started = time.time()
    with ThreadPoolExecutor(level) as pool:
        statuses = list(pool.map(attempt, range(signins)))
    elapsed = time.time() - started
    stop.set()
    t.join()
    counts = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    summary = ",".join(f"{k}x{v}" for k, v in sorted(counts.items()))
    print(f"{level:>11} {signins:>9} {elapsed:>8.1f} {summary:>16} {peak:>14} {status('VmRSS'):>15}")
hwm = status("VmHWM")
print(f"VmHWM (peak resident over the whole run): {hwm} MB; goal: under {goal_mb} MB: "
      + ("met" if hwm < goal_mb else "NOT MET"))
PY
