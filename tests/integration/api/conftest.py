"""A small store of synthetic verdicts whose counts the tests compute independently."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from dideban.api.app import create_app
from dideban.api.samplestore import build_sample_store
from dideban.model.verdict import Verdict


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Verdict]]:
    return build_sample_store(tmp_path_factory.mktemp("api-store"), n=400, seed=5)


SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "ooni-samples"


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store that `dideban ingest` filled from the real OONI samples."""
    from typer.testing import CliRunner

    from dideban.cli import build_app

    root = tmp_path_factory.mktemp("real")
    data = root / "data"
    shutil.copytree(SAMPLES, data)
    db = root / "store.duckdb"
    result = CliRunner().invoke(build_app(), ["ingest", "--data-dir", str(data), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture(scope="session")
def app(sample_store: tuple[Path, list[Verdict]]) -> Iterator[FastAPI]:
    app = create_app(sample_store[0])
    yield app
    app.state.reader.close()


@pytest.fixture
def verdicts(sample_store: tuple[Path, list[Verdict]]) -> list[Verdict]:
    return sample_store[1]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dideban.test") as c:
        yield c
