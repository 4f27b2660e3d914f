#!/usr/bin/env bash
# vLLM's router on the lent GPU: two vLLM workers sharing the ONE GPU (a two-GPU kind was not lent), vllm-router
# in front, bench/router_policies.py (cache_aware vs round_robin) as on the CPU machine (docs/benchmarks.md).
#
#   prepare   HERE, from the repo root: vLLM 0.26.0's wheels (.stage0-5 from ../shared/tools/gpu-vllm-stage.sh),
#             vllm-router 0.1.17 and its wheels, a Llama-3.1-8B-shaped model folder (make_model_dir.py), the
#             corpus pages, and this commit's src/, bench/ and scripts/, as one tar split into git-ignored
#             .stagegpu0 .. .stagegpuN (<= 54 MiB each: each travels beside the ~7 MiB tree, under 64 MiB)
# Device tool, kind nvidia-h100-x1, each call within 30 s of the previous one returning:
#   once per part, carrying .stagegpuK:  mkdir -p /tmp/stage && cp .stagegpu*/* /tmp/stage/
#   then:  mkdir -p /tmp/gpu && cat /tmp/stage/r? | tar xf - -C /tmp/gpu && bash /tmp/gpu/repo/bench/gpu/router.sh all
#   workers   ON the device: install, start the two workers one after the other (setsid; --enforce-eager, to
#             spare device time: no compile or CUDA-graph capture, ~1 min each)
#   bench     ON the device, same machine: the policy bench, the CPU run's settings and a GPU-sized one;
#             results to $OUT
#   all       workers, then bench
# The device calls run everything from the unpacked copy (/tmp/gpu/repo), whichever checkout travelled.
set -euo pipefail
G=/tmp/gpu
MODEL=llama-3.1-8b-shape
PAGES="threading queue asyncio-task sched secrets tempfile json csv"

wait_http() {  # url seconds
  for _ in $(seq 1 "$2"); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "no answer from $1 after $2 s" >&2; return 1
}

case "${1:-}" in
prepare)
  cd "$(git rev-parse --show-toplevel)"
  [ -d .stage5 ] || { echo "run ../shared/tools/gpu-vllm-stage.sh first (vLLM's wheels in .stage0-5)" >&2; exit 1; }
  work=$(mktemp -d); mkdir -p "$work"/{vw,rw,docs,repo}
  cat .stage[0-9]/p[0-9] | tar xf - -C "$work/vw"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any -d "$work/rw" \
    vllm-router==0.1.17 orjson aiohttp aiohappyeyeballs aiosignal frozenlist multidict propcache yarl attrs
  .venv/bin/python bench/gpu/make_model_dir.py .models/SmolLM2-135M-Instruct "$work/model"
  for page in $PAGES; do cp "/usr/share/doc/python3.11/html/library/$page.html" "$work/docs/"; done
  git archive HEAD src bench/router_policies.py bench/gpu scripts/start_router.sh | tar xf - -C "$work/repo"
  rm -rf .stagegpu[0-9]*
  tar cf - -C "$work" . | split -b 54m -d -a 1 - .stagegpu-part
  i=0; for f in .stagegpu-part*; do mkdir -p ".stagegpu$i"; mv "$f" ".stagegpu$i/r$i"; i=$((i+1)); done
  rm -rf "$work"
  echo "prepared .stagegpu0 .. .stagegpu$((i-1)); carry one per call: mkdir -p /tmp/stage && cp .stagegpu*/* /tmp/stage/"
  ;;
workers)
  export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/vsite "$G"/vw/*.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/rsite "$G"/rw/*.whl
  export PYTHONPATH=/tmp/vsite
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
  # One after the other: each sizes its KV cache from the memory it sees free while it profiles.
  for port in 8101 8102; do
    setsid nohup python3 -m vllm.entrypoints.openai.api_server --model "$G/model" --served-model-name "$MODEL" \
      --load-format dummy --max-model-len 8192 --gpu-memory-utilization 0.4 --port "$port" --enforce-eager \
      > "/tmp/vllm-$port.log" 2>&1 < /dev/null &
    wait_http "http://127.0.0.1:$port/health" 300 || { tail -60 "/tmp/vllm-$port.log"; exit 1; }
    grep -E "KV cache|Maximum concurrency" "/tmp/vllm-$port.log" | tail -2
    echo "worker $port ready after ${SECONDS}s"
  done
  nvidia-smi --query-gpu=memory.used --format=csv,noheader
  ;;
bench)
  cd "$G/repo"
  export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/vsite:$G/repo/src RAGCHAT_ROUTER_VENV=/tmp/renv
  OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/renv/bin
  # start_router.sh runs $RAGCHAT_ROUTER_VENV/bin/{python,vllm-router}: the image's python3 with the wheels.
  printf '#!/bin/sh\nPYTHONPATH=/tmp/rsite:/tmp/vsite exec python3 "$@"\n' > /tmp/renv/bin/python
  printf '#!/bin/sh\nPYTHONPATH=/tmp/rsite:/tmp/vsite exec python3 -m vllm_router.launch_router "$@"\n' \
    > /tmp/renv/bin/vllm-router
  chmod +x /tmp/renv/bin/python /tmp/renv/bin/vllm-router
  for port in 8101 8102; do  # the first request after start-up is slow
    curl -fsS "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
      -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4}" >/dev/null
  done
  run() {  # name, extra args
    python3 bench/router_policies.py --workers http://127.0.0.1:8101 http://127.0.0.1:8102 --model "$MODEL" \
      --docs "$G/docs" --output "$OUT/$1.json" "${@:2}" 2>&1 | tail -2
  }
  # The CPU run's settings (4 collections x 8 questions, ~3,600-character passages, 2 at a time, 8 tokens)
  run cpu-settings-a
  run cpu-settings-b --policies round_robin cache_aware
  # GPU-sized: 8 collections x 16 questions, ~5,000-character passages (the shortest page has 5.5k), 16 at a
  # time, 32 tokens
  gpu=(--collections 8 --questions 16 --passage-chars 5000 --concurrency 16 --max-tokens 32)
  run gpu-sized-a "${gpu[@]}"
  run gpu-sized-b "${gpu[@]}" --policies round_robin cache_aware
  tail -c 20000 .cache/run/router-8131.log > "$OUT/router.log" 2>/dev/null || true
  for port in 8101 8102; do tail -c 20000 "/tmp/vllm-$port.log" > "$OUT/vllm-$port.log"; done
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  ;;
all) bash "$0" workers && bash "$0" bench ;;
*) sed -n 2,18p "$0"; exit 2 ;;
esac
