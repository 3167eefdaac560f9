"""The probe's scrubber on the shapes web_connectivity records."""

from __future__ import annotations

import base64
import json

from dideban.probe.privacy import scrubber

ME = "203.0.113.77"


def test_scrubs_strings_keys_headers_and_base64_bodies() -> None:
    body = base64.b64encode(b"\xffyou are " + ME.encode()).decode()
    m = {
        "probe_ip": ME,
        "test_keys": {
            "requests": [
                {
                    "response": {
                        "headers": {"X-Client": ME},
                        "headers_list": [["X-Client", f"{ME}:5555"]],
                        "body": {"format": "base64", "data": body},
                    },
                    "failure": f"unknown_failure: {ME} said no",
                }
            ],
            "control": {"tcp_connect": {f"{ME}:443": {"status": True}}},
            "x_control_request": {"tcp_connect": [f"{ME}:443"]},
        },
    }
    out = scrubber()(m, [ME])
    assert ME not in json.dumps(out)
    data = out["test_keys"]["requests"][0]["response"]["body"]["data"]
    assert ME not in base64.b64decode(data).decode("latin-1")
    assert out["probe_ip"] == "127.0.0.1"
    assert "127.0.0.1:443" in out["test_keys"]["control"]["tcp_connect"]


def test_other_addresses_are_left_alone() -> None:
    m = {"a": "203.0.113.7 and 203.0.113.170 and 1203.0.113.77"}
    assert scrubber()(m, [ME])["a"] == m["a"]
