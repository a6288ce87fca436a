#!/usr/bin/env bash
# Generates a tiny model, starts `moeserve serve` on a free 127.0.0.1 port, waits for
# /health, runs the OpenAI Node client tests, and stops the server (SIGTERM, drained).
# Usage: run_openai_client_test.sh MOESERVE_BINARY
set -euo pipefail
BIN="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -d "$HERE/node_modules/openai" ]; then
  if [ -f "$HERE/package-lock.json" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund)
  else
    (cd "$HERE" && npm install --no-audit --no-fund)
  fi
fi

"$BIN" gen-model "$WORK/model" --preset tiny >/dev/null
KEY="e2e-key"
# Port 0: the server picks a free port and logs it.
"$BIN" serve "$WORK/model" --host 127.0.0.1 --port 0 --served-model-name tiny \
  --api-key "$KEY" --max-model-len 512 --kv-cache-memory 64MiB >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 600); do
  PORT="$(sed -n 's#.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$WORK/server.log" | head -1)"
  if [ -n "$PORT" ] && curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/server.log"; exit 1; fi
  sleep 0.1
done
[ -n "$PORT" ] || { echo "the server did not start"; cat "$WORK/server.log"; exit 1; }
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$WORK/server.log"; exit 1; }

status=0
(cd "$HERE" && MOESERVE_BASE_URL="http://127.0.0.1:$PORT/v1" MOESERVE_API_KEY="$KEY" \
  MOESERVE_MODEL=tiny node --test openai_client.test.mjs) || status=$?

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || { echo "server exited with $?"; cat "$WORK/server.log"; status=1; }
SERVER_PID=""
[ $status -eq 0 ] || tail -50 "$WORK/server.log"
exit $status
