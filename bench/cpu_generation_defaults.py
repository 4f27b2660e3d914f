"""Which sampling defaults keep the cpu preset's SmolLM2-135M from repeating itself (docs/benchmarks.md).

    PYTHONPATH=src .venv/bin/python bench/cpu_generation_defaults.py [--base-url http://127.0.0.1:8000/v1]

Six questions on python3.11-doc pages (the sample corpus), each sent with the RAG system prompt and the start
of its page, at the app's temperature (0.2), once per candidate default given as a request parameter (what
`--override-generation-config` makes the server's default). Printed per candidate: the share of repeated
4-word sequences in the answers (mean and max; 0 = none), the mean answer length, and the start of one answer.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import statistics
from pathlib import Path

import httpx
from ragchat.bench.workloads import RAG_SYSTEM_PROMPT

DOCS = Path("/usr/share/doc/python3.11/html/library")
QUESTIONS = (
    ("threading", "How do I wait for a thread to finish?"),
    ("queue", "What is the difference between Queue and LifoQueue?"),
    ("json", "How do I write JSON to a file?"),
    ("csv", "How do I read a CSV file with a header?"),
    ("tempfile", "How do I create a temporary directory?"),
    ("secrets", "How do I make a secure random token?"),
)
CANDIDATES: tuple[dict[str, float], ...] = (
    {},
    {"repetition_penalty": 1.1},
    {"repetition_penalty": 1.2},
    {"repetition_penalty": 1.3},
    {"frequency_penalty": 0.5},
)


def page_text(page: str, chars: int = 2400) -> str:
    text = re.sub(r"<[^>]+>", " ", (DOCS / f"{page}.html").read_text(errors="replace"))
    return " ".join(html.unescape(text).split()[60:])[:chars]  # past the navigation


def repeated_4grams(text: str) -> float:
    words = text.lower().split()
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()
    for candidate in CANDIDATES:
        repeats, lengths, sample = [], [], ""
        for page, question in QUESTIONS:
            system = f"{RAG_SYSTEM_PROMPT}\n\nPassages:\n[1] {page_text(page)}"
            body = {
                "model": args.model,
                "temperature": 0.2,
                "max_tokens": 200,
                "seed": 1,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
                **candidate,
            }
            answer = httpx.post(f"{args.base_url}/chat/completions", json=body, timeout=300).json()
            text = answer["choices"][0]["message"]["content"]
            repeats.append(repeated_4grams(text))
            lengths.append(answer["usage"]["completion_tokens"])
            sample = sample or text[:200].replace("\n", " ")
        print(
            f"{json.dumps(candidate) or 'none'}: repeated 4-grams mean {statistics.mean(repeats):.2f} "
            f"(max {max(repeats):.2f}), {statistics.mean(lengths):.0f} tokens\n    {sample}"
        )


if __name__ == "__main__":
    main()
