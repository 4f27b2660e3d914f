"""Soak: many streaming chats at once, with a trickle of uploads and searches, for minutes on end.

Shows whether the app stays correct and its memory flat under sustained mixed load against a real vLLM:
every chat must stream to `[DONE]` without an error, every upload and search must succeed, and the app's
resident memory (its process plus the parsing workers it starts) must not keep growing.

The app runs as the guide starts it (`uvicorn app.main:app`, its own process, auth off on loopback) on a
temporary data directory holding the handbook corpus (tests/data/chat_corpus). Each stream asks a question
of that corpus through the official `openai` client, waits for the whole answer, and asks the next. Every
`--upload-every` seconds a new small Markdown file is uploaded (its own name, so each one is stored and
embedded); every `--search-every` seconds a search runs. RSS is read from /proc every 5 s.

Printed per minute: chats finished, errors, TTFT p50/p95 (request sent -> first content chunk), uploads,
searches, app RSS. The verdict line checks 0 errors and RSS growth from minute 2 to the end under 10%.

    scripts/start_vllm.sh --preset cpu --port 8000 --detach
    .venv/bin/python bench/soak.py --vllm-url http://127.0.0.1:8000/v1 --streams 16 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai

from app_overhead import QUESTIONS, free_port  # the same handbook questions (bench/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "chat_corpus"
RSS_EVERY_S = 5.0


@dataclass
class Minute:
    """What happened in one minute of the run."""

    chats: int = 0
    errors: list[str] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    uploads: int = 0
    searches: int = 0
    rss_mb: list[float] = field(default_factory=list)


class Run:
    def __init__(self, started: float) -> None:
        self.started = started
        self.minutes: dict[int, Minute] = defaultdict(Minute)

    def now(self) -> Minute:
        return self.minutes[int((time.monotonic() - self.started) // 60)]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and every process below it, in MB (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(entry.name))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
        todo.extend(children.get(current, []))
    return total_kb / 1024


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def chat_loop(
    client: openai.AsyncOpenAI, worker: int, run: Run, stop_at: float, max_tokens: int
) -> None:
    turn = worker
    while time.monotonic() < stop_at:
        question = QUESTIONS[turn % len(QUESTIONS)]
        turn += 1
        started = time.perf_counter()
        first: float | None = None
        try:
            stream = await client.chat.completions.create(
                model="ragchat",
                messages=[{"role": "user", "content": question}],
                max_tokens=max_tokens,
                stream=True,
            )
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
            minute = run.now()
            minute.chats += 1
            if first is not None:
                minute.ttft.append(first)
        except Exception as exc:  # every failure is a finding: count it and keep going
            run.now().errors.append(f"chat: {type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(1)


async def upload_loop(http: httpx.AsyncClient, run: Run, stop_at: float, every_s: float) -> None:
    number = 0
    while time.monotonic() < stop_at:
        await asyncio.sleep(every_s)
        number += 1
        body = f"# Soak note {number}\n\nThe soak test wrote note {number} at {time.time():.0f}.\n" * 20
        try:
            response = await http.post(
                "/api/documents", files={"files": (f"soak-{number}.md", body.encode(), "text/markdown")}
            )
            if response.status_code >= 300:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            run.now().uploads += 1
        except Exception as exc:
            run.now().errors.append(f"upload: {type(exc).__name__}: {exc}"[:300])


async def search_loop(http: httpx.AsyncClient, run: Run, stop_at: float, every_s: float) -> None:
    turn = 0
    while time.monotonic() < stop_at:
        await asyncio.sleep(every_s)
        turn += 1
        try:
            response = await http.post("/api/search", json={"query": QUESTIONS[turn % len(QUESTIONS)]})
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            run.now().searches += 1
        except Exception as exc:
            run.now().errors.append(f"search: {type(exc).__name__}: {exc}"[:300])


async def rss_loop(pid: int, run: Run, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        run.now().rss_mb.append(tree_rss_mb(pid))
        await asyncio.sleep(RSS_EVERY_S)


def start_app(vllm_url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RAGCHAT_DATA_DIR": str(data_dir),
        "RAGCHAT_AUTH": "off",
        "RAGCHAT_HOST": "127.0.0.1",
        "LLM_BACKEND": "vllm",
        "VLLM_BASE_URL": vllm_url,
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, start_new_session=True)


async def wait_ready(http: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with status {process.returncode}")
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("the app did not answer /health within 300 s")


async def soak(args: argparse.Namespace) -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="ragchat-soak-") as folder:
        process = start_app(args.vllm_url, Path(folder) / "data", port)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=300) as http:
                await wait_ready(http, process)
                files = [
                    ("files", (path.name, path.read_bytes(), "text/markdown")) for path in CORPUS.iterdir()
                ]
                response = await http.post("/api/documents?wait=true", files=files)  # indexed first
                response.raise_for_status()
                client = openai.AsyncOpenAI(
                    base_url=f"{base}/v1", api_key="unused", timeout=600, max_retries=0
                )
                started = time.monotonic()
                stop_at = started + args.minutes * 60
                run = Run(started)
                print(
                    f"soak: {args.streams} streams, {args.minutes} min, upload every {args.upload_every} s, "
                    f"search every {args.search_every} s, app pid {process.pid}",
                    flush=True,
                )
                tasks = [chat_loop(client, i, run, stop_at, args.max_tokens) for i in range(args.streams)]
                tasks += [
                    upload_loop(http, run, stop_at, args.upload_every),
                    search_loop(http, run, stop_at, args.search_every),
                    rss_loop(process.pid, run, stop_at),
                    report_loop(run, stop_at),
                ]
                await asyncio.gather(*tasks)
                await client.close()
        finally:
            process.terminate()
            process.wait(timeout=60)
    return summarise(run, args)


async def report_loop(run: Run, stop_at: float) -> None:
    printed = 0
    while time.monotonic() < stop_at + 60:
        await asyncio.sleep(5)
        current = int((time.monotonic() - run.started) // 60)
        while printed < current and printed in run.minutes:
            print(minute_line(printed, run.minutes[printed]), flush=True)
            printed += 1
        if time.monotonic() >= stop_at:
            return


def minute_line(index: int, minute: Minute) -> str:
    rss = f"{max(minute.rss_mb):.0f}" if minute.rss_mb else "-"
    return (
        f"| {index + 1} | {minute.chats} | {len(minute.errors)} | {percentile(minute.ttft, 50):.2f} | "
        f"{percentile(minute.ttft, 95):.2f} | {minute.uploads} | {minute.searches} | {rss} |"
    )


def summarise(run: Run, args: argparse.Namespace) -> int:
    minutes = [run.minutes[i] for i in sorted(run.minutes) if i < args.minutes]
    print(
        f"\nsoak finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    print("| minute | chats | errors | TTFT p50 s | TTFT p95 s | uploads | searches | app RSS MB (max) |")
    print("|---|---|---|---|---|---|---|---|")
    for index, minute in enumerate(minutes):
        print(minute_line(index, minute))
    errors = [error for minute in minutes for error in minute.errors]
    for error in errors[:20]:
        print(f"  error: {error}")
    after_warmup = [m.rss_mb for m in minutes[1:] if m.rss_mb]
    growth = float("nan")
    if len(after_warmup) >= 2:
        growth = (max(after_warmup[-1]) - max(after_warmup[0])) / max(after_warmup[0])
    chats = sum(m.chats for m in minutes)
    ok = not errors and growth < 0.10
    print(
        f"\n{chats} chats, {len(errors)} errors, RSS growth minute 2 -> {len(minutes)}: {growth:+.1%} "
        f"(target: 0 errors, < +10%): {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--vllm-url", required=True, help="vLLM's OpenAI base URL, e.g. http://127.0.0.1:8000/v1"
    )
    parser.add_argument("--streams", type=int, default=16, help="concurrent streaming chats (default 16)")
    parser.add_argument("--minutes", type=float, default=10, help="how long to run (default 10)")
    parser.add_argument("--upload-every", type=float, default=20, help="seconds between uploads (default 20)")
    parser.add_argument("--search-every", type=float, default=2, help="seconds between searches (default 2)")
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length per chat (default 64)")
    raise SystemExit(asyncio.run(soak(parser.parse_args())))


if __name__ == "__main__":
    main()
