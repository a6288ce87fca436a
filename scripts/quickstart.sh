#!/usr/bin/env bash
# Installs dependencies, builds moeserve and serves the shipped demo model (models/demo, a small
# DeepSeek-V3-architecture model) with the OpenAI-compatible API on http://127.0.0.1:8000.
# Try, from another terminal:
#   curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \
#     -d '{"model":"models/demo","messages":[{"role":"user","content":"Tell me something."}]}'
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"${JOBS:-2}" --target moeserve
exec ./build/src/cli/moeserve serve models/demo --host 127.0.0.1 --port "${PORT:-8000}"
