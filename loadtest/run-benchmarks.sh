#!/usr/bin/env bash
# Runs the standard benchmark set against a fresh release server: the server
# on core 0, the load generator on core 1 (taskset), JSON reports into
# bench-results/. Usage: loadtest/run-benchmarks.sh [quick|janus]
# `janus` runs only the media comparison against Janus (root needed: it
# installs Debian's janus package and makes a network namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
out=bench-results
mkdir -p "$out"
data=$(mktemp -d)
port=18777
source loadtest/pinned.sh
server=""
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
: >"$out/server.log"
start_server ./target/release/lectern "$data" $port "$out/server.log"
key=$(cat "$data/admin.key")
run() { # name, then loadtest arguments
  local name=$1; shift
  echo "== $name"
  "${pin_load[@]}" ./target/release/lectern-loadtest "$@" --url "http://127.0.0.1:$port" --admin-key "$key" --json "$out/$name.json"
}
if [ "${1:-}" = janus ]; then
  jpid=$(loadtest/janus/start-janus.sh 0)
  trap 'kill $server $jpid 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
  for n in 50 200; do
    run media-vs-janus-$n media --subscribers $n --duration 15 --janus http://10.231.0.2:8088/janus --janus-pid "$jpid"
  done
elif [ "${1:-}" = quick ]; then
  run idle idle --clients 500 --rooms 10 --duration 3
  run join-storm join-storm --clients 500 --rate 500
  run chat-fanout chat-fanout --members 100 --rate 50 --duration 5
  run qa-audience qa-audience --members 200 --rate 20 --duration 5
  run classroom-mix classroom-mix --rooms 5 --members 10 --rate 20 --duration 5
  run reconnect-storm reconnect-storm --clients 500
  run media-20 media --subscribers 20 --duration 5
else
  run idle idle --clients 19000 --rooms 100 --duration 10
  run join-storm join-storm --clients 5000 --rate 1000
  run chat-fanout chat-fanout --members 1000 --rate 100 --duration 30
  run qa-audience qa-audience --members 5000 --rate 20 --duration 30
  run classroom-mix classroom-mix --rooms 50 --members 20 --rate 50 --duration 30
  run reconnect-storm reconnect-storm --clients 5000
  run media-50 media --subscribers 50 --duration 20
  run media-200 media --subscribers 200 --duration 20
fi
