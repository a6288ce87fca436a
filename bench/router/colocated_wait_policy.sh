#!/usr/bin/env bash
# Engines that share the machine: ENGINES moeserve engines and a `moeserve route` (llm-d's
# default prefix-aware profile) on one host, driven by `moeserve bench serve` with a
# shared-prefix workload, once per compute-thread wait setting. Each setting is an
# environment assignment applied to every engine and the router ("" = the default
# environment); engines are restarted between settings. ROUNDS > 1 repeats the whole list,
# interleaved, for medians on a noisy machine. Prints one summary line per run.
#
# Usage: bench/router/colocated_wait_policy.sh MOESERVE_BINARY MODEL_DIR [OUT_DIR]
# Environment (defaults): SETTINGS="|MOESERVE_SPINCOUNT=default|OMP_WAIT_POLICY=passive"
#   ROUNDS=1 ENGINES=3 BLOCKS=600 PREFIXES=6 PREFIX_LEN=1024 SUFFIX_LEN=32 OUTPUT_LEN=16
#   PROMPTS=120 CONCURRENCY=8 PORT_BASE=8400
set -euo pipefail
BIN="$1"
MODEL="$2"
OUT="${3:-$(mktemp -d)}"
SETTINGS=${SETTINGS-"|MOESERVE_SPINCOUNT=default|OMP_WAIT_POLICY=passive"}
ROUNDS=${ROUNDS:-1} ENGINES=${ENGINES:-3} BLOCKS=${BLOCKS:-600} PREFIXES=${PREFIXES:-6}
PREFIX_LEN=${PREFIX_LEN:-1024} SUFFIX_LEN=${SUFFIX_LEN:-32} OUTPUT_LEN=${OUTPUT_LEN:-16}
PROMPTS=${PROMPTS:-120} CONCURRENCY=${CONCURRENCY:-8} PORT_BASE=${PORT_BASE:-8400}
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
run_one() {
  local setting="$1" tag="$2"
  local envs=()
  [ -n "$setting" ] && envs=("$setting")
  local eps=()
  for i in $(seq 0 $((ENGINES - 1))); do
    local port=$((PORT_BASE + 1 + i))
    env "${envs[@]}" "$BIN" serve "$MODEL" --host 127.0.0.1 --port "$port" \
      --served-model-name demo --num-gpu-blocks-override "$BLOCKS" --max-model-len 2048 \
      >"$OUT/engine-$tag-$i.log" 2>&1 &
    PIDS+=($!)
    eps+=("127.0.0.1:$port")
  done
  for i in $(seq 0 $((ENGINES - 1))); do wait_health $((PORT_BASE + 1 + i)); done
  env "${envs[@]}" "$BIN" route --endpoints "$(IFS=,; echo "${eps[*]}")" --host 127.0.0.1 \
    --port "$PORT_BASE" >"$OUT/router-$tag.log" 2>&1 &
  PIDS+=($!)
  wait_health "$PORT_BASE"
  sleep 0.5  # first metrics scrape
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  "$BIN" bench serve --base-url "http://127.0.0.1:$PORT_BASE" --model demo \
    --dataset-name prefix-repetition --prefix-repetition-num-prefixes "$PREFIXES" \
    --prefix-repetition-prefix-len "$PREFIX_LEN" --prefix-repetition-suffix-len "$SUFFIX_LEN" \
    --prefix-repetition-output-len "$OUTPUT_LEN" --num-prompts "$PROMPTS" \
    --max-concurrency "$CONCURRENCY" --ignore-eos --seed 1 --metric-percentiles 50,90,99 \
    --disable-tqdm --save-result --result-dir "$OUT" --result-filename "$tag.json" \
    >"$OUT/bench-$tag.log" 2>&1
  python3 - "$OUT/$tag.json" "${setting:-(default environment)}" "$load" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<32} load {sys.argv[3]:<16} duration {r['duration']:7.2f} s  "
      f"completed {r['completed']:4d}  req/s {r['request_throughput']:6.2f}  "
      f"output tok/s {r['output_throughput']:7.1f}  mean TTFT {r['mean_ttft_ms']:8.1f} ms")
PY
  stop_all
}
IFS='|' read -r -a LIST <<<"$SETTINGS"
for round in $(seq 1 "$ROUNDS"); do
  for k in "${!LIST[@]}"; do run_one "${LIST[$k]}" "r$round-s$k"; done
done
echo "results in $OUT"
