"""The real measurer's control request: every way the test helper can fail is a failure string."""

from __future__ import annotations

from typing import Any

import pytest

from dideban.model import failures
from dideban.nettests.web_connectivity import measure_adapter
from dideban.nettests.web_connectivity.measure_adapter import MeasureWebMeasurer
from dideban.netx import APIResponse, NetxFailure, make_network


def _measurer(
    monkeypatch: pytest.MonkeyPatch, answer: APIResponse | Exception
) -> MeasureWebMeasurer:
    async def fake_api_request(network: Any, method: str, url: str, **kw: Any) -> APIResponse:
        assert (method, url) == ("POST", "http://127.0.0.1:1/")
        assert kw["json_body"]["http_request"] == "http://x.org/"
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(measure_adapter, "api_request", fake_api_request)
    return MeasureWebMeasurer(make_network())


REQUEST = {"http_request": "http://x.org/", "http_request_headers": {}, "tcp_connect": []}


@pytest.mark.parametrize(
    ("answer", "failure"),
    [
        (NetxFailure(failures.CONNECTION_REFUSED), "connection_refused"),
        (APIResponse(503, [], b'{"error": {}}'), "unknown_failure: test helper answered HTTP 503"),
        (APIResponse(200, [], b"not json"), "unknown_failure: test helper sent invalid JSON"),
        (APIResponse(200, [], b"[1, 2]"), "unknown_failure: test helper sent no object"),
    ],
)
async def test_control_failures(
    monkeypatch: pytest.MonkeyPatch, answer: APIResponse | Exception, failure: str
) -> None:
    outcome = await _measurer(monkeypatch, answer).control("http://127.0.0.1:1/", REQUEST)
    assert (outcome.response, outcome.failure) == (None, failure)


async def test_control_success(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b'{"dns": {"addrs": ["203.0.113.1"], "failure": null}}'
    outcome = await _measurer(monkeypatch, APIResponse(200, [], body)).control(
        "http://127.0.0.1:1/", REQUEST
    )
    assert outcome.failure is None and outcome.response == {
        "dns": {"addrs": ["203.0.113.1"], "failure": None}
    }


async def test_no_udp_lookup_without_a_known_resolver() -> None:
    m = MeasureWebMeasurer(make_network())
    out = await m.lookup_udp("example.org")
    assert (out.addrs, out.failure) == ([], None)
    assert m.archival()["queries"] == [] and m.archival()["x_dns_duplicate_responses"] == []
