"""Write a Llama-3.1-8B-shaped model folder (config + SmolLM2 tokenizer, no weights) for vLLM's
`--load-format dummy`: random weights compute exactly like real ones, so speed is the real model's.

    python3 bench/gpu/make_model_dir.py .models/SmolLM2-135M-Instruct .gpu/llama-3.1-8b-shape

The vocabulary is SmolLM2's 49,152 tokens (the tokenizer must cover every id the model can emit), so the
LM head reads 0.4 GB per token instead of the real model's 1.05 GB: decode is a few percent faster than the
real Llama 3.1 8B (16.1 GB of bf16 weights instead of 15.0 + 1.05).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

LLAMA_31_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 49152,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    (target / "config.json").write_text(json.dumps(LLAMA_31_8B, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
