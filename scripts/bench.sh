#!/bin/sh
# bench.sh - wrk against /api/waha/status, the figures of `make bench`.
#
# Starts the WAHA simulator and the given wahagate binary (2 workers) on
# loopback, warms the cache, then runs `wrk --latency` at 64 and 256
# connections and prints for each run: requests/s, p50 and p99 latency, the
# calls WAHA (the simulator) received during the run, and the total RSS of
# all wahagate processes at the end of the run. Both processes are stopped
# by pid at the end.
#
#   scripts/bench.sh [build/wahagate]    BENCH_SECONDS=10 BENCH_THREADS=2 BENCH_SSE=5000
#                                        BENCH_SESSIONS=1000
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/wahagate}
seconds=${BENCH_SECONDS:-10}
threads=${BENCH_THREADS:-2}
dir=$(mktemp -d /tmp/wahagate-bench.XXXXXX)

command -v wrk > /dev/null || { echo "bench: wrk is missing (scripts/install-deps.sh)" >&2; exit 1; }

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)

/usr/bin/python3 "$top/scripts/waha_sim.py" --port 0 --api-key bench > "$dir/sim.out" 2>&1 &
sim_pid=$!
gw_pid=""
cleanup() {
    [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
    kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

i=0
until grep -q '^listening on' "$dir/sim.out" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "bench: simulator did not start" >&2; exit 1; }
    sleep 0.05
done
sim_url="http://$(sed -n 's/^listening on //p' "$dir/sim.out")"

cat > "$dir/waha.ini" <<INI
[server]
listen = 127.0.0.1:$port
workers = 2
shm_name = /wahagate-bench-$$
[upstream]
url = $sim_url
api_key = bench
events = off
[backend]
; the SSE check times a WORKING -> STARTING change: publish it at once
flap_hold = 0
[ratelimit]
; every wrk connection comes from 127.0.0.1
enabled = false
[log]
level = warn
INI
"$bin" -c "$dir/waha.ini" 2> "$dir/gateway.log" &
gw_pid=$!
url="http://127.0.0.1:$port/api/waha/status"
i=0
until curl -fs "$url" > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "bench: gateway did not start" >&2; cat "$dir/gateway.log" >&2; exit 1; }
    sleep 0.1
done

sim_calls() {
    curl -fs "$sim_url/_sim/stats" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'
}

# Sum of VmRSS (kB) of the master and its children.
total_rss_kb() {
    pids="$gw_pid $(cat /proc/$gw_pid/task/*/children 2>/dev/null)"
    sum=0
    for p in $pids; do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        sum=$((sum + ${kb:-0}))
    done
    echo $sum
}

latency() { # $1: percentile label in wrk's distribution, $2: file
    awk -v p="$1" '$1 == p {print $2}' "$2"
}

echo "wahagate $("$bin" -V | cut -d' ' -f2), 2 workers, $seconds s per run, $threads wrk threads, $(nproc) cores"
printf '%-12s %12s %10s %10s %15s %12s\n' connections requests/s p50 p99 upstream-calls rss-total
for conns in 64 256; do
    before=$(sim_calls)
    wrk -t"$threads" -c"$conns" -d"${seconds}s" --latency "$url" > "$dir/wrk.out"
    after=$(sim_calls)
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$dir/wrk.out")
    printf '%-12s %12s %10s %10s %15s %10s MB\n' "$conns" "$rps" \
        "$(latency 50% "$dir/wrk.out")" "$(latency 99% "$dir/wrk.out")" \
        "$((after - before))" "$(( $(total_rss_kb) / 1024 ))"
    if grep -q 'Non-2xx\|Socket errors' "$dir/wrk.out"; then
        grep 'Non-2xx\|Socket errors' "$dir/wrk.out"
    fi
done

sim_post() { # $1: path, $2: JSON body
    curl -fs -X POST -H 'Content-Type: application/json' -d "$2" "$sim_url$1" > /dev/null
}

# Push: many subscribers on /api/waha/events, one status change, by webhook.
sim_post /_sim/config "{\"webhookUrl\": \"http://127.0.0.1:$port/api/waha/webhook\"}"
/usr/bin/python3 "$top/scripts/bench/sse_load.py" "http://127.0.0.1:$port" "$sim_url" \
    "${BENCH_SSE:-5000}" "$gw_pid" webhook

# The same by WAHA's WebSocket: back to WORKING (by webhook), then no
# webhook; upstream.events = auto, reloaded.
sim_post /_sim/sessions/default '{"status": "WORKING"}'
i=0
until curl -fs "$url" | grep -q '"status":"WORKING"'; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "bench: the webhook did not come back" >&2; exit 1; }
    sleep 0.1
done
sim_post /_sim/config '{"webhookUrl": ""}'
sed -i 's/^events = off$/events = auto/' "$dir/waha.ini"
kill -HUP "$gw_pid"
i=0
until curl -fs "http://127.0.0.1:$port/api/waha/monitoring/stats" | grep -q '"events":"connected"'; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "bench: WAHA's WebSocket did not connect" >&2; exit 1; }
    sleep 0.1
done
/usr/bin/python3 "$top/scripts/bench/sse_load.py" "http://127.0.0.1:$port" "$sim_url" \
    "${BENCH_SSE:-5000}" "$gw_pid" "WebSocket event"

# Many sessions: one list call refreshes them all.
/usr/bin/python3 "$top/scripts/bench/sessions.py" "$bin" "${BENCH_SESSIONS:-1000}" "$seconds"
