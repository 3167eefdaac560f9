"""Property-based checks of the API against its own OpenAPI document (schemathesis).

Generated requests, valid and invalid, must never produce a server error, and every answer
must match the documented status codes, content types and schemas. The number of examples is
bounded so the run stays within seconds. (schemathesis' own pytest plugin does not work with
this pytest, so the test drives its strategies with hypothesis directly.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from dideban.api.app import create_app

PATHS = ["/api/v1/measurements", "/api/v1/aggregation", "/api/v1/measurement/{measurement_uid}"]


@pytest.fixture(params=["synthetic", "ooni-samples"])
def any_app(request: pytest.FixtureRequest) -> Iterator[FastAPI]:
    if request.param == "synthetic":
        yield request.getfixturevalue("app")
        return
    app = create_app(request.getfixturevalue("real_store"))
    yield app
    app.state.reader.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path", PATHS)
def test_api_conforms_to_its_openapi(any_app: FastAPI, path: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", any_app)
    operation = schema[path]["GET"]
    calls: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: schemathesis.Case) -> None:
        query = case.query or {}
        if query.get("axis_x") is not None and query.get("axis_x") == query.get("axis_y"):
            # The one rule OpenAPI cannot state: the two axes must differ.
            response = case.call()
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "invalid_request"
        else:
            response = case.call_and_validate()
        calls.append(response.status_code)

    check()
    assert calls, "schemathesis generated no request"
    if mode is GenerationMode.POSITIVE and path != "/api/v1/measurement/{measurement_uid}":
        assert 200 in calls
