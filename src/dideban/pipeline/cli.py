"""`dideban analyze`, `dideban ingest`, `dideban reprocess`."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gc
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from dideban.model.verdict import Verdict


class Format(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


FpOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--fingerprints",
        help="A folder of extra fingerprint files (OONI blocking-fingerprints CSV); repeatable",
    ),
]


def _batch_gc() -> None:
    """Batch runs make millions of short-lived objects: collect the young generation less
    often (the same setting bench/analyze.py measures with)."""
    gc.set_threshold(100_000, 50, 100)


def _fpdb(folders: list[Path] | None) -> Any:
    from dideban.pipeline.fingerprints import FingerprintDB, FingerprintError

    try:
        return FingerprintDB.load(folders or [])
    except FingerprintError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _row(v: Verdict) -> dict[str, Any]:
    d = dataclasses.asdict(v)
    d["measurement_start_time"] = v.measurement_start_time.strftime("%Y-%m-%d %H:%M:%S")
    return d


def _time(text: str | None, flag: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
        return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when
    except (ValueError, OverflowError):  # OverflowError: out of range once in UTC
        typer.echo(f"error: {flag} {text!r} is not an ISO date or datetime", err=True)
        raise typer.Exit(2) from None


def analyze_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Measurement files or folders")],
    fmt: Annotated[Format, typer.Option("--format", help="Output format")] = Format.table,
    fingerprints: FpOpt = None,
) -> None:
    """Analyze OONI-format measurements and print one verdict per measurement.

    Unreadable measurements, and any whose analysis failed (a bug; its row says so), are
    reported on stderr (file:line: reason); the exit status is 1 when there were any, 0
    otherwise."""
    from dideban.pipeline.analysis import analyze
    from dideban.pipeline.readers import ReadError, read_paths

    for p in paths:
        if not p.exists():
            typer.echo(f"error: {p}: no such file or directory", err=True)
            raise typer.Exit(2)
    db = _fpdb(fingerprints)
    _batch_gc()
    out = sys.stdout
    errors = 0
    writer: Any = None
    names = [f.name for f in dataclasses.fields(Verdict)]
    if fmt is Format.csv:
        writer = csv.DictWriter(out, fieldnames=names)
        writer.writeheader()
    elif fmt is Format.table:
        out.write(
            f"{'measurement_uid':<58} {'test_name':<22} {'cc':<3} {'anomaly':<7} "
            f"{'confirmed':<9} {'failure':<7} {'blocking_type':<13} rules / fingerprints\n"
        )
    for item in read_paths(paths):
        if isinstance(item, ReadError):
            errors += 1
            typer.echo(f"unreadable: {item}", err=True)
            continue
        a = analyze(item, db)
        if a.error is not None:
            errors += 1
            typer.echo(f"analysis failed: {ReadError(item.path, item.line, a.error)}", err=True)
        v = a.verdict
        if fmt is Format.jsonl:
            out.write(json.dumps(_row(v), ensure_ascii=False) + "\n")
        elif fmt is Format.csv:
            row = _row(v)
            row["fingerprints"] = ";".join(v.fingerprints)
            row["rules"] = ";".join(v.rules)
            writer.writerow(row)
        else:
            out.write(
                f"{v.measurement_uid:<58} {v.test_name:<22} {v.probe_cc:<3} "
                f"{v.anomaly!s:<7} {v.confirmed!s:<9} {v.failure!s:<7} "
                f"{v.blocking_type or '-':<13} {','.join(v.rules)} {','.join(v.fingerprints)}\n"
            )
    if errors:
        raise typer.Exit(1)


def ingest_cmd(
    data_dir: Annotated[
        list[Path], typer.Option("--data-dir", help="Collector data folder or OONI files")
    ],
    db: Annotated[Path, typer.Option("--db", help="The store (DuckDB file)")],
    fingerprints: FpOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 2000,
) -> None:
    """Load new raw measurements into the store (incremental, idempotent, one transaction
    per batch)."""
    from dideban.ingest import ingest
    from dideban.store import StoreBusy, StoreError

    for p in data_dir:
        if not p.exists():
            typer.echo(f"error: {p}: no such file or directory", err=True)
            raise typer.Exit(2)
    fpdb = _fpdb(fingerprints)
    _batch_gc()
    try:
        rep = ingest(data_dir, db, fpdb, batch_size=batch_size)
    except (StoreBusy, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for e in rep.errors:
        typer.echo(f"unreadable: {e}", err=True)
    for e in rep.analysis_failed:
        typer.echo(f"analysis failed (stored as such): {e}", err=True)
    failed = f", {len(rep.analysis_failed)} analysis failed" if rep.analysis_failed else ""
    typer.echo(
        f"{rep.measurements} measurements from {rep.files_read} new/changed of "
        f"{rep.files_seen} files in {rep.batches} batches; {len(rep.errors)} unreadable{failed}"
    )


def reprocess_cmd(
    db: Annotated[Path, typer.Option("--db", help="The store (DuckDB file)")],
    since: Annotated[str | None, typer.Option("--since", help="ISO date/time, inclusive")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO date/time, exclusive")] = None,
    fingerprints: FpOpt = None,
) -> None:
    """Recompute observations and verdicts from the raw files (after rules or fingerprints
    changed). Raw files are only read."""
    from dideban.ingest import reprocess
    from dideban.store import StoreBusy, StoreError

    s, u = _time(since, "--since"), _time(until, "--until")
    if not db.exists():
        typer.echo(f"error: store {db} does not exist", err=True)
        raise typer.Exit(2)
    fpdb = _fpdb(fingerprints)
    try:
        done, problems = reprocess(db, fpdb, since=s, until=u)
    except (StoreBusy, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for p in problems:
        typer.echo(f"problem: {p}", err=True)
    typer.echo(f"reprocessed {done} measurements")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
    app.command("ingest")(ingest_cmd)
    app.command("reprocess")(reprocess_cmd)
