"""Running a collector for tests, benchmarks and demos.

- `CollectorProcess`: a real subprocess on 127.0.0.1: start, wait until it answers, SIGKILL,
  stop gracefully (crash tests, the load benchmark).
- `serve_collector`: uvicorn inside the caller's event loop, optionally capturing the raw
  bytes of every request (leak tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from dideban.collector.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class CollectorProcess:
    def __init__(self, data_dir: Path, port: int, log: Path, *, seal_after: float = 3600.0) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.seal_after = seal_after
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0, extra_args: tuple[str, ...] = ()) -> None:
        cmd = [
            sys.executable,
            "-m",
            "dideban",
            "collector",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--seal-after",
            str(self.seal_after),
            *extra_args,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("collector did not start in time")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Served:
    url: str
    data_dir: Path
    captured: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def serve_collector(
    data_dir: Path, port: int = 0, **app_options: Any
) -> AsyncIterator[Served]:
    """The collector on 127.0.0.1:`port` (0: any free port) until the block exits; it
    seals its segments on the way out. `Served.captured` holds (headers, body) per request; the path is header `:path`."""
    app = create_app(data_dir, **({"seal_after": 3600.0} | app_options))
    served = Served("", data_dir)

    async def capturing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recv() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
                    headers[":path"] = scope["path"]
                    served.captured.append((headers, b"".join(chunks)))
            return message

        await app(scope, recv, send)

    config = uvicorn.Config(
        capturing, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "the collector did not start"
    bound = server.servers[0].sockets[0].getsockname()[1]
    served.url = f"http://127.0.0.1:{bound}"
    try:
        yield served
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)
