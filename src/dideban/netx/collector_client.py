"""The probe's HTTP client for the collector (OONI probe-services: report open/submit/close,
check-in, test-helpers).

Failures are sorted once, here, into two kinds the submitter acts on:
- `CollectorUnavailable`: the collector could not be reached, timed out, or answered 5xx (or
  something that is not its JSON): retrying later may work, so the measurement is queued.
- `CollectorRejected`: a 4xx with the collector's error shape: retrying the same request will
  not help (bad measurement, unknown or closed report).

Without a lab `Network`, the client uses httpx with keep-alive; with one (a lab run), it goes
through netx's `api_request`, so the lab dialer decides what may be dialled.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import zstandard

from dideban.netx.errors import NetxFailure
from dideban.netx.network import Network


class CollectorUnavailable(Exception):
    """Transient: unreachable, timeout, 5xx. Queue and retry later."""


class CollectorRejected(Exception):
    """Permanent for this request: the collector answered 4xx."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class CollectorClient:
    def __init__(
        self,
        base_url: str,
        *,
        network: Network | None = None,
        timeout: float = 15.0,
        compress: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._network = network
        self._timeout = timeout
        self._compress = compress
        self._http: httpx.AsyncClient | None = None
        if network is None:
            self._http = httpx.AsyncClient(
                timeout=timeout, transport=transport, trust_env=False, follow_redirects=False
            )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def _call(self, method: str, path: str, doc: Any = None) -> Any:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"} if doc is not None else {}
        body = json.dumps(doc).encode() if doc is not None else b""
        if body and self._compress:
            body = zstandard.ZstdCompressor().compress(body)
            headers["Content-Encoding"] = "zstd"
        try:
            if self._http is not None:
                resp = await self._http.request(method, url, content=body, headers=headers)
                status, data = resp.status_code, resp.content
            else:
                assert self._network is not None
                from dideban.netx.http import api_request

                r = await api_request(
                    self._network,
                    method,
                    url,
                    body=body,
                    headers=list(headers.items()),
                    timeout=self._timeout,
                )
                status, data = r.status, r.body
        except (httpx.TransportError, NetxFailure, OSError) as exc:
            raise CollectorUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = None
        if status >= 500 or answer is None or status < 200 or 300 <= status < 400:
            raise CollectorUnavailable(f"{method} {path}: HTTP {status}")
        if status >= 400:
            err = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(err, dict):
                raise CollectorRejected(
                    status, str(err.get("code", "rejected")), str(err.get("message", ""))
                )
            raise CollectorRejected(status, "rejected", data[:200].decode("utf-8", "replace"))
        return answer

    async def check_in(self, request: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("POST", "/api/v1/check-in", request)
        return answer

    async def test_helpers(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", "/api/v1/test-helpers")
        return answer

    async def open_report(self, request: dict[str, Any]) -> str:
        answer = await self._call("POST", "/report", request)
        rid = answer.get("report_id") if isinstance(answer, dict) else None
        if not isinstance(rid, str):
            raise CollectorUnavailable("POST /report: no report_id in the answer")
        return rid

    async def submit(self, report_id: str, measurement: dict[str, Any]) -> str:
        answer = await self._call(
            "POST", f"/report/{report_id}", {"format": "json", "content": measurement}
        )
        uid = answer.get("measurement_uid") if isinstance(answer, dict) else None
        if not isinstance(uid, str):
            raise CollectorUnavailable(f"POST /report/{report_id}: no measurement_uid")
        return uid

    async def close_report(self, report_id: str) -> None:
        await self._call("POST", f"/report/{report_id}/close", {})
