"""Pure redirect resolution and URL parsing, without sockets."""

from __future__ import annotations

import pytest

from dideban.model import failures
from dideban.netx import NetxFailure, next_location, parse_url
from dideban.netx.http import redirect_chain


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_codes_follow_location(status: int) -> None:
    assert next_location("http://a.example/x", status, [("Location", "https://b.example/y")]) == (
        "https://b.example/y"
    )


def test_relative_location_resolves_against_the_url() -> None:
    url = "https://a.example/dir/page?q=1"
    assert next_location(url, 302, [("location", "other")]) == "https://a.example/dir/other"
    assert next_location(url, 302, [("Location", "/root")]) == "https://a.example/root"
    assert next_location(url, 302, [("Location", "//c.example/z")]) == "https://c.example/z"


def test_fragment_is_dropped_and_non_redirects_stop() -> None:
    assert next_location("http://a.example/", 301, [("Location", "/p#frag")]) == (
        "http://a.example/p"
    )
    assert next_location("http://a.example/", 200, [("Location", "/p")]) is None
    assert next_location("http://a.example/", 304, [("Location", "/p")]) is None
    assert next_location("http://a.example/", 302, []) is None


def test_location_that_is_not_http_is_a_failure() -> None:
    with pytest.raises(NetxFailure) as info:
        next_location("http://a.example/", 302, [("Location", "ftp://x.example/")])
    assert info.value.failure == failures.HTTP_INVALID_REDIRECT_LOCATION_HOST


def test_chain_follows_up_to_ten_redirects() -> None:
    responses = {f"http://a.example/{i}": (302, [("Location", f"/{i + 1}")]) for i in range(10)}
    responses["http://a.example/10"] = (200, [])
    chain = redirect_chain("http://a.example/0", responses)
    assert chain[0] == "http://a.example/0" and chain[-1] == "http://a.example/10"
    assert len(chain) == 11


def test_chain_fails_after_ten_redirects() -> None:
    loop = {"http://a.example/": (301, [("Location", "http://a.example/")])}
    with pytest.raises(NetxFailure) as info:
        redirect_chain("http://a.example/", loop)
    assert info.value.failure == failures.HTTP_TOO_MANY_REDIRECTS


def test_parse_url() -> None:
    p = parse_url("https://Example.COM:8443/a/b?c=d#e")
    assert (p.scheme, p.host, p.port, p.target) == ("https", "example.com", 8443, "/a/b?c=d")
    assert p.host_header == "example.com:8443"
    assert parse_url("http://x.example").target == "/"
    assert parse_url("http://[::1]/").host_header == "[::1]"
    for bad in ("ftp://x/", "http:///nohost", "not a url"):
        with pytest.raises(ValueError):
            parse_url(bad)
