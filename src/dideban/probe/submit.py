"""Submitting measurements to the collector, with an on-disk queue when it cannot be reached.

`Submitter` follows OONI's probe flow: open a report per test (`POST /report`), submit each
measurement as it completes (`POST /report/{id}`), close the report. Every measurement is
scrubbed of the probe's addresses before it is sent *or* queued. When the collector is
unreachable, times out or answers 5xx, the measurement goes to the queue
(`dideban.probe.queue`) and the submitter stops trying the network for `retry_after` seconds
(so a run with the collector down does not wait on every measurement). `drain()` resubmits
the queue with bounded exponential backoff.

Exactly once: a queue entry is removed only after a uid came back. Before an entry is first
sent it carries a fixed report id (a new report is opened and written into the entry if it
had none), so a retry after a lost reply resends the same report id and content, which the
collector answers with the uid it already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dideban.model.labnet import is_loopback
from dideban.model.report import OpenReport
from dideban.netx.collector_client import CollectorClient, CollectorRejected, CollectorUnavailable
from dideban.netx.network import Network
from dideban.probe.queue import MeasurementQueue, QueueEntry
from dideban.probe.scrub import scrub_measurement


@dataclass(frozen=True)
class SubmitOutcome:
    measurement_uid: str | None
    queued: bool
    error: str | None = None


@dataclass
class DrainResult:
    uploaded: list[tuple[str, str]] = field(default_factory=list)  # (entry name, uid)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (entry name, error)
    remaining: int = 0
    error: str | None = None


class Submitter:
    def __init__(
        self,
        collector_url: str,
        queue_dir: Path,
        *,
        probe_addresses: Iterable[str] = (),
        network: Network | None = None,
        retry_after: float = 30.0,
        timeout: float = 15.0,
        client: CollectorClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.collector_url = collector_url
        self.queue = MeasurementQueue(queue_dir)
        self.probe_addresses = list(probe_addresses)
        self.retry_after = retry_after
        self._client = client or CollectorClient(collector_url, network=network, timeout=timeout)
        self._sleep = sleep
        self._params: OpenReport | None = None
        self._report_id: str | None = None
        self._down_until = 0.0
        self._reached = False

    # --- check-in -----------------------------------------------------------------------

    async def check_in(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """OONI's check-in (POST /api/v1/check-in): the URLs to measure, the test helpers and,
        from a Dideban collector, the address it saw the probe at (`probe_ip`), which is then
        scrubbed from everything this submitter sends. None when the collector is down."""
        try:
            answer = await self._client.check_in(request)
        except CollectorUnavailable:
            self._mark_down()
            return None
        self._reached = True
        seen = answer.get("probe_ip")
        if (
            isinstance(seen, str)
            and seen
            and not is_loopback(seen)
            and seen not in self.probe_addresses
        ):
            self.probe_addresses.append(seen)
        return answer

    # --- the report of this run ------------------------------------------------------

    async def open(
        self,
        test_name: str,
        test_version: str,
        probe_cc: str,
        probe_asn: str,
        software_name: str,
        software_version: str,
    ) -> str | None:
        """Open a report for the measurements that follow; None (and later measurements are
        queued with no report) when the collector cannot be reached now."""
        self._params = OpenReport(
            test_name, test_version, probe_cc, probe_asn, software_name, software_version
        )
        await self._ensure_report()
        return self._report_id

    def _is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _mark_down(self) -> None:
        self._down_until = time.monotonic() + self.retry_after

    async def _ensure_report(self) -> str | None:
        if self._report_id is not None or self._params is None or self._is_down():
            return self._report_id
        try:
            self._report_id = await self._client.open_report(self._params.to_json())
            self._reached = True
        except CollectorUnavailable:
            self._mark_down()
        return self._report_id

    async def submit(self, measurement: dict[str, Any]) -> SubmitOutcome:
        """Scrub, then submit (or queue). Never raises for network trouble."""
        if self._params is None:
            raise RuntimeError("Submitter.open() must be called before submit()")
        clean = scrub_measurement(measurement, self.probe_addresses)
        report_id = await self._ensure_report()
        if report_id is None:
            clean["report_id"] = ""
            self.queue.put(self.collector_url, self._params, None, clean, "collector unreachable")
            return SubmitOutcome(None, True, "collector unreachable")
        clean["report_id"] = report_id
        try:
            uid = await self._client.submit(report_id, clean)
        except CollectorUnavailable as exc:
            self._mark_down()
            self.queue.put(self.collector_url, self._params, report_id, clean, str(exc))
            return SubmitOutcome(None, True, str(exc))
        except CollectorRejected as exc:
            return SubmitOutcome(None, False, f"{exc.code}: {exc.message}")
        self._reached = True
        self.queue.log_upload(uid, report_id, clean, "submit")
        return SubmitOutcome(uid, False, None)

    async def close(self, *, drain: bool = True) -> None:
        """Close the report; then, if the collector answered during this run, upload what
        earlier runs left in the queue (one attempt each: `dideban upload` retries more)."""
        try:
            if self._report_id is not None and not self._is_down():
                # A report left open loses nothing: queued measurements keep its id.
                with contextlib.suppress(CollectorUnavailable, CollectorRejected):
                    await self._client.close_report(self._report_id)
                self._report_id = None
            if drain and self._reached and not self._is_down() and self.queue.pending():
                await self.drain(attempts=1, only_mine=True)
        finally:
            await self._client.aclose()

    # --- the queue -------------------------------------------------------------------

    async def drain(
        self,
        *,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        only_mine: bool = False,
    ) -> DrainResult:
        """Upload every queued measurement. A transient failure is retried after a delay
        that doubles (from `base_delay`, capped at `max_delay`) up to `attempts` times in a
        row; then the drain stops and the rest stays queued for the next one. With
        `only_mine`, entries queued for another collector URL are left alone."""
        result = DrainResult()
        reports: dict[OpenReport, str] = {}
        delay = base_delay
        failures_in_a_row = 0
        entries = self.queue.pending()
        if only_mine:
            entries = [e for e in entries if e.collector_url == self.collector_url]
        i = 0
        while i < len(entries):
            entry = entries[i]
            try:
                uid = await self._upload(entry, reports)
            except CollectorUnavailable as exc:
                failures_in_a_row += 1
                entry.attempts += 1
                entry.last_error = str(exc)
                if failures_in_a_row >= attempts:
                    self.queue.save(entry)
                    result.error = str(exc)
                    break
                await self._sleep(delay)
                delay = min(max_delay, delay * 2)
                continue  # retry the same entry
            except CollectorRejected as exc:
                error = f"{exc.code}: {exc.message}"
                self.queue.reject(entry, error)
                result.rejected.append((entry.name, error))
            else:
                result.uploaded.append((entry.name, uid))
            failures_in_a_row = 0
            delay = base_delay
            i += 1
        result.remaining = len(self.queue.pending())
        self._down_until = 0.0 if result.error is None else self._down_until
        return result

    async def _upload(self, entry: QueueEntry, reports: dict[OpenReport, str]) -> str:
        for _ in range(2):
            if entry.report_id is None:
                rid = reports.get(entry.report)
                if rid is None:
                    rid = await self._client.open_report(entry.report.to_json())
                    reports[entry.report] = rid
                entry.report_id = rid
                entry.measurement["report_id"] = rid
                # Persist the report id before the first send: a retry must resend the very
                # same request, or a lost reply would turn into a second stored copy.
                self.queue.save(entry)
            try:
                uid = await self._client.submit(entry.report_id, entry.measurement)
            except CollectorRejected as exc:
                if exc.code not in ("report_closed", "unknown_report"):
                    raise
                # The report was closed (or forgotten) while this was queued, and the
                # measurement is not stored (else the uid would have come back): reopen.
                if reports.get(entry.report) == entry.report_id:
                    del reports[entry.report]
                entry.report_id = None
                continue
            self.queue.log_upload(uid, entry.report_id, entry.measurement, "drain")
            self.queue.remove(entry)
            self._reached = True
            return uid
        raise CollectorRejected(409, "report_closed", "the report closed twice while draining")
