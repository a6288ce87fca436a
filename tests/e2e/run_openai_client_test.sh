#!/usr/bin/env bash
# Generates a tiny model, starts `moeserve serve` on a free 127.0.0.1 port, waits for
# /health, runs the OpenAI Node client tests, and stops the server (SIGTERM, drained).
# With --router N, starts N engines and runs the same tests through `moeserve route` in front
# of them (round-robin-picker, so consecutive requests land on different engines).
# Usage: run_openai_client_test.sh MOESERVE_BINARY [--router N]
set -euo pipefail
BIN="$1"
ENGINES=1
ROUTER=0
if [ "${2:-}" = "--router" ]; then
  ROUTER=1
  ENGINES="${3:-2}"
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
PIDS=()
stop_pid() {
  local pid="$1"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits until LOG names a listening port (sed pattern PATTERN) that answers /health; prints it.
wait_port() {
  local pid="$1" log="$2" pattern="$3" port=""
  for _ in $(seq 1 600); do
    port="$(sed -n "s#${pattern}#\1#p" "$log" | head -1)"
    if [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      echo "$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; return 1; fi
    sleep 0.1
  done
  echo "no healthy port in $log" >&2
  cat "$log" >&2
  return 1
}

if [ ! -d "$HERE/node_modules/openai" ]; then
  if [ -f "$HERE/package-lock.json" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund)
  else
    (cd "$HERE" && npm install --no-audit --no-fund)
  fi
fi

"$BIN" gen-model "$WORK/model" --preset tiny >/dev/null
KEY="e2e-key"
ENGINE_PATTERN='.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*'
ADDRESSES=""
SERVER_PID=""
for i in $(seq 1 "$ENGINES"); do
  # Port 0: the server picks a free port and logs it.
  "$BIN" serve "$WORK/model" --host 127.0.0.1 --port 0 --served-model-name tiny \
    --api-key "$KEY" --max-model-len 512 --kv-cache-memory 64MiB >"$WORK/server$i.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  PORT="$(wait_port "$SERVER_PID" "$WORK/server$i.log" "$ENGINE_PATTERN")"
  ADDRESSES="${ADDRESSES:+$ADDRESSES,}127.0.0.1:$PORT"
done
LOG="$WORK/server1.log"
if [ "$ROUTER" = 1 ]; then
  cat >"$WORK/epp.yaml" <<'YAML'
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: round-robin-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: round-robin-picker
YAML
  "$BIN" route --config "$WORK/epp.yaml" --endpoints "$ADDRESSES" --host 127.0.0.1 --port 0 \
    >"$WORK/router.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  PORT="$(wait_port "$SERVER_PID" "$WORK/router.log" '.*router listening on 127\.0\.0\.1:\([0-9][0-9]*\).*')"
  LOG="$WORK/router.log"
fi

status=0
(cd "$HERE" && MOESERVE_BASE_URL="http://127.0.0.1:$PORT/v1" MOESERVE_API_KEY="$KEY" \
  MOESERVE_MODEL=tiny node --test openai_client.test.mjs) || status=$?

# Stop the front process first (the router, or the only engine), then the rest.
for (( idx=${#PIDS[@]}-1 ; idx>=0 ; idx-- )); do
  pid="${PIDS[idx]}"
  kill -TERM "$pid"
  wait "$pid" || { echo "process $pid exited with $?"; status=1; }
done
PIDS=()
if [ $status -ne 0 ]; then
  for f in "$WORK"/*.log; do echo "== $f"; tail -50 "$f"; done
fi
exit $status
