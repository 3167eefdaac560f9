"""`dideban lab ...`: up (a real foreground process), status, down, scenarios, generate."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
import typer
from typer.testing import CliRunner

from dideban.lab import find_running_lab
from dideban.lab import netns as netns_lab
from dideban.lab.cli import register
from dideban.lab.scenario import Scenario, load_scenario
from dideban.model.labnet import LabNetwork, LabView

IR_CSV = Path(__file__).resolve().parents[2] / "src" / "dideban" / "data" / "test-lists" / "ir.csv"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[typer.Typer, Path]]:
    monkeypatch.setenv("DIDEBAN_STATE_DIR", str(tmp_path / "state"))
    # `lab down` also removes the netns lab; never touch a real one from this test.
    calls: list[str] = []

    def fake_down() -> list[str]:
        calls.append("down")
        return []

    monkeypatch.setattr(netns_lab, "down", fake_down)
    app = typer.Typer()
    register(app)
    yield app, tmp_path


def test_scenarios_lists_iran(cli: tuple[typer.Typer, Path]) -> None:
    app, _ = cli
    result = CliRunner().invoke(app, ["lab", "scenarios"])
    assert result.exit_code == 0, result.output
    assert "iran" in result.output and str(len(load_scenario("iran").sites)) in result.output


def test_generate_writes_a_loadable_scenario(cli: tuple[typer.Typer, Path]) -> None:
    app, tmp = cli
    out = tmp / "ir-gen.yaml"
    args = ["lab", "generate", "--from", str(IR_CSV), "--out", str(out), "--seed", "5"]
    result = CliRunner().invoke(app, [*args, "--blocked-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    sc = load_scenario(str(out))
    assert sc.name == "ir-generated"
    assert abs(sum(1 for s in sc.sites if s.censor) / len(sc.sites) - 0.2) < 0.01


def test_generate_rejects_bad_input_and_writes_nothing(cli: tuple[typer.Typer, Path]) -> None:
    app, tmp = cli
    out = tmp / "never.yaml"
    runner = CliRunner()
    for args in (
        ["--from", str(tmp / "missing.csv"), "--out", str(out)],
        ["--from", str(IR_CSV), "--out", str(out), "--blocked-fraction", "2"],
        ["--from", str(IR_CSV), "--out", str(tmp / "no-dir" / "x.yaml")],
    ):
        result = runner.invoke(app, ["lab", "generate", *args])
        assert result.exit_code == 2, result.output
        assert "error:" in result.output
    assert sorted(p.name for p in tmp.iterdir()) == []


def test_up_rejects_a_bad_scenario_or_profile(cli: tuple[typer.Typer, Path]) -> None:
    app, tmp = cli
    result = CliRunner().invoke(app, ["lab", "up", "--scenario", "no-such-scenario"])
    assert result.exit_code == 2 and "no scenario 'no-such-scenario'" in result.output
    result = CliRunner().invoke(app, ["lab", "up", "--profile", "XYZ"])
    assert result.exit_code == 2 and "no ISP profile 'XYZ'" in result.output
    assert not (tmp / "state" / "lab").exists()


def test_up_status_down(cli: tuple[typer.Typer, Path]) -> None:
    app, tmp = cli
    state = tmp / "state" / "lab"
    env = {**os.environ, "DIDEBAN_STATE_DIR": str(tmp / "state"), "COLUMNS": "250"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dideban", "lab", "up", "--scenario", "iran"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        network = None
        while network is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            network = find_running_lab("iran", state)
        assert network is not None, proc.stdout.read().decode() if proc.stdout else ""
        assert network.pid == proc.pid
        host, port = network.probe_view.resolver.rsplit(":", 1)
        reply = dns.query.udp(
            dns.message.make_query("twitter.com", "A"), host, port=int(port), timeout=2
        )
        assert [r.address for rr in reply.answer for r in rr] == ["10.10.34.35"]

        result = CliRunner().invoke(app, ["lab", "status"])
        assert result.exit_code == 0 and "iran: running" in result.output
        # A second lab of the same name is refused while the first runs.
        result = CliRunner().invoke(app, ["lab", "up"])
        assert result.exit_code == 1 and "already running" in result.output

        result = CliRunner().invoke(app, ["lab", "down"])
        assert result.exit_code == 0 and f"stopped lab iran (pid {proc.pid})" in result.output
        assert proc.wait(timeout=15) == 0
        assert not (state / "iran.json").exists()
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "www.instagram.com" in output and "tls_reset" in output
        assert "lab iran stopped" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
    result = CliRunner().invoke(app, ["lab", "status"])
    assert "no userspace lab running" in result.output


def test_up_netns_delegates_to_the_netns_lab(
    cli: tuple[typer.Typer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = cli
    seen: list[tuple[str, str | None]] = []

    def fake_up(scenario: Scenario, *, profile: str | None = None) -> LabNetwork:
        seen.append((scenario.name, profile))
        return LabNetwork(
            name=scenario.name,
            probe_cc="IR",
            probe_asn="AS58224",
            probe_network_name="TCI",
            probe_public_ip="203.0.113.7",
            probe_view=LabView(resolver="198.18.0.53:53", direct=True),
            control_view=LabView(resolver="198.18.0.54:53", direct=True),
            ca_pem="",
        )

    monkeypatch.setattr(netns_lab, "up", fake_up)
    result = CliRunner().invoke(app, ["lab", "up", "--netns", "--profile", "TCI-like"])
    assert result.exit_code == 0, result.output
    assert seen == [("iran", "TCI-like")]
    assert "netns lab iran up" in result.output
