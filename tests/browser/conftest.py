"""A live dashboard on loopback and Debian's chromium driven by Playwright (no download)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dideban.api.samplestore import build_sample_store
from dideban.api.server import start_server
from dideban.model.verdict import Verdict

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which(CHROMIUM) is None:
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install chromium)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@dataclass
class LiveServer:
    url: str
    verdicts: list[Verdict]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    db, verdicts = build_sample_store(tmp_path_factory.mktemp("browser-store"), n=400, seed=5)
    running = start_server(db)
    try:
        yield LiveServer(running.url, verdicts)
    finally:
        running.stop()
        running.server.config.app.state.reader.close()


SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "ooni-samples"


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard over a store that `dideban ingest` filled from real OONI measurements."""
    from typer.testing import CliRunner

    from dideban.cli import build_app

    root = tmp_path_factory.mktemp("browser-real")
    shutil.copytree(SAMPLES, root / "data")
    db = root / "store.duckdb"
    args = ["ingest", "--data-dir", str(root / "data"), "--db", str(db)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    running = start_server(db)
    try:
        yield running.url
    finally:
        running.stop()
        running.server.config.app.state.reader.close()


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard over a store filled from a lab run: the probe measures the `iran`
    scenario of the userspace censorship lab (loopback only), then `dideban ingest`."""
    from typer.testing import CliRunner

    from dideban.cli import build_app

    root = tmp_path_factory.mktemp("browser-lab")
    out = root / "lab.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "dideban", "run", "websites", "--lab", "iran", "--output", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0 and out.exists(), run.stdout[-2000:] + run.stderr[-2000:]
    db = root / "store.duckdb"
    result = CliRunner().invoke(build_app(), ["ingest", "--data-dir", str(out), "--db", str(db)])
    assert result.exit_code == 0, result.output
    running = start_server(db)
    try:
        yield running.url
    finally:
        running.stop()
        running.server.config.app.state.reader.close()


# Module scope, not session: sync Playwright keeps an event loop running in this thread while
# it is open, and every later asyncio test would fail with "cannot be called from a running
# event loop". Closing it at the end of each browser module keeps the rest of the suite clean.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield b
        finally:
            b.close()


@dataclass
class PageWatch:
    """A page plus everything that went wrong on it (console errors, off-machine requests)."""

    page: Any
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _watch(context: Any) -> PageWatch:
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(page)
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            # Served entirely by Dideban: anything else is a defect, and never leaves the machine.
            watch.foreign.append(url)
            r.abort()

    page.route("**/*", route)
    return watch


@pytest.fixture
def desktop(browser: Any) -> Iterator[PageWatch]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        yield _watch(context)
    finally:
        context.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[PageWatch]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        yield _watch(context)
    finally:
        context.close()
