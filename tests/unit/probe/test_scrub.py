"""The probe's address scrubber: pure, property-tested."""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dideban.probe.scrub import address_pattern, scrub_measurement

PROBE_V4 = "198.51.100.77"
PROBE_V6 = "2001:db8:0:0:0:0:0:77"


def _echo_measurement() -> dict[str, Any]:
    body = f"<html>Your address is {PROBE_V4}</html>"
    return {
        "probe_ip": PROBE_V4,
        "input": f"http://{PROBE_V4}/",
        "resolver_ip": "203.0.113.53",
        "test_keys": {
            "requests": [
                {
                    "failure": f"unknown_failure: dial {PROBE_V4}:443 refused",
                    "request": {"url": f"http://[{PROBE_V6.upper()}]:80/"},
                    "response": {
                        "body": body,
                        "headers": {"X-Client-IP": PROBE_V4, PROBE_V4: "key"},
                        "headers_list": [["X-Forwarded-For", f"{PROBE_V4}, 203.0.113.9"]],
                    },
                },
                {
                    "response": {
                        "body": {
                            "format": "base64",
                            "data": base64.b64encode(b"\xff\xfe ip=" + PROBE_V4.encode()).decode(),
                        }
                    }
                },
            ],
            "x_v6": "2001:DB8::77 and 2001:db8::770",
            "numbers": [1, 2.5, None, True],
        },
    }


def _all_text(value: Any) -> str:
    """Every string of a measurement, base64 bodies decoded."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, dict):
            if v.get("format") == "base64" and isinstance(v.get("data"), str):
                parts.append(base64.b64decode(v["data"]).decode("latin-1"))
            for k, x in v.items():
                parts.append(str(k))
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return "\n".join(parts)


def test_echo_site_measurement_is_scrubbed_everywhere() -> None:
    m = _echo_measurement()
    original = copy.deepcopy(m)
    out = scrub_measurement(m, [PROBE_V4, PROBE_V6])
    assert m == original  # input untouched
    text = _all_text(out)
    assert PROBE_V4 not in text
    pattern = address_pattern([PROBE_V4, PROBE_V6])
    assert pattern is not None and pattern.search(text) is None
    assert out["probe_ip"] == "127.0.0.1"
    resp = out["test_keys"]["requests"][0]["response"]
    assert resp["body"] == "<html>Your address is 127.0.0.1</html>"
    assert resp["headers"] == {"X-Client-IP": "127.0.0.1", "127.0.0.1": "key"}
    assert resp["headers_list"] == [["X-Forwarded-For", "127.0.0.1, 203.0.113.9"]]
    assert out["test_keys"]["requests"][0]["request"]["url"] == "http://[127.0.0.1]:80/"
    b64 = out["test_keys"]["requests"][1]["response"]["body"]
    assert base64.b64decode(b64["data"]) == b"\xff\xfe ip=127.0.0.1"
    # A longer address that merely contains the probe's is not touched.
    assert out["test_keys"]["x_v6"] == "127.0.0.1 and 2001:db8::770"
    assert out["resolver_ip"] == "203.0.113.53"
    assert out["test_keys"]["numbers"] == [1, 2.5, None, True]


def test_address_inside_longer_address_is_kept() -> None:
    out = scrub_measurement({"a": "11.2.3.45 1.2.3.4 1.2.3.4.5 1.2.3.40"}, ["1.2.3.4"])
    assert out["a"] == "11.2.3.45 127.0.0.1 1.2.3.4.5 1.2.3.40"


def test_no_addresses_changes_only_probe_ip() -> None:
    m = _echo_measurement()
    out = scrub_measurement(m, ["not-an-ip", ""])
    expected = copy.deepcopy(m)
    expected["probe_ip"] = "127.0.0.1"
    assert out == expected
    out["test_keys"]["numbers"].append(3)
    assert m["test_keys"]["numbers"] == [1, 2.5, None, True]  # a copy, not a view


# --- properties --------------------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
# No digits, dots, hex letters or colons in the filler: an address glued to such characters
# is a different token (11.2.3.45, a2001:db8::1), which the examples above cover.
filler = st.text(alphabet="ghxyz <>/=,;-_\"'[]()", max_size=12)


@st.composite
def embedded(draw: st.DrawFn, address: str) -> str:
    spelled = draw(st.sampled_from([address, address.upper()]))
    return draw(filler) + spelled + draw(filler)


@st.composite
def measurement_with(draw: st.DrawFn, address: str) -> dict[str, Any]:
    leaf = st.one_of(
        embedded(address),
        filler,
        st.integers(),
        st.none(),
        embedded(address).map(
            lambda s: {"format": "base64", "data": base64.b64encode(s.encode()).decode()}
        ),
    )
    tree = st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(filler, embedded(address)), children, max_size=4),
        ),
        max_leaves=20,
    )
    return {"probe_ip": address, "test_keys": draw(tree)}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), address=st.one_of(ipv4, ipv6))
def test_property_no_address_survives(data: st.DataObject, address: str) -> None:
    m = data.draw(measurement_with(address))
    out = scrub_measurement(m, [address])
    pattern = address_pattern([address])
    assert pattern is not None
    assert pattern.search(_all_text(out)) is None
    assert pattern.search(json.dumps(out)) is None
    # An independent check that does not trust the matcher: no spelling survives as text.
    low = _all_text(out).lower()
    spellings = {address.lower(), ipaddress.ip_address(address).exploded.lower()}
    assert not any(s in low for s in spellings)
    assert out["probe_ip"] == "127.0.0.1"


@settings(max_examples=150, deadline=None)
@given(data=st.data(), address=ipv4)
def test_property_nothing_else_changes(data: st.DataObject, address: str) -> None:
    # A measurement built from another address keeps every value when `address` is scrubbed,
    # unless that other address happens to be the same one.
    other = str(ipaddress.ip_address((int(ipaddress.ip_address(address)) + 1) % 2**32))
    m = data.draw(measurement_with(other))
    out = scrub_measurement(m, [address])
    expected = copy.deepcopy(m)
    expected["probe_ip"] = "127.0.0.1"
    assert out == expected


@settings(max_examples=100, deadline=None)
@given(address=ipv6)
def test_property_ipv6_spellings(address: str) -> None:
    exploded = ipaddress.ip_address(address).exploded
    out = scrub_measurement({"a": f"[{exploded}]:443 {address.upper()}"}, [address])
    assert out["a"] == "[127.0.0.1]:443 127.0.0.1"
