"""The dashboard: server-rendered pages over the same store and queries as the API.

Every page's state lives in its URL query string, so any view can be shared as a link.
Charts are plotly figures rendered by the plotly.js that the `plotly` package ships, served
from this app: nothing is fetched from another host.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import plotly
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from dideban.api import query as q
from dideban.api.explain import explain
from dideban.api.reader import Reader, iso
from dideban.model.verdict import BLOCKING_TYPES
from dideban.web.forms import FormError, filters_from_query

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# "Now" on the home page: this many days up to the newest measurement in the store.
RECENT_DAYS = 30
PAGE_SIZE = 50
# A chart (and its table) beyond this many cells is unreadable and heavy for a phone.
CHART_MAX_CELLS = 5_000
# Pages may load nothing from another host; plotly draws with inline styles and data: images.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# One colour per verdict kind on every chart, so a chart reads the same on every page.
COLORS = {
    "dns": "#d62728",
    "tcp_ip": "#ff7f0e",
    "tls": "#9467bd",
    "http-failure": "#8c564b",
    "http-diff": "#e377c2",
    "failure": "#bcbd22",
    "ok": "#9fb3c8",
    "(none)": "#c7d0da",
}

_ENV = Environment(
    loader=PackageLoader("dideban.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["iso"] = iso


def _qs(params: Mapping[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in params.items() if v not in (None, "")}
    for k, v in changes.items():
        if v in (None, ""):
            merged.pop(k, None)
        else:
            merged[k] = v
    return urlencode(merged)


_ENV.globals["qs"] = _qs
_CC = re.compile(r"^[A-Z]{2}$")
_DOMAIN = re.compile(r"^[a-z0-9._-]{1,253}$")


def _figure(
    traces: list[dict[str, Any]], title: str, *, barmode: str | None = "stack", ytitle: str = ""
) -> str:
    layout: dict[str, Any] = {
        "title": {"text": title},
        "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
        "legend": {"orientation": "h"},
        "yaxis": {"title": {"text": ytitle}},
        "autosize": True,
    }
    if barmode:
        layout["barmode"] = barmode
    # Embedded in a <script> element: "<" escaped so no value can close it.
    return json.dumps({"data": traces, "layout": layout}, default=str).replace("<", "\\u003c")


def register_pages(app: FastAPI, reader: Reader) -> None:
    """Add the dashboard's routes (hidden from the OpenAPI document) to `app`."""

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = _ENV.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})

    def bad_request(request: Request, message: str) -> HTMLResponse:
        return render("error.html", 400, title="Bad request", message=message, request=request)

    def not_found(request: Request, message: str) -> HTMLResponse:
        return render("error.html", 404, title="Not found", message=message, request=request)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        return FileResponse(
            PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        media = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}.get(
            name.rsplit(".", 1)[-1], "application/octet-stream"
        )
        return FileResponse(path, media_type=media)

    def latest() -> dt.datetime | None:
        rows = reader.query("SELECT max(measurement_start_time) AS t FROM verdicts")
        value = rows[0]["t"] if rows else None
        return value if isinstance(value, dt.datetime) else None

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        newest = latest()
        since = (newest - dt.timedelta(days=RECENT_DAYS)) if newest else dt.datetime(1970, 1, 1)
        countries = reader.query(
            "SELECT probe_cc, count(*) AS measurements, count(*) FILTER (WHERE anomaly) AS anomalies,"
            " count(*) FILTER (WHERE confirmed) AS confirmed,"
            " count(DISTINCT domain) FILTER (WHERE anomaly) AS blocked_domains"
            " FROM verdicts WHERE measurement_start_time >= ? GROUP BY probe_cc"
            " ORDER BY anomalies DESC, probe_cc",
            [since],
        )
        networks = reader.query(
            "SELECT probe_cc, probe_asn, count(*) AS measurements,"
            " count(*) FILTER (WHERE anomaly) AS anomalies, count(*) FILTER (WHERE confirmed) AS confirmed"
            " FROM verdicts WHERE measurement_start_time >= ? GROUP BY probe_cc, probe_asn"
            " HAVING count(*) FILTER (WHERE anomaly) > 0 ORDER BY anomalies DESC, probe_asn LIMIT 20",
            [since],
        )
        domains = reader.query(
            "SELECT domain, any_value(category_code) AS category_code,"
            " count(DISTINCT probe_cc) AS countries, count(*) AS anomalies"
            " FROM verdicts WHERE anomaly AND domain IS NOT NULL AND measurement_start_time >= ?"
            " GROUP BY domain ORDER BY anomalies DESC, domain LIMIT 20",
            [since],
        )
        blockpages = reader.query(
            "SELECT measurement_uid, measurement_start_time, probe_cc, probe_asn, domain, input,"
            " fingerprints FROM verdicts WHERE confirmed"
            " ORDER BY measurement_start_time DESC, measurement_uid LIMIT 15"
        )
        per_day = reader.query(
            "SELECT CAST(measurement_start_time AS DATE) AS day, probe_cc,"
            " count(*) FILTER (WHERE anomaly) AS anomalies FROM verdicts"
            " WHERE measurement_start_time >= ? GROUP BY ALL ORDER BY day, probe_cc",
            [since],
        )
        traces = _traces(per_day, "day", "probe_cc", "anomalies", kind="bar")
        return render(
            "home.html",
            request=request,
            newest=newest,
            since=since,
            countries=countries,
            networks=networks,
            domains=domains,
            blockpages=blockpages,
            figure=_figure(traces, f"Anomalies per day by country (last {RECENT_DAYS} days)"),
        )

    @app.get("/country/{cc}", include_in_schema=False, response_class=HTMLResponse)
    def country(request: Request, cc: str) -> HTMLResponse:
        cc = cc.upper()
        if not _CC.match(cc):
            return bad_request(request, "a country is a two-letter code such as IR")
        try:
            filters = filters_from_query(request.query_params)
        except FormError as exc:
            return bad_request(request, str(exc))
        filters.probe_cc = [cc]
        where, params = filters.where()
        total = reader.query(f"SELECT count(*) AS n FROM verdicts{where}", params)[0]["n"]
        if total == 0 and not request.query_params:
            return not_found(request, f"no measurements from {cc} in the store")
        blocked = reader.query(
            "SELECT domain, any_value(category_code) AS category_code,"
            " mode(blocking_type) FILTER (WHERE anomaly) AS blocking_type,"
            " min(measurement_start_time) FILTER (WHERE anomaly) AS since,"
            " max(measurement_start_time) FILTER (WHERE anomaly) AS last_seen,"
            " count(*) FILTER (WHERE anomaly) AS anomalies, count(*) FILTER (WHERE confirmed) AS confirmed,"
            f" count(*) AS measurements FROM verdicts{where}{' AND' if where else ' WHERE'} domain IS NOT NULL"
            " GROUP BY domain HAVING count(*) FILTER (WHERE anomaly) > 0"
            " ORDER BY anomalies DESC, domain",
            params,
        )
        over_time = reader.query(
            "SELECT CAST(measurement_start_time AS DATE) AS day,"
            " coalesce(blocking_type, CASE WHEN failure THEN 'failure' ELSE 'ok' END) AS kind,"
            f" count(*) AS n FROM verdicts{where} GROUP BY ALL ORDER BY day, kind",
            params,
        )
        networks = reader.query(
            "SELECT probe_asn, count(*) AS measurements, count(*) FILTER (WHERE anomaly) AS anomalies,"
            " count(*) FILTER (WHERE confirmed) AS confirmed, count(*) FILTER (WHERE failure) AS failures,"
            " count(*) FILTER (WHERE NOT anomaly AND NOT failure) AS ok"
            f" FROM verdicts{where} GROUP BY probe_asn ORDER BY anomalies DESC, probe_asn",
            params,
        )
        order = [*BLOCKING_TYPES, "failure", "ok"]
        traces = _traces(over_time, "day", "kind", "n", kind="bar", order=order)
        return render(
            "country.html",
            request=request,
            cc=cc,
            total=total,
            blocked=blocked,
            networks=networks,
            params=dict(request.query_params),
            figure=_figure(
                traces, f"Verdicts per day in {cc}, by blocking type", ytitle="measurements"
            ),
        )

    @app.get("/domain/{domain}", include_in_schema=False, response_class=HTMLResponse)
    def domain_page(request: Request, domain: str) -> HTMLResponse:
        domain = domain.lower()
        if not _DOMAIN.match(domain):
            return bad_request(request, "not a domain name")
        try:
            filters = filters_from_query(request.query_params)
        except FormError as exc:
            return bad_request(request, str(exc))
        filters.domain = [domain]
        where, params = filters.where()
        per_network = reader.query(
            "SELECT probe_cc, probe_asn, count(*) AS measurements,"
            " count(*) FILTER (WHERE anomaly) AS anomalies, count(*) FILTER (WHERE confirmed) AS confirmed,"
            " count(*) FILTER (WHERE failure) AS failures,"
            " string_agg(DISTINCT blocking_type, ', ' ORDER BY blocking_type) AS blocking_types,"
            " min(measurement_start_time) FILTER (WHERE anomaly) AS first_anomaly,"
            " max(measurement_start_time) AS last_measured,"
            " arg_max(coalesce(blocking_type, CASE WHEN failure THEN 'failure' ELSE 'ok' END),"
            " measurement_start_time) AS latest"
            f" FROM verdicts{where} GROUP BY probe_cc, probe_asn ORDER BY probe_cc, probe_asn",
            params,
        )
        if not per_network and not request.query_params:
            return not_found(request, f"no measurements of {domain} in the store")
        per_day = reader.query(
            "SELECT CAST(measurement_start_time AS DATE) AS day, probe_cc,"
            " count(*) FILTER (WHERE anomaly) AS anomalies FROM verdicts"
            f"{where} GROUP BY ALL ORDER BY day, probe_cc",
            params,
        )
        traces = _traces(per_day, "day", "probe_cc", "anomalies", kind="scatter")
        recent = reader.query(
            f"SELECT {', '.join(q.LIST_COLUMNS)} FROM verdicts{where}"
            " ORDER BY measurement_start_time DESC, measurement_uid LIMIT 20",
            params,
        )
        return render(
            "domain.html",
            request=request,
            domain=domain,
            per_network=per_network,
            recent=recent,
            params=dict(request.query_params),
            figure=_figure(traces, f"Anomalies per day for {domain}, by country", barmode=None),
        )

    @app.get("/measurement/{uid}", include_in_schema=False, response_class=HTMLResponse)
    def measurement_page(request: Request, uid: str) -> HTMLResponse:
        rows = reader.query("SELECT * FROM verdicts WHERE measurement_uid = ?", [uid])
        if not rows:
            return not_found(request, f"no measurement {uid!r} in the store")
        verdict = rows[0]
        observations: list[dict[str, Any]] = []
        if "observations" in reader.tables:
            observations = reader.query(
                "SELECT * FROM observations WHERE measurement_uid = ? ORDER BY observation_idx",
                [uid],
            )
        raw = reader.raw_measurement(uid, verdict.get("raw_path"), verdict.get("raw_line"))
        control = _control(raw)
        steps = [{**o, "control": _control_for(o, control)} for o in observations]
        return render(
            "measurement.html",
            request=request,
            v=verdict,
            steps=steps,
            explanation=explain(verdict, observations),
            raw_json=json.dumps(raw, indent=2, sort_keys=True, default=str)
            if raw is not None
            else None,
        )

    @app.get("/chart", include_in_schema=False, response_class=HTMLResponse)
    def chart(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        try:
            filters = filters_from_query(params)
        except FormError as exc:
            return bad_request(request, str(exc))
        axis_x = params.get("axis_x") or "measurement_start_day"
        axis_y = params.get("axis_y") or None
        grain = params.get("time_grain") or "day"
        metric = params.get("metric") or "anomaly_count"
        if (
            axis_x not in q.AXES
            or (axis_y is not None and axis_y not in q.AXES)
            or axis_x == axis_y
        ):
            return bad_request(request, "axis_x and axis_y must be two different axes")
        if grain not in q.TIME_GRAINS or metric not in q.COUNTS:
            return bad_request(request, "unknown time grain or metric")
        from dideban.api.app import TooManyCells, aggregate

        try:
            cells = aggregate(reader, filters, axis_x, axis_y, grain, max_cells=CHART_MAX_CELLS)
        except TooManyCells as exc:
            return bad_request(request, f"This chart would have {exc}.")
        traces = _traces(cells, axis_x, axis_y, metric, kind="bar")
        api_params = {k: v for k, v in params.items() if k != "metric" and v}
        api_params.setdefault("axis_x", axis_x)
        api_params.setdefault("time_grain", grain)
        return render(
            "chart.html",
            request=request,
            params=params,
            axis_x=axis_x,
            axis_y=axis_y,
            grain=grain,
            metric=metric,
            axes=q.AXES,
            grains=q.TIME_GRAINS,
            metrics=q.COUNTS,
            cells=cells,
            columns=[a for a in (axis_x, axis_y) if a] + list(q.COUNTS),
            api_url="/api/v1/aggregation?" + urlencode(api_params),
            csv_url="/api/v1/aggregation?"
            + urlencode({**api_params, "format": "CSV", "download": "true"}),
            figure=_figure(
                traces,
                f"{metric} by {axis_x}" + (f" and {axis_y}" if axis_y else ""),
                ytitle=metric,
            ),
        )

    @app.get("/search", include_in_schema=False, response_class=HTMLResponse)
    def search(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        try:
            filters = filters_from_query(params)
            page = int(params.get("page") or 1)
            if page < 1 or page > 10**6:
                raise ValueError
        except FormError as exc:
            return bad_request(request, str(exc))
        except ValueError:
            return bad_request(request, "page must be a positive number")
        page_sql, count_sql, qparams = q.list_sql(
            filters, "measurement_start_time", "desc", PAGE_SIZE, (page - 1) * PAGE_SIZE
        )
        results = reader.query(page_sql, qparams)
        count = int(reader.query(count_sql, qparams)[0]["n"])
        api_params = {k: v for k, v in params.items() if k != "page" and v}
        api_params.update(limit=str(PAGE_SIZE), offset=str((page - 1) * PAGE_SIZE))
        return render(
            "search.html",
            request=request,
            params=params,
            results=results,
            count=count,
            page=page,
            pages=max(1, math.ceil(count / PAGE_SIZE)),
            api_url="/api/v1/measurements?" + urlencode(api_params),
        )


def _traces(
    rows: list[dict[str, Any]],
    x: str,
    series: str | None,
    value: str,
    *,
    kind: str,
    order: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Plotly traces: one per distinct `series` value, x/y from the rows."""
    groups: dict[str, tuple[list[Any], list[Any]]] = {}
    for row in rows:
        name = (
            "all"
            if series is None
            else str(row.get(series) if row.get(series) is not None else "(none)")
        )
        xs, ys = groups.setdefault(name, ([], []))
        xv = row.get(x)
        xs.append(iso(xv) if xv is not None else "(none)")
        ys.append(row.get(value))
    names = list(groups)
    if order:
        names.sort(key=lambda n: order.index(n) if n in order else len(order))
    traces = []
    for name in names:
        xs, ys = groups[name]
        trace: dict[str, Any] = {"type": kind, "name": name, "x": xs, "y": ys}
        if name in COLORS:
            trace["marker"] = {"color": COLORS[name]}
        if kind == "scatter":
            trace["mode"] = "lines+markers"
        traces.append(trace)
    return traces


def _control(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    tk = raw.get("test_keys")
    if not isinstance(tk, dict):
        return {}
    control = tk.get("control")
    return control if isinstance(control, dict) else {}


def _status(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "—"
    if entry.get("failure"):
        return f"failed: {entry['failure']}"
    return "ok" if entry.get("status", True) else "failed"


def _control_for(obs: dict[str, Any], control: dict[str, Any]) -> str:
    """What the control saw for the same step (web_connectivity's control keys)."""
    if not control:
        return "—"
    kind = obs.get("kind")
    if kind == "dns":
        dns = control.get("dns") or {}
        if not isinstance(dns, dict):
            return "—"
        if dns.get("failure"):
            return f"failed: {dns['failure']}"
        addrs = dns.get("addrs")
        if not isinstance(addrs, list):
            return "no addresses" if not addrs else f"malformed addrs: {addrs!r:.80}"
        return ", ".join(str(a) for a in addrs) or "no addresses"
    if kind == "tcp":
        tcp = control.get("tcp_connect") or {}
        key = f"{obs.get('ip')}:{obs.get('port')}"
        if isinstance(tcp, dict) and key in tcp:
            return _status(tcp[key])
        if isinstance(tcp, dict) and tcp:
            return "; ".join(f"{k}: {_status(e)}" for k, e in tcp.items())
        return "—"
    if kind == "tls":
        tls = control.get("tls_handshake") or {}
        key = f"{obs.get('ip')}:{obs.get('port')}"
        if isinstance(tls, dict) and key in tls:
            return _status(tls[key])
        if isinstance(tls, dict) and tls:
            return "; ".join(f"{k}: {_status(e)}" for k, e in tls.items())
        return "—"
    http = control.get("http_request") or {}
    if not isinstance(http, dict):
        return "—"
    if http.get("failure"):
        return f"failed: {http['failure']}"
    parts = [f"status {http.get('status_code')}", f"{http.get('body_length')} bytes"]
    if http.get("title"):
        parts.append(f"title {http['title']!r}")
    return ", ".join(parts)
