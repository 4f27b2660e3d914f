"""A stand-in for vLLM at GPU pace, for profiling the app between GPU runs (not a figure of record).

    .venv/bin/python bench/paced_upstream.py --port 8300 --ttft-ms 25 --tpot-ms 6.2 &
    .venv/bin/python bench/app_overhead.py --vllm-url http://127.0.0.1:8300/v1 --users 1 16 --max-tokens 64

On a 2-core machine, vLLM's CPU build and the app share the cores and a prefix-cached TTFT at 16 users
takes seconds, which buries what the app adds (docs/benchmarks.md, "Chat"). This server answers like vLLM
on the H100 measured in "GPU validation" (first token after --ttft-ms, then one token every --tpot-ms,
concurrent streams independent) while using almost no CPU, so `bench/app_overhead.py` against it shows the
app's own added time at 1-64 users on this machine. It speaks just enough of vLLM's API for the app and
that bench: GET /v1/models, POST /tokenize (4 characters a token), POST /v1/chat/completions (streamed,
with usage; the prompt token count is derived from the messages, so both paths of the bench agree), and
GET /metrics with zero prefix-cache counters. Figures that describe ragchat at GPU speed come from the GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json

MODEL = "paced"


def tokens_of(payload: object) -> int:
    return max(1, len(json.dumps(payload)) // 4)


class PacedUpstream:
    def __init__(self, ttft_s: float, tpot_s: float, max_model_len: int) -> None:
        self.ttft_s = ttft_s
        self.tpot_s = tpot_s
        self.max_model_len = max_model_len

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                method, path = head.split(b" ")[:2]
                if path.endswith(b"/chat/completions"):
                    await self.stream(writer, body)
                elif path.endswith(b"/models"):
                    entry = {"id": MODEL, "object": "model", "max_model_len": self.max_model_len}
                    self.send(writer, 200, "application/json", {"object": "list", "data": [entry]})
                elif path == b"/tokenize":
                    self.send(writer, 200, "application/json", {"count": tokens_of(body)})
                elif path == b"/metrics":
                    text = "vllm:prefix_cache_hits_total 0\nvllm:prefix_cache_queries_total 0\n"
                    self.send(writer, 200, "text/plain", text)
                else:
                    self.send(writer, 404, "application/json", {"error": {"message": f"{method!r} {path!r}"}})
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @staticmethod
    def send(writer: asyncio.StreamWriter, status: int, kind: str, payload: object) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {len(data)}\r\n\r\n".encode()
        )
        writer.write(data)

    async def stream(self, writer: asyncio.StreamWriter, body: dict[str, object]) -> None:
        count = int(body.get("max_tokens") or 16)  # type: ignore[call-overload]
        prompt_tokens = tokens_of(body.get("messages"))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        start = asyncio.get_running_loop().time()

        def chunk(payload: bytes) -> bytes:  # one SSE event in one HTTP chunk
            data = b"data: " + payload + b"\n\n"
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        def event(**fields: object) -> bytes:
            head = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
            return chunk(json.dumps({**head, **fields}).encode())

        for index in range(count):
            due = start + self.ttft_s + index * self.tpot_s
            await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
            delta = {"role": "assistant", "content": " word"} if index == 0 else {"content": " word"}
            finish = "length" if index == count - 1 else None
            writer.write(event(choices=[{"index": 0, "delta": delta, "finish_reason": finish}]))
            await writer.drain()
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count,
            "total_tokens": prompt_tokens + count,
        }
        writer.write(event(choices=[], usage=usage))
        writer.write(chunk(b"[DONE]") + b"0\r\n\r\n")
        await writer.drain()


async def serve(port: int, upstream: PacedUpstream) -> None:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--ttft-ms", type=float, default=25.0, help="first token after this long")
    parser.add_argument("--tpot-ms", type=float, default=6.2, help="then one token every this long")
    parser.add_argument("--max-model-len", type=int, default=8192)
    args = parser.parse_args()
    asyncio.run(serve(args.port, PacedUpstream(args.ttft_ms / 1000, args.tpot_ms / 1000, args.max_model_len)))


if __name__ == "__main__":
    main()
