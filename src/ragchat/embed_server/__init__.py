"""`ragchat embed-server`: the guide's embedding server, OpenAI-compatible (`POST /v1/embeddings`).

The app points at it with `EMBEDDING_BACKEND=openai` and `EMBEDDING_BASE_URL=http://HOST:8081/v1`
(port 8081: the guide gives 8080 to both this server and the app). Concurrent requests are batched into
one model call (`batcher.MicroBatcher`); models run on ONNX Runtime by default (same vectors as
sentence-transformers, faster on CPU: see docs/benchmarks.md).
"""
