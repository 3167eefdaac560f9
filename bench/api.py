"""Aggregation latency of the API on a generated store of 10 million measurements.

    python bench/api.py [--rows 10000000] [--db /tmp/dideban-bench-api.duckdb] [--threads 2]

The store is generated directly in DuckDB with SQL (a year of measurements from 60 countries,
600 networks, 2,000 domains; ~12% anomalies) in measurement-time order, as ingest writes it,
and reused by later runs with the same row count. Each query of a MAT-like mix is sent through
the API in-process (httpx ASGI transport: validation, SQL, JSON) and, in the same run, as
plain SQL on one open DuckDB connection (the baseline), so the figures include the API's overhead
ratio. Goal: p95 < 500 ms with DuckDB limited to 2 threads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import duckdb
import httpx

from dideban.api import query as q
from dideban.api.app import create_app
from dideban.model.verdict import Verdict
from dideban.store import table_ddl
from dideban.web.forms import filters_from_query

QUERIES: list[dict[str, str]] = [
    {"axis_x": "measurement_start_day"},
    {"axis_x": "measurement_start_day", "axis_y": "probe_cc"},
    {"axis_x": "probe_cc", "axis_y": "blocking_type", "anomaly": "true"},
    {"axis_x": "measurement_start_day", "probe_cc": "IR", "since": "2026-09-01", "until": "2026-10-01"},
    {"axis_x": "domain", "probe_cc": "IR", "test_name": "web_connectivity"},
    {"axis_x": "measurement_start_day", "axis_y": "test_name", "time_grain": "month"},
    {"axis_x": "probe_asn", "domain": "d17.example", "since": "2026-06-01"},
    {"axis_x": "input", "probe_cc": "CN", "anomaly": "true"},
    {"axis_x": "measurement_start_day", "axis_y": "domain", "probe_cc": "IR", "since": "2026-10-01", "time_grain": "day"},
    {"axis_x": "category_code", "axis_y": "probe_cc", "confirmed": "true"},
    {"axis_x": "measurement_start_day", "time_grain": "week", "axis_y": "blocking_type", "probe_cc": "RU"},
    {},
]  # fmt: skip


def generate(db: Path, rows: int) -> None:
    started = time.perf_counter()
    tmp = db.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    con.execute(table_ddl("verdicts", Verdict))
    # hash(i, salt) gives independent pseudo-random draws per row and column.
    con.execute(
        f"""
        INSERT INTO verdicts BY NAME
        WITH base AS (
          SELECT i,
            TIMESTAMP '2025-11-01' + to_seconds(i * (365 * 86400) // {rows}) AS t,
            (hash(i, 1) % 60)::BIGINT AS cc_i, (hash(i, 2) % 10)::BIGINT AS asn_i,
            (hash(i, 3) % 2000)::BIGINT AS dom_i,
            (hash(i, 4) % 1000)::BIGINT AS r_anom, (hash(i, 5) % 1000)::BIGINT AS r_fail,
            (hash(i, 6) % 5)::BIGINT AS r_bt,
            (hash(i, 7) % 20)::BIGINT AS r_test
          FROM range({rows}) r(i)
        ), drawn AS (
          SELECT *,
            CASE WHEN cc_i = 0 THEN 'IR' WHEN cc_i = 1 THEN 'CN' WHEN cc_i = 2 THEN 'RU'
                 ELSE chr(65 + (cc_i % 26)::INT) || chr(65 + ((cc_i * 7) % 26)::INT) END AS cc,
            -- censoring countries block more
            r_anom < CASE WHEN cc_i < 3 THEN 450 ELSE 60 END AS anomaly
          FROM base
        )
        SELECT
          'm' || i AS measurement_uid,
          strftime(t, '%Y%m%dT%H%M%SZ') || '_web_connectivity_' || cc || '_n1_' || (i % 997) AS report_id,
          'https://d' || dom_i || '.example/' AS input,
          'd' || dom_i || '.example' AS domain,
          cc AS probe_cc,
          'AS' || (1000 + cc_i * 10 + asn_i) AS probe_asn,
          CASE WHEN r_test < 16 THEN 'web_connectivity' WHEN r_test < 18 THEN 'whatsapp'
               WHEN r_test < 19 THEN 'telegram' ELSE 'signal' END AS test_name,
          t AS measurement_start_time,
          ['NEWS','GRP','MMED','ANON','COMT','HUMR','POLR','LGBT','REL','CULTR'][1 + dom_i % 10] AS category_code,
          anomaly,
          anomaly AND r_bt = 4 AND cc_i < 3 AS confirmed,
          NOT anomaly AND r_fail < 30 AS failure,
          CASE WHEN anomaly THEN ['dns','tcp_ip','tls','http-failure','http-diff'][1 + r_bt] END AS blocking_type,
          [] AS fingerprints, ['bench'] AS rules, 'bench' AS rules_version
        FROM drawn ORDER BY i
        """
    )
    con.close()
    tmp.rename(db)
    print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s -> {db}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def run_api(
    db: Path, threads: int, repeats: int, *, keep_open: float = 1.0, hold: bool = False
) -> dict[int, list[float]]:
    app = create_app(
        db,
        threads=threads,
        dashboard=False,
        query_timeout=30,
        hold_connection=hold,
        keep_open=keep_open,
    )
    times: dict[int, list[float]] = {i: [] for i in range(len(QUERIES))}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for params in QUERIES:  # warm-up: first touch of each column
            r = await client.get("/api/v1/aggregation", params=params, timeout=60)
            assert r.status_code == 200, r.text
        for _ in range(repeats):
            for i, params in enumerate(QUERIES):
                t0 = time.perf_counter()
                r = await client.get("/api/v1/aggregation", params=params, timeout=60)
                times[i].append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
    app.state.reader.close()
    return times


def run_sql(db: Path, threads: int, repeats: int) -> dict[int, list[float]]:
    """The baseline: the same SQL the API runs, straight on DuckDB, no HTTP, no JSON."""
    con = duckdb.connect(str(db), read_only=True, config={"threads": threads})
    prepared = []
    for params in QUERIES:
        f = filters_from_query(params)
        prepared.append(
            q.aggregation_sql(
                f, params.get("axis_x"), params.get("axis_y"), params.get("time_grain", "day")
            )
        )
    times: dict[int, list[float]] = {i: [] for i in range(len(QUERIES))}
    for sql, p in prepared:
        con.execute(sql, p).fetchall()
    for _ in range(repeats):
        for i, (sql, p) in enumerate(prepared):
            t0 = time.perf_counter()
            con.execute(sql, p).fetchall()
            times[i].append(time.perf_counter() - t0)
    con.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    db = args.db or Path(f"/tmp/dideban-bench-api-{args.rows}.duckdb")
    if not db.exists():
        generate(db, args.rows)
    n = duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM verdicts").fetchone()
    print(f"store {db}: {n[0] if n else 0:,} measurements; DuckDB threads={args.threads}")

    # Rounds alternate the three ways of asking, so that load from other processes on this
    # shared machine falls on all of them alike.
    sql_times: dict[int, list[float]] = {i: [] for i in range(len(QUERIES))}
    api_times: dict[int, list[float]] = {i: [] for i in range(len(QUERIES))}
    held_times: dict[int, list[float]] = {i: [] for i in range(len(QUERIES))}
    fresh_times: dict[int, list[float]] = {i: [] for i in range(len(QUERIES))}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for acc, got in (
            (sql_times, run_sql(db, args.threads, 1)),
            (api_times, asyncio.run(run_api(db, args.threads, 1))),
            (held_times, asyncio.run(run_api(db, args.threads, 1, hold=True))),
            (fresh_times, asyncio.run(run_api(db, args.threads, 1, keep_open=0))),
        ):
            for i, ts in got.items():
                acc[i].extend(ts)
    print(f"load average (1 min) before/after: {load:.2f} / {os.getloadavg()[0]:.2f}")
    print("API, default reader (one connection per burst, closed after 1 s or 0.2 s idle):")
    print(f"{'query':<78} {'api p50':>8} {'api p95':>8} {'sql p50':>8} {'ratio':>6}")
    for i, params in enumerate(QUERIES):
        label = "&".join(f"{k}={v}" for k, v in params.items()) or "(no axis, no filter)"
        a50, a95 = pct(api_times[i], 50), pct(api_times[i], 95)
        s50 = pct(sql_times[i], 50)
        print(
            f"{label[:78]:<78} {a50 * 1e3:7.1f}ms {a95 * 1e3:7.1f}ms {s50 * 1e3:7.1f}ms {a50 / s50:5.2f}x"
        )
    all_api = [t for ts in api_times.values() for t in ts]
    all_sql = [t for ts in sql_times.values() for t in ts]
    p50, p95 = pct(all_api, 50), pct(all_api, 95)
    print(
        f"ALL {len(all_api)} API calls: p50 {p50 * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms, "
        f"max {max(all_api) * 1e3:.1f} ms; SQL-only p50 {pct(all_sql, 50) * 1e3:.1f} ms "
        f"(API/SQL p50 ratio {statistics.median(all_api) / statistics.median(all_sql):.2f}x)"
    )
    all_held = [t for ts in held_times.values() for t in ts]
    all_fresh = [t for ts in fresh_times.values() for t in ts]
    print(
        f"ALL {len(all_fresh)} API calls with a new connection per query (--keep-open 0): "
        f"p50 {pct(all_fresh, 50) * 1e3:.1f} ms, p95 {pct(all_fresh, 95) * 1e3:.1f} ms"
    )
    print(
        f"ALL {len(all_held)} API calls with a held connection (--hold-connection): "
        f"p50 {pct(all_held, 50) * 1e3:.1f} ms, p95 {pct(all_held, 95) * 1e3:.1f} ms"
    )
    print(f"goal p95 < 500 ms (default mode): {'MET' if p95 < 0.5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
