"""Tests for qa.ingest.fetch: only public addresses, a total deadline, bounded decoding, safe charsets."""

from __future__ import annotations

import gzip
import http.server
import resource
import socket
import threading
import time
import zlib
from collections.abc import Iterator

import pytest
from conftest import QuietHandler

import qa.ingest.fetch
from qa.ingest.errors import SourceError
from qa.ingest.fetch import decode_text, fetch
from qa.ingest.formats import url_text


def _zeros_gzip(megabytes: int) -> bytes:
    """``megabytes`` MB of zeros, gzip-compressed (about 1,000 times smaller)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(2**20)
    return b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush()


class _Handler(QuietHandler):
    """Pages for the tests; every request is counted in ``hits``."""

    hits: list[str] = []
    redirect_to = ""

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        type(self).hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", type(self).redirect_to)
            self.end_headers()
            return
        if self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        body, headers = b"The secret of the server.", {"Content-Type": "text/plain"}
        if self.path == "/bomb":
            body, headers["Content-Encoding"] = _zeros_gzip(200), "gzip"
        elif self.path == "/bomb2":
            body, headers["Content-Encoding"] = gzip.compress(_zeros_gzip(50)), "gzip, gzip"
        elif self.path == "/br":
            body, headers["Content-Encoding"] = b"\x1b\xff\xff", "br"
        elif self.path == "/punycode":
            body = b"a" * 1_000_000 + b"-" + b"b" * 1000
            headers["Content-Type"] = "text/plain; charset=punycode"
        self.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def _serve(host: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer((host, 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def port() -> Iterator[int]:
    """A local server on 127.0.0.1 (the kind of service only the server can reach) and its port."""
    _Handler.hits = []
    server, number = _serve("127.0.0.1")
    yield number
    server.shutdown()
    server.server_close()


@pytest.fixture
def public(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A server on 127.0.0.2 that the tests treat as a public address; its port."""
    real = qa.ingest.fetch._is_public
    monkeypatch.setattr(qa.ingest.fetch, "_is_public", lambda a: a == "127.0.0.2" or real(a))
    server, number = _serve("127.0.0.2")
    yield number
    server.shutdown()
    server.server_close()


SPELLINGS = ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "2130706433", "0x7f.1", "127.1",
             "[::ffff:127.0.0.1]"]


@pytest.mark.parametrize("host", SPELLINGS)
def test_loopback_in_any_spelling_is_refused_without_the_switch(port: int, host: str) -> None:
    with pytest.raises(SourceError, match="cannot be fetched from here"):
        url_text(f"http://{host}:{port}/")
    assert _Handler.hits == []  # refused before connecting


def test_the_switch_allows_local_addresses(port: int) -> None:
    assert url_text(f"http://127.0.0.1:{port}/", allow_private=True) == "The secret of the server."


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.1", "169.254.169.254", "224.0.0.1", "240.0.0.1",
                                     "::", "fe80::1", "fc00::1", "64:ff9b::7f00:1", "2002:7f00:1::1"])
def test_private_link_local_multicast_reserved_and_wrapped_addresses_are_not_public(address: str) -> None:
    assert not qa.ingest.fetch._is_public(address)
    assert qa.ingest.fetch._is_public("93.184.216.34")


def test_a_redirect_to_loopback_is_refused(port: int, public: int) -> None:
    _Handler.redirect_to = f"http://127.0.0.1:{port}/secret"
    with pytest.raises(SourceError, match="cannot be fetched from here"):
        url_text(f"http://127.0.0.2:{public}/redirect")
    assert _Handler.hits == ["/redirect"]  # the loopback page was never asked for


def test_a_closed_port_and_a_refused_address_give_the_same_message(port: int, public: int) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.2", 0))
        closed = s.getsockname()[1]
    messages = []
    for url in (f"http://127.0.0.2:{closed}/", f"http://127.0.0.1:{port}/", "http://no-such-host.invalid/"):
        with pytest.raises(SourceError) as e:
            fetch(url)
        messages.append(str(e.value).replace(url.rstrip("/"), "URL").replace("/", ""))
    assert len(set(messages)) == 1, messages


def test_a_name_that_resolves_differently_the_second_time_cannot_get_through(
        port: int, public: int, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo
    answers = iter(["127.0.0.2"] + ["127.0.0.1"] * 10)  # public first, then loopback

    def rebinding(host: str, *args: object, **kwargs: object) -> list:
        if host == "rebind.test":
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    text = url_text(f"http://rebind.test:{public}/")
    assert text == "The secret of the server." and all(h == "/" for h in _Handler.hits)
    # the connection went to the checked address (127.0.0.2): a second lookup would have said 127.0.0.1,
    # where nothing listens on that port, and the fetch would have failed
    assert next(answers) == "127.0.0.1"


def test_a_slow_drip_is_stopped_by_the_total_deadline(port: int) -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match="took longer than 2 s"):
        fetch(f"http://127.0.0.1:{port}/drip", allow_private=True, deadline=2, min_rate=0.001)
    assert time.monotonic() - start < 4


def test_a_slow_drip_is_stopped_by_the_minimum_rate(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qa.ingest.fetch, "RATE_GRACE", 1.0)
    start = time.monotonic()
    with pytest.raises(SourceError, match="too slowly"):
        fetch(f"http://127.0.0.1:{port}/drip", allow_private=True, deadline=30)
    assert time.monotonic() - start < 4


@pytest.mark.parametrize(("path", "why"), [("/bomb", "larger than 20 MB"), ("/bomb2", "does not read"),
                                           ("/br", "does not read")])
def test_compression_bombs_are_bounded(port: int, path: str, why: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SourceError, match=why):
        fetch(f"http://127.0.0.1:{port}{path}", allow_private=True)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert grown < 300 * 2**20  # the 200 MB and 50 MB bombs never inflate


def test_a_server_chosen_charset_outside_the_allow_list_is_read_as_utf8_fast(port: int) -> None:
    start = time.monotonic()
    text = url_text(f"http://127.0.0.1:{port}/punycode", allow_private=True)
    assert len(text) > 1_000_000 and time.monotonic() - start < 5  # punycode: 20 s, growing as the square
    assert decode_text("é".encode("latin-1"), "text/html; charset=ISO-8859-1") == "é"
    assert decode_text("é".encode("cp1252"), "text/plain; charset=windows-1252") == "é"


def test_only_http_and_https_are_fetched() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/", "gopher://x/"):
        with pytest.raises(SourceError, match="not a web address"):
            fetch(url)
