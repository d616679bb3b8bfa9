#!/usr/bin/env bash
# What ending a large session costs the other rooms: a Q&A session of
# MEMBERS (5,000) is ended through the admin API while a small chat room
# (100 members, 20 messages a second) runs beside it on the same server.
# The server runs on core 0, the load on core 1, as in run-benchmarks.sh.
#
# Usage: loadtest/session-end.sh [SERVER_BINARY] [MEMBERS]
# Prints the end request's time, the chat room's latency (from its JSON
# report), how many storage commits the end's two seconds saw and how
# long they took (from lectern_store_commit_seconds), and the size of the
# write-ahead log afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
server_bin=${1:-./target/release/lectern}
members=${2:-5000}
[ -x "$server_bin" ] || cargo build --release --workspace
[ -x ./target/release/lectern-loadtest ] || cargo build --release -p lectern-loadtest
out=bench-results
mkdir -p "$out"
data=$(mktemp -d)
port=18778
source loadtest/pinned.sh
server=""
pids=()
trap 'kill $server "${pids[@]}" 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
: >"$out/session-end-server.log"
start_server "$server_bin" "$data" $port "$out/session-end-server.log"
key=$(cat "$data/admin.key")
url="http://127.0.0.1:$port"
load() { "${pin_load[@]}" ./target/release/lectern-loadtest "$@" --url "$url" --admin-key "$key"; }
commits() { curl -s "$url/metrics" | grep '^lectern_store_commit_seconds'; }

# The large session: everyone joins and stays.
load idle --clients "$members" --rooms 1 --duration 60 >"$out/session-end-idle.log" 2>&1 &
pids+=($!)
for _ in $(seq 240); do
  n=$(curl -s "$url/metrics" | awk '/^lectern_connections /{print $2}')
  [ "${n:-0}" -ge "$members" ] && break
  sleep 0.5
done
echo "connections: ${n:-0}"
sid=$(curl -s -H "Authorization: Bearer $key" "$url/api/v1/sessions" |
  python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["title"]=="loadtest: idle 0"][0])')

# The room beside it, for 20 s; the end comes 10 s in.
load chat-fanout --members 100 --rate 20 --duration 20 --json "$out/session-end-chat.json" >/dev/null 2>&1 &
chat=$!
pids+=($chat)
sleep 10
commits >"$out/session-end-commits-before.txt"
curl -s -o /dev/null -w "end request: HTTP %{http_code} in %{time_total} s\n" -X POST \
  -H "Authorization: Bearer $key" "$url/api/v1/sessions/$sid/end"
sleep 2
commits >"$out/session-end-commits-after.txt"
wait $chat
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
r = json.load(open(f"{out}/session-end-chat.json"))
lat = r["latency_ms"]
print(f"chat beside it: {r['delivered']} of {r['expected']} delivered; "
      f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms")
def read(name):
    m = {}
    for line in open(f"{out}/session-end-commits-{name}.txt"):
        key, value = line.rsplit(" ", 1)
        m[key.replace("lectern_store_commit_seconds", "")] = float(value)
    return m
a, b = read("before"), read("after")
count = b["_count"] - a["_count"]
over = {ms: count - (b[f'_bucket{{le="{s}"}}'] - a[f'_bucket{{le="{s}"}}'])
        for ms, s in [(25, "0.025"), (100, "0.1"), (250, "0.25")]}
print(f"storage commits in the end's 2 s: {count:.0f}, taking {b['_sum'] - a['_sum']:.3f} s in all; "
      f"over 25 ms: {over[25]:.0f}, over 100 ms: {over[100]:.0f}, over 250 ms: {over[250]:.0f}")
PY
echo "write-ahead log afterwards: $(stat -c %s "$data/lectern.db-wal" 2>/dev/null || echo 0) bytes"
