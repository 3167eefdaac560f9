"""Run the API and dashboard in a background thread (for `dideban demo` and tests)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from dideban.api.app import create_app


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, then close the store reader (a DuckDB connection left to the
        interpreter's exit is torn down in the wrong order and can abort the process)."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout)
        reader = getattr(getattr(self.server.config.app, "state", None), "reader", None)
        if reader is not None:
            reader.close()


def start_server(
    db_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout: float = 15.0,
    **app_options: Any,
) -> RunningServer:
    """Serve `create_app(db_path, **app_options)` on host:port (0: any free port) from a daemon
    thread; returns once it accepts connections. Raises RuntimeError if it does not start."""
    app = create_app(db_path, **app_options)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dideban-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the dashboard server did not start on {host}:{port}")
        time.sleep(0.02)
    sockname = server.servers[0].sockets[0].getsockname()
    shown = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
    return RunningServer(f"http://{shown}:{sockname[1]}", server, thread)
