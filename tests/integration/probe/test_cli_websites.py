"""`dideban run websites` through typer's CliRunner (`dideban demo`: tests/integration/test_demo.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dideban.model.measurement import ENVELOPE_KEYS
from dideban.probe.cli import register

REQUIRED_TEST_KEYS = {
    "queries", "tcp_connect", "tls_handshakes", "requests", "network_events", "control",
    "control_failure", "dns_consistency", "dns_experiment_failure", "http_experiment_failure",
    "body_length_match", "body_proportion", "status_code_match", "headers_match", "title_match",
    "blocking", "accessible", "x_blocking_flags", "client_resolver", "retries", "socksproxy",
    "agent",
}  # fmt: skip


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_output_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    code, output = _invoke("run", "websites", "--input", "http://x.org/", "--output", str(tmp_path))
    assert code == 2 and "is a directory" in output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["run", "websites"],
        ["run", "websites", "--input", "ftp://x.org/"],
        ["run", "websites", "--input", "http://x.org/"],  # no --test-helper without --lab
        ["run", "websites", "--input-file", "/nonexistent/list.csv"],
        ["run", "websites", "--lab", "no-such-scenario"],
        ["run", "websites", "--input", "http://x.org/", "--concurrency", "0"],
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    code, output = _invoke(*args, "--output", str(out))
    assert code == 2, output
    assert not out.exists()


@pytest.mark.slow
def test_run_websites_lab_writes_one_ooni_measurement_per_line(tmp_path: Path) -> None:
    from dideban.lab.scenario import load_scenario

    out = tmp_path / "f.jsonl"
    code, output = _invoke("run", "websites", "--lab", "iran", "--output", str(out))
    assert code == 0, output
    lines = out.read_text(encoding="utf-8").splitlines()
    sites = load_scenario("iran").sites
    assert len(lines) == len(sites)
    for line in lines:
        m = json.loads(line)
        assert set(ENVELOPE_KEYS) <= set(m)
        assert m["test_name"] == "web_connectivity" and m["probe_ip"] == "127.0.0.1"
        assert (m["probe_cc"], m["data_format_version"]) == ("IR", "0.2.0")
        assert m["test_helpers"]["backend"]["type"] == "https"
        assert {"platform", "architecture", "network_type"} <= set(m["annotations"])
        assert set(m["test_keys"]) >= REQUIRED_TEST_KEYS
    assert "web_connectivity results" in output
    assert "blocked" in output
