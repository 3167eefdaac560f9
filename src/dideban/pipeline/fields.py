"""What the analysis reads of a measurement: the prune spec of `_native.decode_pruned`.

Reading JSONL, the pipeline decodes only these keys (the rest of a ~9 KB measurement, TLS
certificates, network events, request headers..., is parsed and checked, never built). The
analysis (`analysis.analyze`, `observations.extract`) must read nothing else: tests check that
it gives the same result on this view as on the whole document, for every OONI sample and lab
measurement and for records with any value anywhere (tests/unit/pipeline/test_pipeline_native.py).

`None`: the value whole; a dict: an object's keys; a tuple of (key, spec) pairs: an object
as a record, the tuple of those keys' values (the archival records that
`observations.extract` reads; their keys are `_native.QUERY` etc.); `[spec]`: each element
of an array; `bytes`: a string as its UTF-8 bytes; `tuple`: an array as a tuple; `RAW`: any
value as its JSON text, checked, not decoded (`_native.decode_raw` decodes it when needed);
`KEYS`: an object as the tuple of its keys.
"""

from __future__ import annotations

from typing import Any

from dideban.pipeline import _native

WHOLE = None
RAW = _native.RAW
KEYS = _native.KEYS

# Keys of test_keys that the verdict logic reads whole (small values).
TEST_KEYS_READ = (
    "control_failure", "dns_experiment_failure", "http_experiment_failure",
    "blocking", "accessible", "targets", "failure", "success", "tor_progress", "tampering",
    "bootstrap_failure", "lookups", "signal_backend_failure",
)  # fmt: skip

# Envelope keys the analysis reads.
ENVELOPE_READ = (
    "measurement_uid", "report_id", "input", "probe_cc", "probe_asn", "test_name",
    "test_version", "measurement_start_time",
)  # fmt: skip


# What the verdict logic reads of web_connectivity's control (the test helper's answer): its
# DNS and HTTP results on every measurement; the sections it reads only where a step failed
# (or addresses need vouching for), and the control's response headers (of which only the
# names are read, `KEYS`, where the pages are compared on them), kept as their text.
# A control with none of these sections counts as none (`analysis._web_connectivity`).
CONTROL_SPEC: dict[str, Any] = {
    "dns": WHOLE,
    "http_request": {
        "status_code": WHOLE, "failure": WHOLE, "body_length": WHOLE, "title": WHOLE,
        "headers": RAW,
    },
    "tcp_connect": RAW,
    "tls_handshake": RAW,
    "ip_info": RAW,
}  # fmt: skip
CONTROL_SECTIONS = frozenset(CONTROL_SPEC)


def record(keys: tuple[str, ...], **nested: Any) -> tuple[tuple[str, Any], ...]:
    """The spec of a record: an object decoded to a tuple of these keys' values, in order
    (None for a key that is not there); `nested` gives the spec of some of the values."""
    return tuple((k, nested.get(k)) for k in keys)


PRUNE_SPEC: dict[str, Any] = {
    **dict.fromkeys(ENVELOPE_READ),
    "test_keys": {
        "queries": [record(_native.QUERY, answers=[record(_native.ANSWER)])],
        "tcp_connect": [record(_native.TCP_CONNECT, status=record(_native.TCP_STATUS))],
        "tls_handshakes": [record(_native.TLS_HANDSHAKE)],
        "requests": [
            record(
                _native.REQUEST,
                request=record(_native.REQUEST_REQUEST),
                # The body as UTF-8 bytes: it is only searched and measured.
                # Header pairs as tuples (as `extract` gives them). The `headers` object
                # is read only where there is no `headers_list` (before probe-cli 0.4):
                # kept as its text until then.
                response=record(
                    _native.REQUEST_RESPONSE, body=bytes, headers_list=[tuple], headers=RAW
                ),
            )
        ],
        "control": CONTROL_SPEC,
        **dict.fromkeys(TEST_KEYS_READ),
    },
}
