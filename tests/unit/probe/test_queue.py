"""The probe's queue and Submitter against a scripted fake collector (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dideban.model.report import OpenReport
from dideban.netx.collector_client import CollectorRejected, CollectorUnavailable
from dideban.probe.queue import MeasurementQueue, default_queue_dir
from dideban.probe.submit import Submitter

PARAMS = ("web_connectivity", "0.5.0", "IR", "AS197207", "dideban", "0.1.0")
PROBE_IP = "198.51.100.23"


class FakeCollector:
    """Idempotent like the real one: same report id and content -> same uid, stored once."""

    def __init__(self) -> None:
        self.up = True
        self.lose_replies = 0  # store, then fail the reply, this many times
        self.reject_inputs: set[str] = set()
        self.stored: dict[tuple[str, str], str] = {}
        self.reports: list[str] = []
        self.closed: set[str] = set()
        self.sent: list[str] = []

    def _check(self) -> None:
        if not self.up:
            raise CollectorUnavailable("connection refused")

    async def open_report(self, request: dict[str, Any]) -> str:
        self._check()
        rid = f"20261129T000000Z_webconnectivity_IR_197207_n1_{len(self.reports):016d}"
        self.reports.append(rid)
        return rid

    async def submit(self, report_id: str, measurement: dict[str, Any]) -> str:
        self._check()
        body = json.dumps(measurement, sort_keys=True)
        self.sent.append(body)
        key = (report_id, body)
        if key in self.stored:
            return self.stored[key]
        if report_id in self.closed:
            raise CollectorRejected(409, "report_closed", "closed")
        if measurement.get("input") in self.reject_inputs:
            raise CollectorRejected(422, "unattributable_network", "no")
        self.stored[key] = f"uid-{len(self.stored)}"
        if self.lose_replies:
            self.lose_replies -= 1
            raise CollectorUnavailable("read timeout")
        return self.stored[key]

    async def close_report(self, report_id: str) -> None:
        self._check()
        self.closed.add(report_id)

    async def aclose(self) -> None:
        pass


def _m(n: int) -> dict[str, Any]:
    return {
        "input": f"http://site{n}.example/",
        "probe_ip": PROBE_IP,
        "test_keys": {"requests": [{"response": {"body": f"you are {PROBE_IP}"}}]},
    }


def _submitter(tmp_path: Path, fake: FakeCollector, sleeps: list[float] | None = None) -> Submitter:
    async def sleep(s: float) -> None:
        if sleeps is not None:
            sleeps.append(s)

    return Submitter(
        "http://collector.test",
        tmp_path / "q",
        probe_addresses=[PROBE_IP],
        client=fake,  # type: ignore[arg-type]
        sleep=sleep,
        retry_after=0.0,
    )


async def test_submit_online_scrubs_and_logs_upload(tmp_path: Path) -> None:
    fake = FakeCollector()
    s = _submitter(tmp_path, fake)
    await s.open(*PARAMS)
    out = await s.submit(_m(1))
    assert out.measurement_uid == "uid-0" and not out.queued and out.error is None
    assert PROBE_IP not in "".join(fake.sent)
    assert json.loads(fake.sent[0])["report_id"] == fake.reports[0]
    assert [u["measurement_uid"] for u in s.queue.uploads()] == ["uid-0"]


async def test_offline_then_drain_exactly_once(tmp_path: Path) -> None:
    fake = FakeCollector()
    fake.up = False
    s = _submitter(tmp_path, fake)
    assert await s.open(*PARAMS) is None
    outcomes = [await s.submit(_m(n)) for n in range(5)]
    assert all(o.queued and o.measurement_uid is None for o in outcomes)
    queued = s.queue.pending()
    assert len(queued) == 5
    # What is on disk is already scrubbed.
    for path in (tmp_path / "q" / "pending").iterdir():
        assert PROBE_IP not in path.read_text()
    fake.up = True
    result = await s.drain()
    assert len(result.uploaded) == 5 and result.remaining == 0 and result.error is None
    assert len(fake.stored) == 5 and len(fake.reports) == 1  # one report opened for the drain
    again = await s.drain()
    assert again.uploaded == [] and len(fake.stored) == 5
    assert len(s.queue.uploads()) == 5


async def test_lost_reply_is_retried_with_the_same_request(tmp_path: Path) -> None:
    fake = FakeCollector()
    s = _submitter(tmp_path, fake)
    await s.open(*PARAMS)
    fake.lose_replies = 1
    out = await s.submit(_m(1))  # stored by the collector, but the reply was lost
    assert out.queued
    result = await s.drain()
    assert len(result.uploaded) == 1
    assert len(fake.stored) == 1  # the retry hit the collector's idempotency
    assert fake.sent[0] == fake.sent[1]


async def test_drain_backs_off_and_stops_after_bounded_attempts(tmp_path: Path) -> None:
    fake = FakeCollector()
    fake.up = False
    sleeps: list[float] = []
    s = _submitter(tmp_path, fake, sleeps)
    await s.open(*PARAMS)
    for n in range(3):
        await s.submit(_m(n))
    result = await s.drain(attempts=5, base_delay=0.5, max_delay=2.0)
    assert sleeps == [0.5, 1.0, 2.0, 2.0]
    assert result.error is not None and result.remaining == 3 and result.uploaded == []
    assert s.queue.pending()[0].attempts == 5


async def test_closed_report_is_reopened_and_rejected_entries_are_kept(tmp_path: Path) -> None:
    fake = FakeCollector()
    s = _submitter(tmp_path, fake)
    await s.open(*PARAMS)
    rid = fake.reports[0]
    fake.up = False
    await s.submit(_m(1))
    await s.submit(_m(2))
    fake.up = True
    fake.closed.add(rid)  # the report was closed while the measurements sat in the queue
    fake.reject_inputs.add("http://site2.example/")
    result = await s.drain()
    assert len(result.uploaded) == 1 and len(result.rejected) == 1
    assert len(fake.reports) == 2  # reopened
    (stored_key,) = fake.stored
    assert stored_key[0] == fake.reports[1]
    assert json.loads(stored_key[1])["report_id"] == fake.reports[1]
    rejected = s.queue.rejected()
    assert len(rejected) == 1 and "unattributable_network" in str(rejected[0].last_error)
    assert s.queue.pending() == []


async def test_rejected_submission_is_not_queued(tmp_path: Path) -> None:
    fake = FakeCollector()
    fake.reject_inputs.add("http://site1.example/")
    s = _submitter(tmp_path, fake)
    await s.open(*PARAMS)
    out = await s.submit(_m(1))
    assert not out.queued and out.measurement_uid is None
    assert out.error is not None and out.error.startswith("unattributable_network")
    assert s.queue.pending() == []


def test_queue_entries_roundtrip_and_default_dir(tmp_path: Path, monkeypatch: Any) -> None:
    q = MeasurementQueue(tmp_path / "q")
    params = OpenReport(*PARAMS)
    e1 = q.put("http://c", params, None, {"input": "a"})
    e2 = q.put("http://c", params, "rid", {"input": "b"})
    assert [e.name for e in q.pending()] == [e1.name, e2.name]
    assert q.pending()[1].report_id == "rid" and q.pending()[0].report == params
    assert not list((tmp_path / "q" / "pending").glob(".*.tmp"))
    q.remove(e1)
    assert [e.name for e in q.pending()] == [e2.name]
    monkeypatch.setenv("DIDEBAN_STATE_DIR", str(tmp_path / "state"))
    assert default_queue_dir() == tmp_path / "state" / "queue"


async def test_a_later_run_uploads_what_earlier_runs_queued(tmp_path: Path) -> None:
    fake = FakeCollector()
    fake.up = False
    earlier = _submitter(tmp_path, fake)
    await earlier.open(*PARAMS)
    await earlier.submit(_m(1))
    await earlier.close()
    # An entry meant for another collector stays where it is.
    earlier.queue.put("http://other.test", OpenReport(*PARAMS), None, {"input": "x"})
    fake.up = True
    later = _submitter(tmp_path, fake)
    await later.open(*PARAMS)
    assert (await later.submit(_m(2))).measurement_uid is not None
    await later.close()
    assert len(fake.stored) == 2
    assert [e.collector_url for e in later.queue.pending()] == ["http://other.test"]


async def test_the_address_seen_at_check_in_is_scrubbed_from_what_follows(tmp_path: Path) -> None:
    seen = "203.0.113.200"  # what a collector across NAT saw: the probe's public address
    fake = FakeCollector()
    asked: list[dict[str, Any]] = []

    async def check_in(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return {"v": 1, "probe_ip": seen, "tests": {"web_connectivity": {"urls": []}}}

    fake.check_in = check_in  # type: ignore[attr-defined]
    s = Submitter(
        "http://collector.test",
        tmp_path / "q",
        probe_addresses=[],
        client=fake,  # type: ignore[arg-type]
    )
    answer = await s.check_in({"probe_cc": "IR", "probe_asn": "AS197207"})
    assert answer is not None and seen in s.probe_addresses
    await s.open(*PARAMS)
    leaky = {"input": "http://echo.example/", "test_keys": {"body": f"your address is {seen}"}}
    assert (await s.submit(leaky)).measurement_uid is not None
    assert seen not in "".join(fake.sent) and "your address is 127.0.0.1" in fake.sent[0]
    assert "probe_ip" not in asked[0]  # the check-in itself sends no address


async def test_check_in_when_the_collector_is_down_is_none(tmp_path: Path) -> None:
    fake = FakeCollector()

    async def check_in(request: dict[str, Any]) -> dict[str, Any]:
        raise CollectorUnavailable("connection refused")

    fake.check_in = check_in  # type: ignore[attr-defined]
    s = _submitter(tmp_path, fake)
    assert await s.check_in({"probe_cc": "IR"}) is None
    assert s.probe_addresses == [PROBE_IP]


def test_open_report_request_is_what_the_collector_reads() -> None:
    from dideban.collector.validate import open_report_request
    from dideban.model.report import OPEN_REPORT_KEYS, OpenReport

    report = OpenReport("web_connectivity", "0.5.0", "IR", "AS197207", "dideban", "0.1.0")
    body = report.to_json()
    assert sorted(body) == sorted(OPEN_REPORT_KEYS)
    assert (body["data_format_version"], body["format"]) == ("0.2.0", "json")
    assert open_report_request(body) == report
