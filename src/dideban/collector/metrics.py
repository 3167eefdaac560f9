"""Prometheus text exposition of the collector's counters (no client library needed)."""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Final

FSYNC_BUCKETS: Final[tuple[float, ...]] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class Metrics:
    def __init__(self) -> None:
        self.submissions = 0
        self.duplicates = 0
        self.reports_opened = 0
        self.reports_closed = 0
        self.rejections: Counter[str] = Counter()
        self.fsync_bucket_counts = [0] * len(FSYNC_BUCKETS)
        self.fsync_count = 0
        self.fsync_sum = 0.0
        self.fsyncs = 0
        self.batches = 0
        self.batched_measurements = 0

    def observe_commit(self, seconds: float, fsyncs: int, size: int) -> None:
        i = bisect.bisect_left(FSYNC_BUCKETS, seconds)
        if i < len(FSYNC_BUCKETS):
            self.fsync_bucket_counts[i] += 1
        self.fsync_count += 1
        self.fsync_sum += seconds
        self.fsyncs += fsyncs
        self.batches += 1
        self.batched_measurements += size

    def render(self) -> str:
        p = "dideban_collector"
        lines = [
            f"# HELP {p}_submissions_total Measurements stored (acknowledged with a new uid).",
            f"# TYPE {p}_submissions_total counter",
            f"{p}_submissions_total {self.submissions}",
            f"# HELP {p}_duplicates_total Resubmissions answered with the uid already stored.",
            f"# TYPE {p}_duplicates_total counter",
            f"{p}_duplicates_total {self.duplicates}",
            f"# HELP {p}_reports_opened_total Reports opened.",
            f"# TYPE {p}_reports_opened_total counter",
            f"{p}_reports_opened_total {self.reports_opened}",
            f"# HELP {p}_reports_closed_total Reports closed.",
            f"# TYPE {p}_reports_closed_total counter",
            f"{p}_reports_closed_total {self.reports_closed}",
            f"# HELP {p}_rejections_total Requests refused, by reason (error code).",
            f"# TYPE {p}_rejections_total counter",
        ]
        for reason, n in sorted(self.rejections.items()):
            lines.append(f'{p}_rejections_total{{reason="{reason}"}} {n}')
        lines += [
            f"# HELP {p}_fsync_seconds Time to fsync one group-committed batch.",
            f"# TYPE {p}_fsync_seconds histogram",
        ]
        cumulative = 0
        for bound, n in zip(FSYNC_BUCKETS, self.fsync_bucket_counts, strict=True):
            cumulative += n
            lines.append(f'{p}_fsync_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines += [
            f'{p}_fsync_seconds_bucket{{le="+Inf"}} {self.fsync_count}',
            f"{p}_fsync_seconds_sum {self.fsync_sum:.6f}",
            f"{p}_fsync_seconds_count {self.fsync_count}",
            f"# HELP {p}_fsyncs_total fsync calls on open segments.",
            f"# TYPE {p}_fsyncs_total counter",
            f"{p}_fsyncs_total {self.fsyncs}",
            f"# HELP {p}_commit_batches_total Group commits.",
            f"# TYPE {p}_commit_batches_total counter",
            f"{p}_commit_batches_total {self.batches}",
            f"# HELP {p}_committed_measurements_total Measurements written by group commits.",
            f"# TYPE {p}_committed_measurements_total counter",
            f"{p}_committed_measurements_total {self.batched_measurements}",
        ]
        return "\n".join(lines) + "\n"
