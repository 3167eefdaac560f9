"""Rows the store keeps besides observations and verdicts: where each raw measurement lives,
and how far ingest has read each input file (its watermark).

Like `dideban.model.verdict`, these dataclasses are the single definition of their tables:
`dideban.store` generates the DuckDB schema from them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dideban.model.verdict import Verdict


@dataclass
class StoredMeasurement:
    """Metadata of one raw measurement and where its unchanged JSON lives.

    `raw_path` is the file; `raw_line` the 1-based line for JSONL files (plain or compressed),
    `raw_index` the 0-based position inside a top-level JSON array; both None for a file that
    holds one JSON object.
    """

    measurement_uid: str
    report_id: str
    input: str | None
    probe_cc: str
    probe_asn: str
    test_name: str
    measurement_start_time: dt.datetime
    raw_path: str
    raw_line: int | None = None
    raw_index: int | None = None
    # True when the uid was derived from the content (the measurement had none).
    uid_derived: bool = False

    @classmethod
    def of_verdict(
        cls,
        verdict: Verdict,
        raw_path: str,
        raw_line: int | None,
        raw_index: int | None = None,
        uid_derived: bool = False,
    ) -> StoredMeasurement:
        """The metadata row of the measurement `verdict` was derived from."""
        return cls(
            measurement_uid=verdict.measurement_uid,
            report_id=verdict.report_id,
            input=verdict.input,
            probe_cc=verdict.probe_cc,
            probe_asn=verdict.probe_asn,
            test_name=verdict.test_name,
            measurement_start_time=verdict.measurement_start_time,
            raw_path=raw_path,
            raw_line=raw_line,
            raw_index=raw_index,
            uid_derived=uid_derived,
        )


@dataclass
class IngestedFile:
    """Ingest's watermark for one input file, committed in the same transaction as its rows.

    `bytes_done` is the offset just past the last complete line read (plain JSONL files grow
    by appending); `lines_done` the number of lines read (compressed files are re-read and the
    first `lines_done` lines skipped). `size` and `mtime_ns` tell whether the file changed.
    """

    path: str
    size: int
    mtime_ns: int
    bytes_done: int
    lines_done: int
    measurements: int
    errors: int
    ingested_at: dt.datetime
    # False while only the first chunks of the file are in (a big file spans batches).
    complete: bool = True
