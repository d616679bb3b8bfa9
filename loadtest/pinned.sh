# Sourced by the benchmark scripts in loadtest/. With two cores or more,
# the server runs on core 0 and the load on core 1 (taskset), so that
# neither's work is counted against the other.
pin_server=(); pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 0); pin_load=(taskset -c 1)
fi

# start_server BINARY DATA_DIR PORT LOG: starts a server without the demo,
# its output appended to LOG, waits until it answers, and sets $server to
# its pid.
start_server() {
  local bin=$1 data=$2 port=$3 log=$4
  "${pin_server[@]}" "$bin" --no-demo --data-dir "$data" --bind "127.0.0.1:$port" >>"$log" 2>&1 &
  server=$!
  for _ in $(seq 50); do
    [ -s "$data/admin.key" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    sleep 0.2
  done
  echo "the server on port $port did not answer; see $log" >&2
  return 1
}
