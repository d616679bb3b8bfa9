#!/usr/bin/env bash
# Starts Janus (Debian's package, VideoRoom plugin, HTTP API) for the
# side-by-side `media` comparison. Janus skips loopback when it gathers ICE
# candidates, so it runs in a network namespace of our own ("ltjanus"),
# joined to this host by a veth pair: host 10.231.0.1, Janus 10.231.0.2.
# No STUN servers; nothing leaves the machine.
# Usage: loadtest/janus/start-janus.sh [core]   (prints Janus's pid)
set -euo pipefail
core=${1:-0}
if ! command -v janus >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
if ! ip netns list | grep -q '^ltjanus'; then
  ip netns add ltjanus
  ip link add lt-host type veth peer name lt-janus
  ip link set lt-janus netns ltjanus
  ip addr add 10.231.0.1/30 dev lt-host
  ip link set lt-host up
  ip netns exec ltjanus ip addr add 10.231.0.2/30 dev lt-janus
  ip netns exec ltjanus ip link set lt-janus up
  ip netns exec ltjanus ip link set lo up
fi
conf=$(mktemp -d /tmp/lt-janus.XXXX)
lib=/usr/lib/x86_64-linux-gnu/janus
cat >"$conf/janus.jcfg" <<CFG
general: {
  configs_folder = "$conf"
  plugins_folder = "$lib/plugins"
  transports_folder = "$lib/transports"
  events_folder = "$lib/events"
  loggers_folder = "$lib/loggers"
  debug_level = 2
}
media: { rtp_port_range = "20000-40000" }
nat: { nice_debug = false }
plugins: { disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so" }
transports: { disable = "libjanus_websockets.so,libjanus_pfunix.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_rabbitmq.so" }
events: { broadcast = false }
loggers: { disable = "libjanus_jsonlog.so" }
CFG
cat >"$conf/janus.transport.http.jcfg" <<CFG
general: { json = "plain", base_path = "/janus", http = true, port = 8088, https = false }
admin: { admin_http = false }
CFG
cat >"$conf/janus.plugin.videoroom.jcfg" <<CFG
general: { }
room-4242: { description = "lectern-loadtest", publishers = 1, bitrate = 0, fir_freq = 0, audiocodec = "opus", videocodec = "vp8" }
CFG
ip netns exec ltjanus taskset -c "$core" janus -C "$conf/janus.jcfg" -F "$conf" >"$conf/janus.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
  curl -sf http://10.231.0.2:8088/janus/info >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf http://10.231.0.2:8088/janus/info >/dev/null || { echo "janus did not start; log: $conf/janus.log" >&2; exit 1; }
echo "$pid"
