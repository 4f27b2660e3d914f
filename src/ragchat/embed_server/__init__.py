"""`ragchat embed-server`: the guide's embedding server, OpenAI-compatible (`POST /v1/embeddings`).

The app points at it with `EMBEDDING_BACKEND=openai` and `EMBEDDING_BASE_URL=http://HOST:8081/v1`
(port 8081: the guide gives 8080 to both this server and the app). Concurrent requests are batched into
one model call (`ragchat.infra.embeddings.batching.MicroBatcher`). Models run on sentence-transformers
(torch) by default; ONNX Runtime (`--runtime onnx`, same vectors) is faster for single texts but slower
for the batches the server forms under load (measured in docs/benchmarks.md); `onnx-int8` is faster
but changes the vectors slightly.
"""
