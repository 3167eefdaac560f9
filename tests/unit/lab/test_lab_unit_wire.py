"""The censor's parsers: ClientHello SNI and HTTP Host, from real client bytes."""

from __future__ import annotations

import contextlib
import ssl

from hypothesis import given
from hypothesis import strategies as st

from dideban.lab.wire import NEED_MORE, NOT_THIS, client_hello_sni, http_host


def _client_hello(server_name: str | None) -> bytes:
    """The first flight of Python's own TLS client (OpenSSL), as a censor would see it."""
    ctx = ssl.create_default_context()
    if server_name is None:
        ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_sni_of_a_real_client_hello() -> None:
    hello = _client_hello("www.instagram.com")
    assert client_hello_sni(hello) == "www.instagram.com"
    assert client_hello_sni(hello + b"trailing application data") == "www.instagram.com"
    assert client_hello_sni(_client_hello("WhatsApp.com")) == "whatsapp.com"


def test_every_prefix_of_a_client_hello_asks_for_more() -> None:
    hello = _client_hello("twitter.com")
    assert all(client_hello_sni(hello[:n]) == NEED_MORE for n in range(1, len(hello)))


def test_a_client_hello_fragmented_over_two_records() -> None:
    hello = _client_hello("www.youtube.com")
    payload = hello[5:]
    cut = 40

    def record(data: bytes) -> bytes:
        return b"\x16\x03\x01" + len(data).to_bytes(2, "big") + data

    two = record(payload[:cut]) + record(payload[cut:])
    assert client_hello_sni(two) == "www.youtube.com"
    assert client_hello_sni(record(payload[:cut])) == NEED_MORE


def test_no_sni_and_not_tls() -> None:
    assert client_hello_sni(_client_hello(None)) == ""
    assert client_hello_sni(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == NOT_THIS
    assert client_hello_sni(b"\x16\x03\x01\x00\x00") == NOT_THIS  # empty record
    assert client_hello_sni(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00") == NOT_THIS  # ServerHello


def test_http_host() -> None:
    assert http_host(b"GET / HTTP/1.1\r\nHost: www.RadioFarda.com\r\n\r\n") == "www.radiofarda.com"
    assert http_host(b"GET /x HTTP/1.1\r\nUser-Agent: a\r\nhOsT:  example.org:8080 \r\n\r\n") == (
        "example.org"
    )
    assert http_host(b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n") == "2001:db8::1"
    assert http_host(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n") == ""
    assert http_host(b"GET / HTTP/1.1\r\nHost: exa") == NEED_MORE
    assert http_host(b"GE") == NEED_MORE
    assert http_host(_client_hello("example.org")) == NOT_THIS
    assert http_host(b"SSH-2.0-OpenSSH_9.2\r\n") == NOT_THIS


@given(st.binary(max_size=600))
def test_parsers_never_raise_on_arbitrary_bytes(data: bytes) -> None:
    for parse in (client_hello_sni, http_host):
        assert isinstance(parse(data), str)


@given(st.binary(min_size=1, max_size=200))
def test_corrupted_client_hellos_never_raise(noise: bytes) -> None:
    hello = bytearray(_HELLO)
    start = len(noise) % (len(hello) - 10) + 5
    hello[start : start + len(noise)] = noise
    assert isinstance(client_hello_sni(bytes(hello)), str)


_HELLO = _client_hello("www.whatsapp.com")
