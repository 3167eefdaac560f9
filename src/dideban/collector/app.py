"""The collector's HTTP API: the subset of OONI's probe-services that probes use.

- `POST /api/v1/check-in`, `GET /api/v1/test-helpers`
- `POST /report` (open), `POST /report/{report_id}` (submit), `POST /report/{report_id}/close`
- `GET /metrics` (Prometheus text), `GET /` (health)

Every refusal is `{"error": {"code", "message"}}` with a 4xx (5xx for our own failures), and
nothing is written for it. Bodies are capped while they are read (`max_body_bytes`, also
after zstd decompression). Submissions are group-committed by one writer (`Writer`): a
measurement is acknowledged with its uid only after the fsync that made it durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import zstandard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from dideban.collector import validate
from dideban.collector.checkin import CitizenLabLists, choose_urls
from dideban.collector.errors import CollectorError
from dideban.collector.ids import REPORT_ID_RE, new_measurement_uid, new_report_id
from dideban.collector.metrics import Metrics
from dideban.collector.storage import (
    DEFAULT_SEAL_AFTER,
    DEFAULT_SEGMENT_MAX_BYTES,
    Entry,
    RawStore,
    idempotency_key,
    partition_for,
    stored_line,
)
from dideban.collector.validate import ReportInfo
from dideban.model.report import OpenReport

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY: Final = 16 * 1024 * 1024
BACKEND_VERSION: Final = "dideban-collector-0.1.0"
Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Pending:
    entry: Entry
    future: asyncio.Future[str]


class Writer:
    """One writer thread; submissions that arrive while it fsyncs share the next commit."""

    def __init__(self, store: RawStore, metrics: Metrics, clock: Clock) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="collector-writer")
        self._queue: list[_Pending] = []
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sealer: asyncio.Task[None] | None = None
        self._closing = False

    async def run_in_writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        await self.run_in_writer(self.store.start)
        self._task = asyncio.create_task(self._loop())
        self._sealer = asyncio.create_task(self._seal_loop())

    async def stop(self) -> None:
        self._closing = True
        self._wake.set()
        for task in (self._task, self._sealer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._queue:  # commit what was accepted before the shutdown began
            await self._commit(self._queue)
            self._queue = []
        await self.run_in_writer(self.store.close)
        self._executor.shutdown(wait=True)

    async def submit(self, entry: Entry) -> tuple[str, bool]:
        """The uid of `entry`, once durable; True when it was already stored."""
        known = self.store.index.get(entry.key)
        if known is not None:
            return known, True
        inflight = self._inflight.get(entry.key)
        if inflight is not None:
            return await asyncio.shield(inflight), True
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[entry.key] = future
        self._queue.append(_Pending(entry, future))
        self._wake.set()
        try:
            return await asyncio.shield(future), False
        finally:
            if future.done():
                self._inflight.pop(entry.key, None)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            batch, self._queue = self._queue, []
            await self._commit(batch)

    async def _commit(self, batch: Sequence[_Pending]) -> None:
        fsyncs_before = self.store.stats.fsyncs
        try:
            await self.run_in_writer(self.store.commit, [p.entry for p in batch])
        except Exception as exc:  # keep the writer alive; refuse this batch
            log.error("commit failed: %s", exc)
            for p in batch:
                self._inflight.pop(p.entry.key, None)
                if not p.future.done():
                    p.future.set_exception(
                        CollectorError(503, "storage_error", "the measurement was not stored")
                    )
            return
        self.metrics.observe_commit(
            self.store.stats.fsync_seconds[-1], self.store.stats.fsyncs - fsyncs_before, len(batch)
        )
        self.store.stats.fsync_seconds.clear()
        for p in batch:
            self._inflight.pop(p.entry.key, None)
            if not p.future.done():
                p.future.set_result(p.entry.uid)

    async def _seal_loop(self) -> None:
        period = max(0.05, min(5.0, self.store.seal_after / 4))
        while True:
            await asyncio.sleep(period)
            now = self.clock().astimezone(dt.UTC)
            await self.run_in_writer(
                self.store.seal_due, (now.strftime("%Y%m%d"), now.strftime("%H"))
            )


class Collector:
    def __init__(
        self,
        data_dir: Path,
        *,
        test_helpers: Sequence[str] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY,
        seal_after: float = DEFAULT_SEAL_AFTER,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        test_lists_dir: Path | None = None,
        clock: Clock = _utcnow,
        durable: bool = True,
    ) -> None:
        self.metrics = Metrics()
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.test_helpers = list(test_helpers)
        self.store = RawStore(
            data_dir, seal_after=seal_after, segment_max_bytes=segment_max_bytes, durable=durable
        )
        self.writer = Writer(self.store, self.metrics, clock)
        self.lists = CitizenLabLists(test_lists_dir)

    # --- request plumbing ------------------------------------------------------------

    async def read_body(self, request: Request, *, json_only: bool = True) -> bytes:
        ctype = request.headers.get("content-type", "")
        if json_only and ctype.split(";", 1)[0].strip().lower() != "application/json":
            raise CollectorError(415, "wrong_content_type", "Content-Type must be application/json")
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > self.max_body_bytes:
                    raise CollectorError(413, "body_too_large", self._too_large())
            except ValueError:
                raise CollectorError(400, "bad_content_length", "bad Content-Length") from None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise CollectorError(413, "body_too_large", self._too_large())
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding == "zstd":
            return self._unzstd(body)
        raise CollectorError(415, "unsupported_encoding", f"Content-Encoding {encoding!r}")

    def _too_large(self) -> str:
        return f"the body is larger than {self.max_body_bytes} bytes"

    def _unzstd(self, body: bytes) -> bytes:
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body))
            out = reader.read(self.max_body_bytes + 1)
            # stream_reader.read may return less than asked before the end: keep reading.
            parts = [out]
            total = len(out)
            while out and total <= self.max_body_bytes:
                out = reader.read(self.max_body_bytes + 1 - total)
                parts.append(out)
                total += len(out)
        except zstandard.ZstdError as exc:
            raise CollectorError(400, "bad_zstd", f"the zstd body does not decode: {exc}") from None
        if total > self.max_body_bytes:
            raise CollectorError(413, "body_too_large", self._too_large() + " once decompressed")
        if total == 0 and body:
            raise CollectorError(400, "bad_zstd", "the zstd body does not decode")
        return b"".join(parts)

    def error(self, exc: CollectorError) -> JSONResponse:
        self.metrics.rejections[exc.code] += 1
        return JSONResponse(exc.body(), status_code=exc.status)

    def report(self, report_id: str) -> ReportInfo:
        if not REPORT_ID_RE.match(report_id):
            raise CollectorError(400, "bad_report_id", "report_id is not in OONI's format")
        info = self.store.reports.get(report_id)
        if info is None:
            raise CollectorError(404, "unknown_report", f"no report {report_id}")
        return info

    async def open_report(self, req: OpenReport) -> str:
        rid = new_report_id(self.clock(), req.test_name, req.probe_cc, req.probe_asn)
        info = ReportInfo(rid, req.test_name, req.probe_cc, req.probe_asn)
        await self.writer.run_in_writer(self.store.record_report, "open", info)
        self.metrics.reports_opened += 1
        return rid

    # --- endpoints -------------------------------------------------------------------

    async def handle_open(self, request: Request) -> Response:
        body = await self.read_body(request)
        req = validate.open_report_request(validate.parse_json(body))
        rid = await self.open_report(req)
        return JSONResponse(
            {"report_id": rid, "backend_version": BACKEND_VERSION, "supported_formats": ["json"]}
        )

    async def handle_submit(self, request: Request) -> Response:
        report_id = request.path_params["report_id"]
        info = self.report(report_id)
        body = await self.read_body(request)
        now = self.clock()
        content = validate.submission_content(validate.parse_json(body), info, now)
        key = idempotency_key(report_id, content)
        known = self.store.index.get(key)
        if known is not None:  # a retry after a lost reply: same uid, nothing stored
            self.metrics.duplicates += 1
            return JSONResponse({"measurement_uid": known})
        if report_id in self.store.closed:
            raise CollectorError(409, "report_closed", f"report {report_id} is closed")
        uid = new_measurement_uid(now, info.probe_cc, info.test_name)
        entry = Entry(
            key=key,
            uid=uid,
            partition=partition_for(now, info.probe_cc, info.test_name),
            line=stored_line(content, uid),
            input=content.get("input"),
        )
        stored_uid, duplicate = await self.writer.submit(entry)
        if duplicate:
            self.metrics.duplicates += 1
        else:
            self.metrics.submissions += 1
        return JSONResponse({"measurement_uid": stored_uid})

    async def handle_close(self, request: Request) -> Response:
        report_id = request.path_params["report_id"]
        info = self.report(report_id)
        if report_id not in self.store.closed:
            await self.writer.run_in_writer(self.store.record_report, "close", info)
            self.metrics.reports_closed += 1
        return JSONResponse({})

    async def handle_check_in(self, request: Request) -> Response:
        body = await self.read_body(request)
        req = validate.check_in_request(validate.parse_json(body))
        now = self.clock()
        urls = choose_urls(self.lists, req, self.store.input_counts)
        report_id: str | None = None
        if req.probe_cc != "ZZ" and req.probe_asn != "AS0":
            report_id = await self.open_report(
                OpenReport("web_connectivity", "0.5.0", req.probe_cc, req.probe_asn, "", "")
            )
        return JSONResponse(
            {
                "v": 1,
                "probe_cc": req.probe_cc,
                "probe_asn": req.probe_asn,
                "utc_time": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tests": {
                    "web_connectivity": {
                        "report_id": report_id,
                        "urls": [
                            {
                                "url": u.url,
                                "category_code": u.category_code,
                                "country_code": u.country_code,
                            }
                            for u in urls
                        ],
                    }
                },
                "conf": {"features": {}, "test_helpers": self.helpers_doc()},
                # Dideban extension (OONI probes ignore it): the address this check-in came
                # from, so the probe can scrub its public address from what it sends. Never
                # stored or logged here.
                "probe_ip": request.client.host if request.client is not None else None,
            }
        )

    def helpers_doc(self) -> dict[str, list[dict[str, str]]]:
        return {"web-connectivity": [{"address": a, "type": "https"} for a in self.test_helpers]}

    async def handle_test_helpers(self, request: Request) -> Response:
        del request
        return JSONResponse(self.helpers_doc())

    async def handle_metrics(self, request: Request) -> Response:
        del request
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def handle_health(self, request: Request) -> Response:
        del request
        return JSONResponse({"status": "ok", "backend_version": BACKEND_VERSION})


def _endpoint(collector: Collector, method: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await method(request)
            return response
        except CollectorError as exc:
            return collector.error(exc)

    return endpoint


def create_app(
    data_dir: Path,
    *,
    test_helpers: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY,
    seal_after: float = DEFAULT_SEAL_AFTER,
    segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
    test_lists_dir: Path | None = None,
    clock: Clock = _utcnow,
    durable: bool = True,
) -> Starlette:
    """The collector as an ASGI app; its storage starts and stops with the app's lifespan.
    `durable=False` skips fsync (for tests that do not test durability; never in production)."""
    c = Collector(
        data_dir,
        test_helpers=test_helpers,
        max_body_bytes=max_body_bytes,
        seal_after=seal_after,
        segment_max_bytes=segment_max_bytes,
        test_lists_dir=test_lists_dir,
        clock=clock,
        durable=durable,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        del app
        await c.writer.start()
        try:
            yield
        finally:
            await c.writer.stop()

    routes = [
        Route("/", _endpoint(c, c.handle_health), methods=["GET"]),
        Route("/api/v1/check-in", _endpoint(c, c.handle_check_in), methods=["POST"]),
        Route("/api/v1/test-helpers", _endpoint(c, c.handle_test_helpers), methods=["GET"]),
        Route("/report", _endpoint(c, c.handle_open), methods=["POST"]),
        Route("/report/{report_id}", _endpoint(c, c.handle_submit), methods=["POST"]),
        Route("/report/{report_id}/close", _endpoint(c, c.handle_close), methods=["POST"]),
        Route("/metrics", _endpoint(c, c.handle_metrics), methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        del request
        status = getattr(exc, "status_code", 404)
        code = "method_not_allowed" if status == 405 else "not_found"
        return c.error(CollectorError(status, code, str(getattr(exc, "detail", "not found"))))

    async def internal(request: Request, exc: Exception) -> Response:
        del request
        log.exception("collector error", exc_info=exc)
        return c.error(CollectorError(500, "internal_error", "internal error; nothing stored"))

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found, 500: internal},
    )
    app.state.collector = c
    return app
