"""The web_connectivity analysis: a pure function of recorded data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dideban.nettests.web_connectivity import analysis as wa

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "ooni-samples"

# (file, OONI's blocking, OONI's accessible, do we agree on accessible?)
OONI_WEB_CONNECTIVITY = [
    ("20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json", False, True, True),
    ("bug_351.json", "http-failure", False, True),
    ("requests_none.json", "dns", False, True),
    ("web_connectivity_odd_hdr.json", "dns", False, True),
    ("web_connectivity_b64_hdr.json", "http-failure", False, True),
    ("web_connectivity_b64_incorrect.json", False, True, True),
    # Both probe and control failed to fetch: Measurement Kit said accessible, Dideban says
    # "down" (accessible false); both say not blocked.
    ("web_connectivity_no_body.json", False, True, False),
    ("web_connectivity_null.json", None, None, True),
    ("report1.json", False, True, True),
    ("report2.json", False, True, True),
    ("webconnectivity_0.5.26_IT_full.json", False, True, True),
]


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(("name", "blocking", "accessible", "agree"), OONI_WEB_CONNECTIVITY)
def test_reanalysing_ooni_measurements_gives_their_verdict(
    name: str, blocking: Any, accessible: Any, agree: bool
) -> None:
    m = _load(name)
    tk = m["test_keys"]
    assert (tk["blocking"], tk["accessible"]) == (blocking, accessible)  # the fixture's facts
    out = wa.analyze(m["input"], tk)
    assert out["blocking"] == blocking
    assert out["dns_consistency"] == tk["dns_consistency"]
    if agree:
        assert out["accessible"] == accessible
    else:
        assert out["accessible"] is False and out["x_analysis_rule"] == "http_down"


def test_reanalysing_icloud_private_relay_measurement_gives_dns() -> None:
    text = (SAMPLES / "20230706183840.201925_PK_webconnectivity_19f5e0d803cbaea7.jsonc").read_text()
    tk = json.loads("\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("//")))
    host = tk["queries"][0]["hostname"]
    out = wa.analyze(f"https://{host}/", tk)
    assert (
        (out["blocking"], out["accessible"]) == (tk["blocking"], tk["accessible"]) == ("dns", False)
    )


def test_id_blockpage_redirect_is_a_known_classic_false_negative() -> None:
    # The probe was redirected to the Indonesian blockpage, yet status and headers matched:
    # the classic rules call it accessible (fingerprints in the pipeline catch it).
    out = wa.analyze(
        "http://archive.org",
        _load("20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json")["test_keys"],
    )
    assert out["body_length_match"] is False and out["title_match"] is False
    assert out["status_code_match"] is True and out["headers_match"] is True


# --- DNS consistency -----------------------------------------------------------------------


def test_dns_same_ip_is_consistent() -> None:
    assert (
        wa.dns_consistency("a.org", ["198.51.100.1"], None, ["198.51.100.1"], None) == "consistent"
    )


def test_dns_bogon_answer_is_inconsistent() -> None:
    assert (
        wa.dns_consistency("fb.com", ["10.10.34.35"], None, ["203.0.113.5"], None) == "inconsistent"
    )


def test_dns_bogon_only_at_probe_is_inconsistent_even_with_overlap() -> None:
    got = wa.dns_consistency("x.org", ["10.10.34.35", "8.8.4.4"], None, ["8.8.4.4"], None)
    assert got == "inconsistent"


def test_dns_match_by_asn_when_known() -> None:
    asn = {"8.8.8.8": 15169, "8.8.4.4": 15169, "1.1.1.1": 13335}
    assert wa.dns_consistency("g.com", ["8.8.8.8"], None, ["8.8.4.4"], None, asn) == "consistent"
    assert wa.dns_consistency("g.com", ["1.1.1.1"], None, ["8.8.4.4"], None, asn) == "inconsistent"
    # ASN 0 means unknown: it never makes two answers consistent.
    zero = {"8.8.8.8": 0, "9.9.9.9": 0}
    assert wa.dns_consistency("g.com", ["8.8.8.8"], None, ["9.9.9.9"], None, zero) == "inconsistent"


def test_dns_nxdomain_both_is_consistent_other_failures_are_not() -> None:
    nx = "dns_nxdomain_error"
    assert wa.dns_consistency("gone.org", [], nx, [], "dns_name_error") == "consistent"
    assert wa.dns_consistency("gone.org", [], nx, [], nx) == "consistent"
    assert wa.dns_consistency("a.org", [], nx, ["8.8.8.8"], None) == "inconsistent"
    assert (
        wa.dns_consistency("a.org", [], "generic_timeout_error", ["8.8.8.8"], None)
        == "inconsistent"
    )
    assert wa.dns_consistency("a.org", ["8.8.8.8"], None, [], "dns_name_error") == "inconsistent"


def test_dns_ip_literal_is_consistent() -> None:
    assert wa.dns_consistency("8.8.8.8", [], None, [], "dns_name_error") == "consistent"


# --- HTTP comparisons ----------------------------------------------------------------------


def test_body_proportion_threshold() -> None:
    assert wa.body_proportion(100, 100) == (True, 1.0)
    assert wa.body_proportion(70, 100) == (False, 0.7)
    assert wa.body_proportion(71, 100)[0] is True
    assert wa.body_proportion(0, 100) == (None, None)


@given(st.integers(1, 10**9), st.integers(1, 10**9))
def test_body_proportion_is_symmetric_and_in_unit_interval(a: int, b: int) -> None:
    m1, p1 = wa.body_proportion(a, b)
    m2, p2 = wa.body_proportion(b, a)
    assert p1 == p2 and p1 is not None and 0 < p1 <= 1
    assert m1 == m2 == (p1 > 0.7)


@given(st.text(alphabet=st.characters(blacklist_characters="<>&"), max_size=80))
def test_title_extraction_round_trips(title: str) -> None:
    body = f"<html><head><TITLE lang='x'>{title}</title></head><body>x</body></html>"
    expected = " ".join(title.split())
    assert wa.http_title(body) == expected


@given(st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=9), max_size=8))
def test_title_first_word_is_first_long_word(words: list[str]) -> None:
    title = " ".join(words)
    first = wa.title_first_word(title)
    long_words = [w for w in words if len(w) >= 5]
    assert first == (long_words[0] if long_words else None)
    if first is not None:
        assert wa.title_match(title, first.upper() + " other") is True


def test_title_match_examples() -> None:
    assert wa.title_match("Iran International news", "Iran International - live") is True
    assert wa.title_match("Access denied", "Iran International") is False
    assert wa.title_match("a b c", "Iran International") is None
    assert wa.http_title("<title>A &amp; B</title>") == "A & B"
    assert wa.http_title("no title") == ""


def test_headers_match_uses_uncommon_names() -> None:
    assert wa.headers_match(["Date", "Server"], ["date", "server"]) is True
    assert wa.headers_match(["Date", "X-Site"], ["Server", "x-site"]) is True
    assert wa.headers_match(["Date", "Server"], ["Date", "X-Site"]) is False


def test_status_code_match() -> None:
    assert wa.status_code_match(200, 200) is True
    assert wa.status_code_match(403, 200) is False
    assert wa.status_code_match(200, 503) is None
    assert wa.status_code_match(0, 200) is None


# --- the decision on synthetic records -----------------------------------------------------

SITE = "203.0.113.10"


def _tk(
    *,
    addrs: list[str] | None = None,
    dns_failure: str | None = None,
    tcp: list[tuple[str, bool]] | None = None,
    requests: list[dict[str, Any]] | None = None,
    http_failure: str | None = None,
    control: dict[str, Any] | None = None,
    control_failure: str | None = None,
) -> dict[str, Any]:
    addrs = [SITE] if addrs is None else addrs
    answers = [{"answer_type": "A", "ipv4": a} for a in addrs]
    tcp = [(a, True) for a in addrs] if tcp is None else tcp
    return {
        "queries": [{"engine": "getaddrinfo", "failure": dns_failure, "answers": answers}],
        "dns_experiment_failure": dns_failure,
        "tcp_connect": [
            {
                "ip": ip,
                "port": 80,
                "status": {"success": ok, "failure": None if ok else "connection_refused"},
            }
            for ip, ok in tcp
        ],
        "requests": requests if requests is not None else [],
        "http_experiment_failure": http_failure,
        "control": control if control is not None else _control(),
        "control_failure": control_failure,
    }


PAGE = "<html><head><title>Radio Farda news</title></head><body>" + "x" * 900 + "</body></html>"


def _control(
    *,
    addrs: list[str] | None = None,
    dns_failure: str | None = None,
    tcp_ok: bool = True,
    http_failure: str | None = None,
) -> dict[str, Any]:
    addrs = [SITE] if addrs is None else addrs
    return {
        "dns": {"addrs": addrs, "failure": dns_failure},
        "tcp_connect": {
            f"{a}:80": {"status": tcp_ok, "failure": None if tcp_ok else "connection_refused"}
            for a in addrs
        },
        "http_request": {
            "status_code": -1 if http_failure else 200,
            "body_length": -1 if http_failure else len(PAGE),
            "title": "" if http_failure else "Radio Farda news",
            "headers": {} if http_failure else {"Content-Type": "text/html", "X-Site": "1"},
            "failure": http_failure,
        },
    }


def _response(
    code: int, body: str, headers: dict[str, str], url: str = "http://x.org/"
) -> dict[str, Any]:
    return {
        "request": {"url": url},
        "failure": None,
        "response": {"code": code, "body": body, "headers": headers, "body_is_truncated": False},
    }


def _verdict(tk: dict[str, Any], url: str = "http://x.org/") -> tuple[Any, Any, str]:
    out = wa.analyze(url, tk)
    return out["blocking"], out["accessible"], out["x_analysis_rule"]


def test_working_site_is_accessible() -> None:
    tk = _tk(requests=[_response(200, PAGE, {"Content-Type": "text/html", "X-Site": "1"})])
    assert _verdict(tk) == (False, True, "http_ok")


def test_blockpage_is_http_diff() -> None:
    block = "<html><title>403 Forbidden</title><iframe src='http://10.10.34.34'></iframe></html>"
    tk = _tk(requests=[_response(403, block, {"Content-Type": "text/html"})])
    assert _verdict(tk) == ("http-diff", False, "http_diff")


def test_dns_hijack_is_dns() -> None:
    tk = _tk(addrs=["10.10.34.35"], tcp=[("10.10.34.35", False)], http_failure="connection_refused")
    assert _verdict(tk) == ("dns", False, "dns")


def test_tcp_blocking_is_tcp_ip_but_down_everywhere_is_not() -> None:
    tk = _tk(tcp=[(SITE, False)], http_failure="connection_refused")
    assert _verdict(tk) == ("tcp_ip", False, "tcp_ip")
    down = _tk(
        tcp=[(SITE, False)],
        http_failure="connection_refused",
        control=_control(tcp_ok=False, http_failure="connection_refused"),
    )
    assert _verdict(down) == (False, False, "tcp_down")


def test_reset_is_http_failure_and_server_tls_error_is_down() -> None:
    failed = {"request": {"url": "https://x.org/"}, "failure": "connection_reset", "response": None}
    tk = _tk(requests=[failed], http_failure="connection_reset")
    assert _verdict(tk, "https://x.org/") == ("http-failure", False, "http_failure")
    bad_cert = {**failed, "failure": "ssl_invalid_certificate"}
    tk = _tk(
        requests=[bad_cert],
        http_failure="ssl_invalid_certificate",
        control=_control(http_failure="ssl_invalid_certificate"),
    )
    assert _verdict(tk, "https://x.org/") == (False, False, "http_down")


def test_nxdomain_everywhere_is_down_and_control_failure_is_null() -> None:
    nx = "dns_nxdomain_error"
    tk = _tk(
        addrs=[],
        dns_failure=nx,
        tcp=[],
        http_failure=nx,
        control=_control(addrs=[], dns_failure="dns_name_error", http_failure="dns_lookup_error"),
    )
    assert _verdict(tk) == (False, False, "nxdomain_both")
    tk = _tk(control={}, control_failure="connection_refused")
    assert _verdict(tk) == (None, None, "no_control")


def test_https_success_is_accessible_without_control() -> None:
    ok = _response(200, "x", {}, url="https://x.org/")
    tk = _tk(requests=[ok], control={}, control_failure="generic_timeout_error")
    assert _verdict(tk, "https://x.org/") == (False, True, "https_ok")


def test_base64_body_is_measured_by_its_bytes() -> None:
    import base64

    body = {"format": "base64", "data": base64.b64encode(PAGE.encode()).decode()}
    tk = _tk(
        requests=[
            {**_response(200, "", {}), "response": {"code": 200, "body": body, "headers": {}}}
        ]
    )
    out = wa.analyze("http://x.org/", tk)
    assert out["body_proportion"] == 1.0 and out["title_match"] is True


def test_connects_to_control_only_addresses_are_not_the_probes_view() -> None:
    tk = _tk(addrs=[SITE], tcp=[(SITE, False), ("203.0.113.99", True)])
    obs = wa.probe_observations("http://x.org/", tk)
    assert (obs.tcp_attempts, obs.tcp_successes) == (1, 0)
    failed_dns = _tk(addrs=[], dns_failure="generic_timeout_error", tcp=[(SITE, True)])
    assert wa.probe_observations("http://x.org/", failed_dns).tcp_attempts == 0
    literal = _tk(addrs=[], tcp=[(SITE, True)])
    assert wa.probe_observations(f"http://{SITE}/", literal).tcp_attempts == 1
