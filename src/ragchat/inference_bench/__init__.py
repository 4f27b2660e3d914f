"""The inference benchmark behind `ragchat bench` and `scripts/benchmark_inference.py`.

It needs only an OpenAI-compatible server (vLLM, OpenAI, or ragchat's own `/v1/chat/completions`) and light
dependencies (httpx, numpy, rich, matplotlib for plots): no torch on its import path.

Modules: `config` (one run's settings), `workloads` (the prompts), `client` (one streamed request, timed per
chunk; server probes), `prometheus` (vLLM `/metrics` around each step), `metrics` (vLLM's definitions of
TTFT/ITL/TPOT, percentiles, goodput, capacity), `runner` (the sweep and the prefix-cache experiment),
`report` and `plots` (JSON, Markdown, PNG, console tables), `compare` (two runs side by side).
"""
