#!/bin/sh
# demo.sh - run wahagate against the bundled WAHA simulator until Ctrl-C.
#
# Starts scripts/waha_sim.py (two sessions: "default" connected, "shop"
# waiting for a QR scan) and build/wahagate with build/demo/waha.ini, prints
# the URLs to open, and stops both (by pid) on Ctrl-C or when either exits.
#
#   DEMO_PORT=8080 SIM_PORT=3000 scripts/demo.sh
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
port=${DEMO_PORT:-8080}
sim_port=${SIM_PORT:-3000}
dir="$top/build/demo"
mkdir -p "$dir"

# Start from the commented waha.ini of the tree, pointed at the simulator.
sed -e "s|^listen = .*|listen = 127.0.0.1:$port|" \
    -e "s|^url = http://127.0.0.1:3000|url = http://127.0.0.1:$sim_port|" \
    -e "s|^api_key =.*|api_key = demo-key|" \
    -e "s|^sessions = .*|sessions = default,shop|" \
    -e "s|^shm_name = .*|shm_name = /wahagate-demo|" \
    "$top/waha.ini" > "$dir/waha.ini"

sim_pid=""
gw_pid=""
stop() {
    trap - INT TERM EXIT
    [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
    [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    echo "demo stopped"
}
trap stop INT TERM EXIT

/usr/bin/python3 "$top/scripts/waha_sim.py" --port "$sim_port" --api-key demo-key \
    --sessions default:WORKING,shop:SCAN_QR_CODE > "$dir/simulator.log" 2>&1 &
sim_pid=$!
"$top/build/wahagate" -c "$dir/waha.ini" 2> "$dir/wahagate.log" &
gw_pid=$!

# Wait (at most 10 s) until the gateway answers.
i=0
until curl -fs "http://127.0.0.1:$port/api/waha/config" > /dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$gw_pid" 2>/dev/null; then
        echo "wahagate did not start; its log:" >&2
        cat "$dir/wahagate.log" >&2
        exit 1
    fi
    sleep 0.1
done

cat <<TXT

wahagate is running on http://127.0.0.1:$port in front of a WAHA simulator
on http://127.0.0.1:$sim_port (logs in $dir).

  Status of "default":  http://127.0.0.1:$port/api/waha/status
  Status of "shop":     http://127.0.0.1:$port/api/waha/status?session=shop
  WAHA health:          http://127.0.0.1:$port/api/waha/health
  Sessions:             http://127.0.0.1:$port/api/waha/sessions
  Poller settings:      http://127.0.0.1:$port/api/waha/config
  Live counters:        build/wahagate --stats -c $dir/waha.ini

Try: curl -s http://127.0.0.1:$port/api/waha/status?session=shop
Change a session in the simulator and watch the gateway follow:
  curl -s -X POST -d '{"status":"WORKING"}' http://127.0.0.1:$sim_port/_sim/sessions/shop

Press Ctrl-C to stop.
TXT

# Stay until Ctrl-C or until one of the two exits.
while kill -0 "$gw_pid" 2>/dev/null && kill -0 "$sim_pid" 2>/dev/null; do
    sleep 1
done
echo "a demo process exited; see $dir" >&2
exit 1
