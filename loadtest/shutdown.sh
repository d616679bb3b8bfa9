#!/usr/bin/env bash
# How long a graceful stop takes with everyone connected, and whether it
# closes every attendance interval once: CLIENTS members (default 5,000) in
# ROOMS Q&A rooms (default 1) join and stay, the server gets SIGTERM, then
# it is started again on the same data and the attendance of every session
# is counted by (present, reason the last interval ended, intervals).
# The server runs on core 0 and the load on core 1, as in run-benchmarks.sh.
#
# Usage: loadtest/shutdown.sh [CLIENTS] [ROOMS] [SERVER_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-5000}
rooms=${2:-1}
server_bin=${3:-./target/release/lectern}
[ -x "$server_bin" ] || cargo build --release --workspace
[ -x ./target/release/lectern-loadtest ] || cargo build --release -p lectern-loadtest
out=bench-results
mkdir -p "$out"
data=$(mktemp -d)
port=18779
url="http://127.0.0.1:$port"
source loadtest/pinned.sh
server=""; idle=""
trap 'kill $server $idle 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
: >"$out/shutdown-server.log"
start_server "$server_bin" "$data" $port "$out/shutdown-server.log"
key=$(cat "$data/admin.key")
"${pin_load[@]}" ./target/release/lectern-loadtest idle --clients "$clients" --rooms "$rooms" --duration 120 \
  --url "$url" --admin-key "$key" >"$out/shutdown-idle.log" 2>&1 &
idle=$!
for _ in $(seq 240); do
  n=$(curl -s "$url/metrics" | awk '/^lectern_connections /{print $2}')
  [ "${n:-0}" -ge "$clients" ] && break
  sleep 0.5
done
echo "connections: ${n:-0}"
sleep 3
t0=$(date +%s.%N)
kill -TERM "$server"
wait "$server" || true
t1=$(date +%s.%N)
python3 -c "print(f'graceful stop: {$t1 - $t0:.2f} s from SIGTERM to exit')"
kill "$idle" 2>/dev/null || true
wait "$idle" 2>/dev/null || true
idle=""
start_server "$server_bin" "$data" $port "$out/shutdown-server.log"
python3 - "$url" "$key" <<'PY'
import json, sys, urllib.request
from collections import Counter
url, key = sys.argv[1], sys.argv[2]
def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + key})
    return json.load(urllib.request.urlopen(req))
counts = Counter()
for s in get("/api/v1/sessions"):
    for row in get(f"/api/v1/sessions/{s['id']}/attendance"):
        last = row["intervals"][-1]["reason"] if row["intervals"] else None
        counts[(row["present"], last, len(row["intervals"]))] += 1
print("attendance after the restart (present, last interval ended by, intervals): count")
for k, v in sorted(counts.items(), key=str):
    print(f"  {k}: {v}")
PY
