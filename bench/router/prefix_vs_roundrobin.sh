#!/usr/bin/env bash
# Prefix-aware routing against round-robin, llm-d's headline experiment in small:
# ENGINES moeserve engines serve the same model, each with a KV cache that holds only some of
# the workload's shared prefixes; `moeserve route` sits in front with (1) the baseline config
# (bench/router/baseline.yaml: round-robin-picker) and (2) llm-d's default profile (prefix-cache 3, queue 2,
# kv-cache-utilization 2); `moeserve bench serve --dataset-name prefix-repetition` drives the
# same workload through each. Engines are restarted between the two runs so both start cold.
# Prints the two bench summaries and each run's engine prefix-cache counters.
#
# Usage: bench/router/prefix_vs_roundrobin.sh MOESERVE_BINARY MODEL_DIR [OUT_DIR]
# Environment (defaults): ENGINES=3 BLOCKS=400 PREFIXES=12 PREFIX_LEN=1024 SUFFIX_LEN=32
#   OUTPUT_LEN=16 PROMPTS=240 CONCURRENCY=8 PORT_BASE=8300
set -euo pipefail
BIN="$1"
MODEL="$2"
OUT="${3:-$(mktemp -d)}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ENGINES=${ENGINES:-3} BLOCKS=${BLOCKS:-400} PREFIXES=${PREFIXES:-12} PREFIX_LEN=${PREFIX_LEN:-1024}
SUFFIX_LEN=${SUFFIX_LEN:-32} OUTPUT_LEN=${OUTPUT_LEN:-16} PROMPTS=${PROMPTS:-240}
CONCURRENCY=${CONCURRENCY:-8} PORT_BASE=${PORT_BASE:-8300}
mkdir -p "$OUT"
PIDS=()
stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap stop_all EXIT
wait_health() {
  for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "port $1 never became healthy" >&2; return 1
}
prefix_counters() {
  local q=0 h=0
  for i in $(seq 0 $((ENGINES - 1))); do
    local m; m=$(curl -fsS "http://127.0.0.1:$((PORT_BASE + 1 + i))/metrics")
    q=$(python3 -c "import sys;print($q+float(sys.argv[1]))" "$(echo "$m" | sed -n 's/^vllm:prefix_cache_queries_total{.*} //p')")
    h=$(python3 -c "import sys;print($h+float(sys.argv[1]))" "$(echo "$m" | sed -n 's/^vllm:prefix_cache_hits_total{.*} //p')")
  done
  echo "prefix cache: queries $q hits $h hit rate $(python3 -c "print(f'{$h/max($q,1):.3f}')")"
}
run_one() {
  local name="$1" config="$2"
  local eps=()
  for i in $(seq 0 $((ENGINES - 1))); do
    local port=$((PORT_BASE + 1 + i))
    "$BIN" serve "$MODEL" --host 127.0.0.1 --port "$port" --served-model-name demo \
      --num-gpu-blocks-override "$BLOCKS" --max-model-len 2048 >"$OUT/engine-$name-$i.log" 2>&1 &
    PIDS+=($!)
    eps+=("127.0.0.1:$port")
  done
  for i in $(seq 0 $((ENGINES - 1))); do wait_health $((PORT_BASE + 1 + i)); done
  local cfg=()
  [ -n "$config" ] && cfg=(--config "$config")
  "$BIN" route "${cfg[@]}" --endpoints "$(IFS=,; echo "${eps[*]}")" --host 127.0.0.1 \
    --port "$PORT_BASE" >"$OUT/router-$name.log" 2>&1 &
  PIDS+=($!)
  wait_health "$PORT_BASE"
  sleep 0.5  # first metrics scrape
  echo "=== $name ==="
  "$BIN" bench serve --base-url "http://127.0.0.1:$PORT_BASE" --model demo \
    --dataset-name prefix-repetition --prefix-repetition-num-prefixes "$PREFIXES" \
    --prefix-repetition-prefix-len "$PREFIX_LEN" --prefix-repetition-suffix-len "$SUFFIX_LEN" \
    --prefix-repetition-output-len "$OUTPUT_LEN" --num-prompts "$PROMPTS" \
    --max-concurrency "$CONCURRENCY" --ignore-eos --seed 1 --metric-percentiles 50,90,99 \
    --disable-tqdm --save-result --result-dir "$OUT" --result-filename "$name.json"
  prefix_counters
  stop_all
}
run_one round-robin "$HERE/baseline.yaml"
run_one prefix-aware ""
echo "results in $OUT"
