"""The `vllm_server` fixture: a real vLLM CPU server serving SmolLM2-135M-Instruct (placeholder)."""
