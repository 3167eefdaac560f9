"""The open data API (`/api/v1/...`) and the dashboard, one FastAPI app over a read-only store.

Names and shapes follow OONI's API where OONI has the endpoint (`/api/v1/measurements`,
`/api/v1/aggregation`, `/api/v1/measurement/{uid}`). Every 4xx/5xx answer, including
validation errors and unknown routes, has one shape: `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import csv
import io
import math
import pathlib
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from dideban import __version__
from dideban.api import query as q
from dideban.api.explain import explain
from dideban.api.limits import ConcurrencyLimit
from dideban.api.params import filters_dependency
from dideban.api.reader import QueryTimeout, Reader, StoreBusy, iso

# The longest a single query may run before it is interrupted (seconds).
DEFAULT_QUERY_TIMEOUT = 5.0
MAX_LIMIT = 1000
# The most cells one aggregation answer may hold (JSON or CSV).
MAX_CELLS = 100_000

# OONI's measurement uids: `20231101164541.064089_IT_webconnectivity_0123abcd...`.
UID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

Filt = Annotated[q.Filters, Depends(filters_dependency)]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class MeasurementsMetadata(BaseModel):
    count: int
    limit: int
    offset: int
    current_page: int
    pages: int
    next_url: str | None
    query_time: float


class MeasurementItem(BaseModel):
    measurement_uid: str
    measurement_url: str
    report_id: str | None
    input: str | None
    domain: str | None
    category_code: str | None
    probe_cc: str | None
    probe_asn: str | None
    test_name: str | None
    measurement_start_time: str | None
    anomaly: bool | None
    confirmed: bool | None
    failure: bool | None
    blocking_type: str | None


class MeasurementsResponse(BaseModel):
    metadata: MeasurementsMetadata
    results: list[MeasurementItem]


class DbStats(BaseModel):
    row_count: int
    elapsed_seconds: float


class AggregationResponse(BaseModel):
    v: int = 0
    dimension_count: int
    result: list[dict[str, Any]] | dict[str, Any]
    db_stats: DbStats


class RuleExplained(BaseModel):
    id: str
    description: str | None


class LayerScore(BaseModel):
    layer: str
    blocked: float
    down: float
    ok: float


class Explanation(BaseModel):
    summary: str
    rules: list[RuleExplained]
    evidence: list[str]
    scores: list[LayerScore]


class MeasurementDetail(BaseModel):
    measurement_uid: str
    verdict: dict[str, Any]
    explanation: Explanation
    observations: list[dict[str, Any]]
    raw_measurement: Any = Field(
        description="The raw OONI-format measurement, unchanged; null if the store no longer has it"
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request"},
    404: {"model": ErrorResponse, "description": "Not found"},
    500: {"model": ErrorResponse, "description": "Internal error"},
    503: {"model": ErrorResponse, "description": "The store is being written; retry"},
    504: {"model": ErrorResponse, "description": "Query ran past the time limit"},
}

_STATUS_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    503: "store_busy",
    504: "query_timeout",
}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body")]
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _row_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) for k, v in row.items()}


def create_app(
    db_path: str | pathlib.Path,
    *,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    dashboard: bool = True,
    threads: int | None = None,
    hold_connection: bool = False,
    keep_open: float = 1.0,
    max_in_flight: int = 32,
) -> FastAPI:
    """The API (and, unless `dashboard=False`, the dashboard) over the store at `db_path`.

    `threads` caps DuckDB's worker threads (default: one per core); `keep_open` is how long
    one read-only connection may serve a burst of queries before it is closed to let a
    writer in (0: one per query), `hold_connection` never closes it (see `Reader`); past
    `max_in_flight` concurrent requests the server answers 503 `overloaded`."""
    reader = Reader(
        db_path, timeout=query_timeout, threads=threads, hold=hold_connection, keep_open=keep_open
    )
    app = FastAPI(
        title="Dideban open data API",
        version=__version__,
        description=(
            "Censorship measurements, observations and verdicts. OONI-compatible where OONI "
            'has the endpoint. Errors: {"error": {"code", "message"}}.'
        ),
        docs_url=None,
        redoc_url=None,
    )
    app.state.reader = reader
    app.add_middleware(ConcurrencyLimit, max_in_flight=max_in_flight)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(QueryTimeout)
    async def _timeout(request: Request, exc: QueryTimeout) -> JSONResponse:
        return error_response(504, "query_timeout", str(exc))

    @app.exception_handler(StoreBusy)
    async def _busy(request: Request, exc: StoreBusy) -> JSONResponse:
        return error_response(503, "store_busy", str(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")

    @app.get(
        "/api/v1/measurements",
        response_model=MeasurementsResponse,
        responses=ERROR_RESPONSES,
        summary="Search measurements (OONI-compatible)",
    )
    def list_measurements(
        request: Request,
        filters: Filt,
        order_by: Annotated[q.OrderBy, Query()] = "measurement_start_time",
        order: Annotated[Literal["asc", "desc"], Query()] = "desc",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        page_sql, count_sql, params = q.list_sql(filters, order_by, order, limit, offset)
        rows = reader.query(page_sql, params)
        count = int(reader.query(count_sql, params)[0]["n"])
        base = str(request.base_url).rstrip("/")
        results = []
        for row in rows:
            out = _row_out(row)
            out["measurement_url"] = f"{base}/api/v1/measurement/{row['measurement_uid']}"
            results.append(out)
        next_url = None
        if offset + limit < count:
            next_url = str(request.url.include_query_params(offset=offset + limit))
        return {
            "metadata": {
                "count": count,
                "limit": limit,
                "offset": offset,
                "current_page": offset // limit + 1,
                "pages": math.ceil(count / limit),
                "next_url": next_url,
                "query_time": round(time.perf_counter() - started, 6),
            },
            "results": results,
        }

    @app.get(
        "/api/v1/aggregation",
        response_model=AggregationResponse,
        responses={
            **ERROR_RESPONSES,
            200: {
                "description": "JSON cells, or CSV when format=CSV",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
        },
        summary="Aggregate verdict counts along up to two axes (OONI-compatible)",
    )
    def aggregation(
        filters: Filt,
        axis_x: Annotated[q.Axis | None, Query()] = None,
        axis_y: Annotated[q.Axis | None, Query()] = None,
        time_grain: Annotated[q.TimeGrain, Query()] = "day",
        format: Annotated[Literal["JSON", "CSV"], Query()] = "JSON",
        download: Annotated[bool, Query()] = False,
    ) -> Any:
        started = time.perf_counter()
        if axis_x is not None and axis_x == axis_y:
            raise ApiError(400, "invalid_request", "axis_x and axis_y must differ")
        try:
            cells = aggregate(reader, filters, axis_x, axis_y, time_grain)
        except TooManyCells as exc:
            raise ApiError(400, "too_many_cells", str(exc)) from None
        axes = [a for a in (axis_x, axis_y) if a is not None]
        if format == "CSV":
            headers = {}
            if download:
                headers["Content-Disposition"] = 'attachment; filename="dideban-aggregation.csv"'
            return Response(cells_to_csv(cells, axes), media_type="text/csv", headers=headers)
        result: list[dict[str, Any]] | dict[str, Any] = cells if axes else cells[0]
        # Returned as a response, not validated again against the model: tens of thousands
        # of cells (days x countries) would spend more time in validation than in DuckDB.
        return JSONResponse(
            {
                "v": 0,
                "dimension_count": len(axes),
                "result": result,
                "db_stats": {
                    "row_count": len(cells),
                    "elapsed_seconds": round(time.perf_counter() - started, 6),
                },
            }
        )

    @app.get(
        "/api/v1/measurement/{measurement_uid}",
        response_model=MeasurementDetail,
        responses=ERROR_RESPONSES,
        summary="One measurement: raw data, observations and the verdict explained",
    )
    def get_measurement(
        measurement_uid: Annotated[str, Path(pattern=UID_PATTERN, max_length=200)],
    ) -> dict[str, Any]:
        detail = measurement_detail(reader, measurement_uid)
        if detail is None:
            raise ApiError(404, "not_found", f"no measurement {measurement_uid!r} in the store")
        return detail

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=[r for r in app.routes if getattr(r, "include_in_schema", True)],
            )
            # Validation errors answer 400 with the common error shape, never FastAPI's 422.
            for path in schema.get("paths", {}).values():
                for op in path.values():
                    op.get("responses", {}).pop("422", None)
            comps = schema.get("components", {}).get("schemas", {})
            comps.pop("HTTPValidationError", None)
            comps.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]

    if dashboard:
        from dideban.web.pages import register_pages

        register_pages(app, reader)
    return app


class TooManyCells(ValueError):
    """An aggregation would answer with more cells than a response may hold."""


def aggregate(
    reader: Reader,
    filters: q.Filters,
    axis_x: str | None,
    axis_y: str | None,
    time_grain: str,
    *,
    max_cells: int = MAX_CELLS,
) -> list[dict[str, Any]]:
    """Aggregation cells, axis values formatted as OONI does. Raises TooManyCells past
    `max_cells` (input x hour over a year would be tens of millions of cells)."""
    sql, params = q.aggregation_sql(filters, axis_x, axis_y, time_grain)
    rows = reader.query(f"{sql} LIMIT {int(max_cells) + 1}", params)
    if len(rows) > max_cells:
        raise TooManyCells(
            f"more than {max_cells:,} cells: narrow the filters or use a coarser time_grain"
        )
    axes = [a for a in (axis_x, axis_y) if a is not None]
    out = []
    for row in rows:
        cell = {k: int(v) if k in q.COUNTS else v for k, v in row.items()}
        for a in axes:
            cell[a] = q.format_cell(a, row[a], time_grain)
        out.append(cell)
    return out


def cells_to_csv(cells: list[dict[str, Any]], axes: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = [*axes, *q.COUNTS]
    writer.writerow(columns)
    for cell in cells:
        writer.writerow(["" if cell.get(c) is None else cell.get(c) for c in columns])
    return buf.getvalue()


def measurement_detail(reader: Reader, uid: str) -> dict[str, Any] | None:
    rows = reader.query("SELECT * FROM verdicts WHERE measurement_uid = ?", [uid])
    if not rows:
        return None
    verdict = rows[0]
    observations: list[dict[str, Any]] = []
    if "observations" in reader.tables:
        observations = reader.query(
            "SELECT * FROM observations WHERE measurement_uid = ? ORDER BY observation_idx", [uid]
        )
    raw = reader.raw_measurement(uid, verdict.get("raw_path"), verdict.get("raw_line"))
    return {
        "measurement_uid": uid,
        "verdict": _row_out(verdict),
        "explanation": explain(verdict, observations),
        "observations": [_row_out(o) for o in observations],
        "raw_measurement": raw,
    }
