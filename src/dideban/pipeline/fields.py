"""What the analysis reads of a measurement: the prune spec of `_native.decode_pruned`.

Reading JSONL, the pipeline decodes only these keys (the rest of a ~9 KB measurement, TLS
certificates, network events, request headers..., is parsed and checked, never built). The
analysis (`analysis.analyze`, `observations.extract`) must read nothing else: a test runs it
over every sample with a document that records what is read, and fails on any other key.

`None`: the value whole; a dict: an object's keys; `[spec]`: each element of an array.
"""

from __future__ import annotations

from typing import Any

WHOLE = None

# Keys of test_keys that the verdict logic reads whole (small values).
TEST_KEYS_READ = (
    "control", "control_failure", "dns_experiment_failure", "http_experiment_failure",
    "blocking", "accessible", "targets", "failure", "success", "tor_progress", "tampering",
    "bootstrap_failure", "lookups", "signal_backend_failure",
)  # fmt: skip

# Envelope keys the analysis reads.
ENVELOPE_READ = (
    "measurement_uid", "report_id", "input", "probe_cc", "probe_asn", "test_name",
    "test_version", "measurement_start_time",
)  # fmt: skip

PRUNE_SPEC: dict[str, Any] = {
    **dict.fromkeys(ENVELOPE_READ),
    "test_keys": {
        "queries": [
            {
                **dict.fromkeys(("transaction_id", "hostname", "engine", "failure", "t0", "t")),
                "answers": [dict.fromkeys(("ipv4", "ipv6", "hostname", "answer_type"))],
            }
        ],
        "tcp_connect": [
            {
                **dict.fromkeys(("transaction_id", "ip", "port", "t0", "t")),
                "status": {"failure": WHOLE},
            }
        ],
        "tls_handshakes": [
            dict.fromkeys(("transaction_id", "address", "server_name", "failure", "t0", "t"))
        ],
        "requests": [
            {
                **dict.fromkeys(("transaction_id", "failure", "t0", "t")),
                "request": {"url": WHOLE},
                "response": dict.fromkeys(("body", "headers_list", "headers", "code")),
            }
        ],
        **dict.fromkeys(TEST_KEYS_READ),
    },
}
