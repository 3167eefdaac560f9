from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from dideban.probe.privacy import minimal_scrub, scrubber

ME = "203.0.113.77"


def test_scrubs_strings_keys_and_base64_bodies() -> None:
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
        },
    }
    out = minimal_scrub(m, [ME])
    text = json.dumps(out)
    assert ME not in text
    assert ME not in base64.b64decode(
        out["test_keys"]["requests"][0]["response"]["body"]["data"]
    ).decode("latin-1")
    assert out["probe_ip"] == "127.0.0.1"
    assert "127.0.0.1:443" in out["test_keys"]["control"]["tcp_connect"]


def test_other_addresses_are_left_alone() -> None:
    m = {"a": "203.0.113.7 and 203.0.113.770 and 1203.0.113.77 and 203.0.113.77.5"}
    assert minimal_scrub(m, [ME])["a"] == m["a"]


@given(st.lists(st.sampled_from(["x", " ", ME, "203.0.113.7", ":", "/", "1", "."]), max_size=20))
def test_no_occurrence_survives(parts: list[str]) -> None:
    text = "".join(parts)
    out = minimal_scrub({"k": text}, [ME])["k"]
    # Whatever surrounds it, a standalone occurrence is gone; digits glued on make another address.
    import re

    assert not re.search(r"(?<![\d.])203\.0\.113\.77(?!\d|\.\d)", out)


def test_scrubber_is_callable() -> None:
    scrub = scrubber()
    assert scrub({"probe_ip": ME, "x": ME}, [ME])["x"] == "127.0.0.1"
