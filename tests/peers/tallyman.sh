# shellcheck shell=bash
# tallyman as a peer of the store-and-forward benchmark scripts (sf_scenario.sh, run_peer.sh):
# scans come in on stdin (a named pipe), are stored in the spool, and the hub sink forwards them
# to the "central" broker with QoS 1.
#
#   sf_scenario.sh tests/peers/tallyman.sh baseline|outage|kill9 [N]
#
# env: TALLYMAN_BIN       the binary (default: target/release/tallyman of this repository)
#      TALLYMAN_BATCH     the hub sink's batch_size (default: the sink's default, 100)
#      TALLYMAN_INFLIGHT  the hub sink's inflight window (default: the sink's default, 10)
#
# The hub sink publishes postcard here, not JSON: the counting subscriber takes every `seq`
# followed by digits in a payload, and the canonical JSON also carries the spool's own `seq`
# field. The scenario's sequence number travels in the scan text (`seq=K;ts=…;` padded to 200
# bytes), which the passthrough workflow stores as the event's raw scan.
# `peer_ingest` returns once every scan is answered "accepted" on stdout, i.e. durable in the
# spool. kill9ingest is not run: a scan that was not answered was not accepted, and the stdin
# writer has no way to re-send it.
PEER_NAME=tallyman${PEER_SUFFIX:-}
CENTRAL_TOPIC='tallyman/v1/bench/gw-bench/events/#'
TALLYMAN_REPO=${TALLYMAN_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TALLYMAN_BIN=${TALLYMAN_BIN:-$TALLYMAN_REPO/target/release/tallyman}

peer_setup() {
  PD=$1; mkdir -p "$PD/data"
  cat > "$PD/tallyman.toml" <<EOC
[agent]
facility = "bench"
gateway = "gw-bench"
data_dir = "$PD/data"

[mqtt]
endpoint = "mqtt://127.0.0.1:$CENTRAL_PORT"
client_id = "tallyman-peer"
keep_alive_secs = 10

[[sources]]
name = "scanner"
type = "stdin"
workflow = "passthrough"
location = "WH/Stock"

[[sinks]]
name = "hub"
type = "mqtt"
format = "postcard"
${TALLYMAN_BATCH:+batch_size = $TALLYMAN_BATCH}
${TALLYMAN_INFLIGHT:+inflight = $TALLYMAN_INFLIGHT}

[log]
level = "info"
EOC
  rm -f "$PD/in.fifo"; mkfifo "$PD/in.fifo"
  : > "$PD/feedback.jsonl"
}

# Returns once the agent has opened its spool and reads stdin.
peer_start() {
  "$TALLYMAN_BIN" run --config "$PD/tallyman.toml" < "$PD/in.fifo" >> "$PD/feedback.jsonl" 2>> "$PD/agent.log" &
  echo $! > "$PD/agent.pid"
  # Keeps the pipe open between ingest runs (the agent would see end of input otherwise).
  sleep infinity > "$PD/in.fifo" &
  echo $! > "$PD/holder.pid"
  local i
  for i in $(seq 1 100); do
    grep -q "Reading scans from stdin" "$PD/agent.log" 2>/dev/null && return 0
    sleep 0.1
  done
  log "tallyman did not start: $(tail -3 "$PD/agent.log")"; return 1
}
peer_pid() { cat "$PD/agent.pid"; }
peer_stop() { stop_pidfile "$PD/agent.pid" TERM; stop_pidfile "$PD/holder.pid" TERM; }
peer_kill9() { stop_pidfile "$PD/agent.pid" KILL; stop_pidfile "$PD/holder.pid" TERM; }

accepted() { grep -c '"result":"accepted"' "$PD/feedback.jsonl"; }

peer_ingest() { # N SEQ0
  local n=$1 seq0=$2 base t0 t1 i
  base=$(accepted)
  t0=$(date +%s.%N)
  awk -v n="$n" -v s="$seq0" -v t="$t0" 'BEGIN {
      pad = sprintf("%200s", ""); gsub(/ /, "x", pad)
      for (k = s; k < s + n; k++) { l = sprintf("seq=%d;ts=%.3f;", k, t * 1000); print l substr(pad, 1, 200 - length(l)) }
    }' > "$PD/in.fifo"
  for i in $(seq 1 6000); do
    [ "$(accepted)" -ge $((base + n)) ] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  echo "pub n=$n accepted=$(( $(accepted) - base )) msgs_per_s=$(echo "$n/($t1-$t0)" | bc)"
}
