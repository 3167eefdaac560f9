"""`dideban upload` (drain the queue) and `dideban status` (queued and uploaded measurements)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dideban.probe.queue import MeasurementQueue, default_queue_dir
from dideban.probe.submit import DrainResult, Submitter

out = Console(soft_wrap=True)
err = Console(stderr=True)

QueueDir = Annotated[
    Path | None,
    typer.Option(
        "--queue-dir",
        help="Queue directory (default: $DIDEBAN_STATE_DIR/queue or ~/.local/state/dideban/queue).",
    ),
]


async def drain_queue(
    queue_dir: Path, collector: str | None, attempts: int = 5
) -> list[tuple[str, DrainResult]]:
    """Drain every queued measurement, to `collector` or to the URL each was queued for."""
    queue = MeasurementQueue(queue_dir)
    urls = {collector} if collector else {e.collector_url for e in queue.pending()}
    results = []
    for url in sorted(urls):
        submitter = Submitter(url, queue_dir)
        try:
            # Without --collector, each entry goes where it was meant to go.
            result = await submitter.drain(attempts=attempts, only_mine=collector is None)
        finally:
            await submitter.close(drain=False)
        results.append((url, result))
    return results


def upload(
    collector: Annotated[
        str | None,
        typer.Option(help="Upload to this collector (default: where each was meant to go)."),
    ] = None,
    queue_dir: QueueDir = None,
    attempts: Annotated[
        int, typer.Option(help="Transient failures in a row before giving up.")
    ] = 5,
) -> None:
    """Upload the measurements queued while the collector was unreachable (each exactly once)."""
    qdir = queue_dir or default_queue_dir()
    queue = MeasurementQueue(qdir)
    if not queue.pending():
        out.print(f"nothing queued in {qdir}")
        return
    results = asyncio.run(drain_queue(qdir, collector, attempts))
    failed = False
    for url, r in results:
        out.print(
            f"{url}: {len(r.uploaded)} uploaded, {len(r.rejected)} rejected, {r.remaining} still queued"
        )
        for name, uid in r.uploaded:
            out.print(f"  {name} -> {uid}")
        for name, error in r.rejected:
            err.print(f"  rejected {name}: {error}")
        if r.error:
            err.print(f"  stopped: {r.error}")
            failed = True
    if failed:
        raise typer.Exit(1)


def status(
    queue_dir: QueueDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    last: Annotated[int, typer.Option(help="How many uploads to list.")] = 20,
) -> None:
    """What is queued for upload, what was rejected, and what was uploaded (with uids)."""
    qdir = queue_dir or default_queue_dir()
    queue = MeasurementQueue(qdir)
    pending = queue.pending()
    rejected = queue.rejected()
    uploads = queue.uploads()
    if as_json:
        doc = {
            "queue_dir": str(qdir),
            "queued": [
                {
                    "entry": e.name,
                    "collector_url": e.collector_url,
                    "report_id": e.report_id,
                    "test_name": e.report.test_name,
                    "input": e.measurement.get("input"),
                    "queued_at": e.queued_at,
                    "attempts": e.attempts,
                    "last_error": e.last_error,
                }
                for e in pending
            ],
            "rejected": [
                {"entry": e.name, "input": e.measurement.get("input"), "error": e.last_error}
                for e in rejected
            ],
            "uploaded": uploads,
        }
        out.print_json(json.dumps(doc))
        return
    by_url: dict[str, int] = defaultdict(int)
    for e in pending:
        by_url[e.collector_url] += 1
    out.print(f"queue: {qdir}")
    out.print(f"queued: {len(pending)}" + "".join(f"\n  {n} for {u}" for u, n in by_url.items()))
    if pending:
        t = Table(title="queued")
        for col in ("entry", "test", "input", "queued at", "attempts", "last error"):
            t.add_column(col)
        for e in pending:
            t.add_row(
                e.name,
                e.report.test_name,
                str(e.measurement.get("input")),
                e.queued_at,
                str(e.attempts),
                e.last_error or "",
            )
        out.print(t)
    if rejected:
        out.print(f"rejected by the collector (not retried): {len(rejected)}")
        for e in rejected:
            out.print(f"  {e.name} {e.measurement.get('input')}: {e.last_error}")
    out.print(f"uploaded: {len(uploads)}")
    if uploads:
        t = Table(title=f"last {min(last, len(uploads))} uploads")
        for col in ("measurement_uid", "test", "input", "uploaded at", "via"):
            t.add_column(col, overflow="fold")
        for u in uploads[-last:]:
            t.add_row(
                str(u.get("measurement_uid")),
                str(u.get("test_name")),
                str(u.get("input")),
                str(u.get("uploaded_at")),
                str(u.get("via")),
            )
        out.print(t)


def register(app: typer.Typer) -> None:
    app.command("upload")(upload)
    app.command("status")(status)
