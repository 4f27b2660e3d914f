"""`scripts/start_vllm.sh --dry-run`: the exact command for every preset, with current vLLM's flags."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = REPO_ROOT / "scripts" / "start_vllm.sh"

GPU_PRESETS = {
    "llama-3.1-8b-awq": "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
    "qwen2.5-7b-awq": "Qwen/Qwen2.5-7B-Instruct-AWQ",
    "mistral-7b-awq": "TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
    "llama-3.1-8b-fp16": "meta-llama/Llama-3.1-8B-Instruct",
}
# Flags the guide passes that current vLLM either defaults to (prefix caching, chunked prefill) or that
# force a slower path (`--quantization awq` selected the slow AWQ kernel instead of Marlin).
OBSOLETE_FLAGS = ("--quantization", "--enable-prefix-caching", "--enable-chunked-prefill")


def run_launcher(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_VLLM_")}
    clean_env.update(env or {})
    return subprocess.run(
        ["bash", str(LAUNCHER), *args], capture_output=True, text=True, env=clean_env, timeout=30, check=False
    )


def dry_run(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The printed command split into its environment and argv."""
    result = run_launcher("--dry-run", *args, env=env)
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout.strip())
    assert words[0] == "env"
    environment: dict[str, str] = {}
    index = 1
    while "=" in words[index] and not words[index].startswith("/"):
        name, value = words[index].split("=", 1)
        environment[name] = value
        index += 1
    return environment, words[index:]


def flag(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, f"{name} expected once in {argv}"
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize(("preset", "model"), GPU_PRESETS.items())
def test_gpu_presets_use_the_guides_models_and_current_flags(preset: str, model: str) -> None:
    _, argv = dry_run("--preset", preset)

    assert argv[:3] == [str(REPO_ROOT / "vllm-env" / "bin" / "vllm"), "serve", model]
    assert "--model" not in argv  # `vllm serve` takes the model as its positional argument
    assert flag(argv, "--max-model-len") == "8192"
    assert flag(argv, "--gpu-memory-utilization") == "0.90"
    assert flag(argv, "--port") == "8000"
    assert "--served-model-name" not in argv  # clients use the model id, as the guide's VLLM_MODEL does
    assert "--enforce-eager" not in argv
    for obsolete in OBSOLETE_FLAGS:
        assert obsolete not in argv


def test_cpu_preset_serves_smollm2_offline_on_the_cpu_build() -> None:
    environment, argv = dry_run("--preset", "cpu")

    assert argv[:3] == [
        str(REPO_ROOT / "vllm-env" / "bin" / "python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
    ]
    assert flag(argv, "--model") == str(REPO_ROOT / ".models" / "SmolLM2-135M-Instruct")
    assert flag(argv, "--served-model-name") == "smollm2"
    assert flag(argv, "--max-model-len") == "4096"
    assert "--enforce-eager" in argv
    assert "--gpu-memory-utilization" not in argv
    for obsolete in OBSOLETE_FLAGS:
        assert obsolete not in argv
    assert flag(argv, "--kv-cache-memory-bytes") == "2G"  # VLLM_CPU_KVCACHE_SPACE's default, as a flag
    assert environment["HF_HUB_OFFLINE"] == "1"
    assert environment["VLLM_HOST_IP"] == "127.0.0.1"
    assert environment["VLLM_CACHE_ROOT"]


def test_flags_override_the_preset_and_extra_arguments_pass_through() -> None:
    _, argv = dry_run(
        "--preset",
        "qwen2.5-7b-awq",
        "--port",
        "8100",
        "--max-model-len",
        "4096",
        "--gpu-memory-utilization",
        "0.85",
        "--served-model-name",
        "qwen",
        "--host",
        "0.0.0.0",
        "--",
        "--kv-cache-dtype",
        "fp8",
    )
    assert flag(argv, "--port") == "8100"
    assert flag(argv, "--max-model-len") == "4096"
    assert flag(argv, "--gpu-memory-utilization") == "0.85"
    assert flag(argv, "--served-model-name") == "qwen"
    assert flag(argv, "--host") == "0.0.0.0"
    assert argv[-2:] == ["--kv-cache-dtype", "fp8"]


def test_environment_overrides_the_preset_and_flags_override_the_environment(tmp_path: Path) -> None:
    env = {
        "RAGCHAT_VLLM_PRESET": "mistral-7b-awq",
        "RAGCHAT_VLLM_MODEL": "my-org/my-model-AWQ",
        "RAGCHAT_VLLM_PORT": "8200",
        "RAGCHAT_VLLM_MAX_MODEL_LEN": "2048",
        "RAGCHAT_VLLM_GPU_MEMORY_UTILIZATION": "0.8",
        "RAGCHAT_VLLM_VENV": str(tmp_path / "venv"),
    }
    _, argv = dry_run(env=env)
    assert argv[:3] == [str(tmp_path / "venv" / "bin" / "vllm"), "serve", "my-org/my-model-AWQ"]
    assert flag(argv, "--port") == "8200"
    assert flag(argv, "--max-model-len") == "2048"
    assert flag(argv, "--gpu-memory-utilization") == "0.8"

    _, argv = dry_run("--port", "8300", env=env)
    assert flag(argv, "--port") == "8300"


def test_without_a_gpu_the_cpu_preset_is_chosen(tmp_path: Path) -> None:
    # A PATH whose nvidia-smi fails, as on a host with the driver tools but no working GPU.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    nvidia_smi = fake_bin / "nvidia-smi"
    nvidia_smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    nvidia_smi.chmod(0o755)
    result = run_launcher("--dry-run", env={"PATH": f"{fake_bin}:{os.environ['PATH']}"})

    assert result.returncode == 0, result.stderr
    assert "--served-model-name smollm2" in result.stdout
    assert "using the cpu preset" in result.stderr


def test_with_a_gpu_the_guides_default_preset_is_chosen(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    nvidia_smi = fake_bin / "nvidia-smi"
    nvidia_smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA L4 (UUID: GPU-0)'\n")
    nvidia_smi.chmod(0o755)
    _, argv = dry_run(env={"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert argv[1:3] == ["serve", GPU_PRESETS["llama-3.1-8b-awq"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "llama-70b"], "unknown preset 'llama-70b'"),
        (["--port", "eighty"], "--port must be 1-65535"),
        (["--max-model-len", "8k"], "--max-model-len must be a whole number"),
        (["--gpu-memory-utilization", "90"], "--gpu-memory-utilization must be a fraction"),
        (["--model"], "--model needs a value"),
        (["--enable-prefix-caching"], "unknown option '--enable-prefix-caching'"),
    ],
)
def test_bad_input_is_one_clear_error(args: list[str], message: str) -> None:
    result = run_launcher(*args, "--dry-run")
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_a_gpu_preset_without_a_gpu_refuses_to_start(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    result = run_launcher("--preset", "llama-3.1-8b-awq", env={"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert result.returncode != 0
    assert "needs an NVIDIA GPU" in result.stderr
    assert "--preset cpu" in result.stderr


def test_help_teaches_presets_overrides_and_modes() -> None:
    result = run_launcher("--help")
    assert result.returncode == 0
    for word in (
        *GPU_PRESETS,
        "cpu",
        "--dry-run",
        "--detach",
        "--prepare-only",
        "RAGCHAT_VLLM_PORT",
        "HF_TOKEN",
    ):
        assert word in result.stdout


# Real message text, as huggingface_hub 2.x and vLLM 0.32 word it (a gated download and a first-start
# download cannot happen offline, so their lines are fed to --diagnose; out of memory is shown live in
# tests/integration/test_vllm_launcher.py).
GATED_LOG = """\
(APIServer pid=1) huggingface_hub.errors.GatedRepoError: 403 Client Error. (Request ID: Root=1-abc)
Cannot access gated repo for url https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json.
Access to model meta-llama/Llama-3.1-8B-Instruct is restricted and you are not in the authorized list.
"""
DOWNLOAD_LOG = (
    "(Worker pid=7) INFO 11-25 22:18:50 [weight_utils.py:532] Time spent downloading weights for "
    "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4: 212.5 seconds\n"
)
KV_LOG = (
    "(EngineCore pid=2) ValueError: To serve at least one request with the model's max seq len (8192), "
    "(1.00 GiB KV cache is needed, which is larger than the available KV cache memory (0.50 GiB). "
    "Based on the available memory, the estimated maximum model length is 4096.\n"
)
CUDA_OOM_LOG = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 224.00 MiB.\n"
CPU_KV_LOG = (
    "ValueError: Available memory on node 0 (10.0/22.2 GiB) on kv cache allocation is less than "
    "requested memory for kv (64.0 GiB).\n"
)
NOT_FOUND_LOG = "ValueError: Invalid repository ID or local directory specified: 'meta-lama/Llama-3.1'.\n"
PORT_LOG = "OSError: [Errno 98] Address already in use\n"


@pytest.mark.parametrize(
    ("log", "fix"),
    [
        (GATED_LOG, "hf auth login"),
        (GATED_LOG, "HF_TOKEN"),
        (DOWNLOAD_LOG, "downloads the weights"),
        (KV_LOG, "Lower --max-model-len"),
        (CUDA_OOM_LOG, "lower --gpu-memory-utilization"),
        (CPU_KV_LOG, "VLLM_CPU_KVCACHE_SPACE"),
        (NOT_FOUND_LOG, "model not found"),
        (PORT_LOG, "--port"),
    ],
)
def test_diagnose_recognises_the_guides_troubleshooting_cases(tmp_path: Path, log: str, fix: str) -> None:
    saved = tmp_path / "vllm.log"
    saved.write_text("INFO starting\n" + log + "INFO shutting down\n")
    result = run_launcher("--diagnose", str(saved))
    assert result.returncode == 0
    assert "HINT" in result.stderr and fix in result.stderr


def test_diagnose_reads_stdin_and_says_when_nothing_is_wrong() -> None:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_VLLM_")}
    result = subprocess.run(
        ["bash", str(LAUNCHER), "--diagnose", "-"],
        input="INFO: Application startup complete.\n",
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert "no known problem found" in result.stderr
    assert "HINT" not in result.stderr
