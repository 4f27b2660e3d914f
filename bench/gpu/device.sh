#!/usr/bin/env bash
# Runs ON the lent GPU machine (through the device tool), from the repo root. Subcommands:
#   stash                 copy whatever .stageK / .gpuK part this call carried into /tmp/stage (one per call)
#   vllm [ARGS]           unpack the parts, install vLLM 0.26.0 and the app's wheels, start vLLM (setsid) with
#                         the guide's settings on a Llama-3.1-8B-shaped dummy-weight model, wait for /health
#   sweep                 our benchmark (short + RAG workloads, 1..64 users, SLO, prefix-cache experiment)
#   fidelity              (after `vllm --no-enable-prefix-caching`) our tool vs vLLM's own `vllm bench serve` on
#                         the same prompts, alternating, in the same call
#   app                   ragchat's added TTFT at 1,16,64 users (one worker, then four), and decode speed
#                         through ragchat (setsid) vs vLLM directly at 1,16,64 (--backend app vs vllm)
# Results go to $OUT as tarballs (the device tool returns at most 8 files).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
MODEL_DIR=/tmp/gpu/llama-3.1-8b-shape
MODEL_NAME=llama-3.1-8b-shape
site() { export PYTHONPATH=/tmp/vsite:/tmp/asite:$PWD/src; }

wait_http() {  # url seconds
  for _ in $(seq 1 "$2"); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "no answer from $1 after $2 s" >&2; return 1
}

case "${1:-}" in
stash)
  mkdir -p /tmp/stage
  for d in .stage[0-9] .gpu[0-9]; do [ -d "$d" ] && cp "$d"/* /tmp/stage/; done
  ls -la /tmp/stage; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import pandas, sys; print("pandas", pandas.__version__, sys.version)' || true
  ;;
vllm)
  mkdir -p /tmp/vw /tmp/gpu
  cat /tmp/stage/p* | tar xf - -C /tmp/vw
  cat /tmp/stage/g* | tar xf - -C /tmp/gpu
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/vsite /tmp/vw/*.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/asite /tmp/gpu/wheels/*.whl
  site
  python3 -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
  # The guide's settings. Prefix caching and chunked prefill are on by default in vLLM's V1 engine.
  setsid nohup python3 -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR" \
    --served-model-name "$MODEL_NAME" --load-format dummy --max-model-len 8192 \
    --gpu-memory-utilization 0.90 --port 8000 "${@:2}" > /tmp/vllm.log 2>&1 < /dev/null &
  wait_http http://127.0.0.1:8000/health 480 || { tail -50 /tmp/vllm.log; exit 1; }
  grep -E "KV cache|Maximum concurrency|GPU KV" /tmp/vllm.log | tail -3
  # One warm-up request (the first after start-up is slow).
  curl -fsS http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \
    -d "{\"model\":\"$MODEL_NAME\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":8}" >/dev/null
  echo "vLLM ready"
  ;;
sweep)
  site
  python3 scripts/benchmark_inference.py --backend vllm --base-url http://127.0.0.1:8000/v1 \
    --model "$MODEL_NAME" --workloads chat,rag --concurrency 1,2,4,8,16,32,64 --runs 64 \
    --max-tokens 128 --ignore-eos --slo ttft_p95=500,tpot_p95=50 --prefix-concurrency 16 \
    --prefix-runs 64 --no-plots --output /tmp/results/sweep
  tar czf "$OUT/sweep.tgz" -C /tmp/results .
  ;;
fidelity)
  # Run on a vLLM started with `vllm --no-enable-prefix-caching`, or each tool finds the other's prompts cached.
  site
  python3 bench/inference_fidelity.py --base-url http://127.0.0.1:8000/v1 --model "$MODEL_NAME" \
    --tokenizer "$MODEL_DIR" --vllm-python python3 --concurrency 1,16 --num-prompts 64 --output-len 128 \
    --repeats 2 --mode sequential --output /tmp/results/fidelity
  tar czf "$OUT/fidelity.tgz" -C /tmp/results/fidelity .
  ;;
app)
  site
  export LOCAL_EMBEDDING_MODEL=/tmp/gpu/all-MiniLM-L6-v2
  mkdir -p /tmp/results/app
  # Added TTFT, same final prompt through the app and direct (the bench starts its own app and store): the
  # app as the guide starts it, then as `ragchat serve --workers 4`.
  for workers in 1 4; do
    python3 bench/app_overhead.py --vllm-url http://127.0.0.1:8000/v1 --users 1 16 64 --per-user 4 \
      --rounds 3 --passes 2 --max-tokens 64 --workers "$workers" \
      --app-env LOCAL_EMBEDDING_MODEL="$LOCAL_EMBEDDING_MODEL" --out "/tmp/results/app/app_overhead-w$workers.json"
  done
  # Per-user decode speed: --backend app vs --backend vllm on the short chat workload.
  export RAGCHAT_DATA_DIR=/tmp/appdata LLM_BACKEND=vllm VLLM_BASE_URL=http://127.0.0.1:8000/v1 \
    VLLM_MODEL="$MODEL_NAME" RAGCHAT_AUTH=off RAGCHAT_HOST=127.0.0.1
  python3 -m ragchat ingest tests/data/chat_corpus
  setsid nohup python3 -m uvicorn app.main:app --host 127.0.0.1 --port 8080 > /tmp/app.log 2>&1 < /dev/null &
  wait_http http://127.0.0.1:8080/health 120 || { tail -50 /tmp/app.log; exit 1; }
  for backend in vllm app; do
    url=http://127.0.0.1:8000/v1 model=$MODEL_NAME
    [ "$backend" = app ] && url=http://127.0.0.1:8080/v1 model=ragchat/default
    python3 scripts/benchmark_inference.py --backend "$backend" --base-url "$url" --model "$model" \
      --metrics-url http://127.0.0.1:8000 --workloads chat --concurrency 1,16,64 --runs 64 \
      --max-tokens 128 --ignore-eos --no-prefix-experiment --no-plots --output "/tmp/results/app/$backend"
  done
  cp /tmp/app.log /tmp/results/app/
  tar czf "$OUT/app.tgz" -C /tmp/results/app .
  ;;
*) sed -n 2,9p "$0"; exit 2 ;;
esac
