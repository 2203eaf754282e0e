"""Fetch a web page for a stranger safely: public addresses only, a total deadline, bounded decoding.

Behind a public link anyone may ask the server to fetch an address, so every hop is checked:
the host name is resolved once, every address it gives must be global (no loopback, private,
link-local, reserved, multicast, or IPv4 in IPv6 wrapping), and the connection goes to the address that
was checked (TLS still verifies the host name). Redirects are followed by hand, each one checked again.
Local use (``qa index --allow-private-urls``) passes ``allow_private=True``. Every failure to connect,
and every refused address, gives the same message, so the server cannot be used to probe ports.
"""

from __future__ import annotations

import codecs
import ipaddress
import socket
import time
import zlib
from typing import Any
from urllib.parse import urljoin, urlsplit

from qa.ingest.errors import SourceError, printable

#: The largest body read, in bytes, after decoding.
MAX_BYTES = 20 * 1024 * 1024
#: Seconds a whole download may take, redirects included.
DEADLINE = 20.0
#: Seconds to wait for a connection or for the next bytes.
TIMEOUT = 10.0
#: Bytes per second a download must average once ``RATE_GRACE`` seconds have passed (a slow drip stops).
MIN_RATE = 2_000
RATE_GRACE = 5.0
#: Redirects followed at most.
MAX_REDIRECTS = 5
#: Charsets a server may choose (codec names as ``codecs.lookup`` spells them); any other is read as
#: UTF-8. Each decodes in linear time (``punycode`` and friends do not).
CHARSETS = frozenset({
    "utf-8", "utf-8-sig", "ascii", "utf-16", "utf-16-le", "utf-16-be", "cp1250", "cp1251",
    "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "koi8-r", "koi8-u", "shift_jis",
    "cp932", "euc_jp", "euc_kr", "cp949", "gbk", "gb2312", "gb18030", "big5",
    *(f"iso8859-{n}" for n in range(1, 17)),
})
_UNREACHABLE = "cannot be fetched from here; check the address, or save the page as a file and add that"
_HEADERS = [(b"User-Agent", b"qa (offline document reader)"), (b"Accept-Encoding", b"identity"),
            (b"Accept", b"text/html, text/plain, application/pdf;q=0.9, */*;q=0.5")]


class _Refused(Exception):
    """An address that may not be fetched (raised inside the connection, turned into SourceError)."""


def _is_public(address: str) -> bool:
    """True when ``address`` (an IP) is global unicast, including the IPv4 inside IPv6 wrappings."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return _is_public(str(inner))
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: the IPv4 address in its last 32 bits
            return _is_public(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback)


def public_address(host: str, port: int) -> str:
    """The address to connect to for ``host``: every address it resolves to must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise _Refused(host) from e
    addresses = [info[4][0] for info in infos]
    if not addresses or not all(_is_public(a) for a in addresses):
        raise _Refused(host)
    return addresses[0]


def _pool(deadline: float, allow_private: bool) -> Any:
    """An httpcore pool whose connections go to checked addresses and end at ``deadline``."""
    import ssl

    import httpcore

    class Stream(httpcore.NetworkStream):
        """A connection whose reads and writes never wait past the deadline."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def _left(self, timeout: float | None) -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ReadTimeout("deadline")
            return left if timeout is None else min(timeout, left)

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self.inner.read(max_bytes, self._left(timeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self.inner.write(buffer, self._left(timeout))

        def close(self) -> None:
            self.inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            return Stream(self.inner.start_tls(ssl_context, server_hostname, self._left(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self.inner.get_extra_info(info)

    class Backend(httpcore.SyncBackend):
        """Connects to the checked address of a host, never to a second lookup's answer."""

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None, socket_options: Any = None) -> Any:
            address = host if allow_private else public_address(host, port)
            left = max(0.001, deadline - time.monotonic())
            return Stream(super().connect_tcp(address, port, min(timeout or left, left), local_address,
                                              socket_options))

    return httpcore.ConnectionPool(ssl_context=ssl.create_default_context(), network_backend=Backend(),
                                   max_connections=1)


class _Decoder:
    """Undoes a response's Content-Encoding step by step, never past ``limit`` bytes of output."""

    def __init__(self, encoding: str, *, limit: int, url: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise SourceError(f"{url}: the server compressed the page as {printable(encoding, 40)!r}, "
                              f"which qa does not read; save the page as a file and add that")
        self.zlib = zlib.decompressobj(47 if codings and codings[0] != "deflate" else zlib.MAX_WBITS) \
            if codings else None
        self.deflate = bool(codings) and codings[0] == "deflate"
        self.limit, self.url, self.size = limit, url, 0

    def __call__(self, data: bytes) -> bytes:
        """The next decoded bytes; SourceError once they pass the limit."""
        room = self.limit - self.size
        if self.zlib is None:
            out = data[:room + 1]
        else:
            try:
                out = self.zlib.decompress(data, room + 1)
            except zlib.error:
                if not self.deflate or self.size:
                    raise SourceError(f"{self.url}: the server sent damaged compressed data") from None
                self.zlib, self.deflate = zlib.decompressobj(-zlib.MAX_WBITS), False  # raw deflate
                return self(data)
        self.size += len(out)
        if self.size > self.limit:
            raise SourceError(f"{self.url}: larger than {self.limit // 2**20} MB; save the part you need "
                              f"as a file")
        return out


def fetch(url: str, *, allow_private: bool = False, deadline: float | None = None,
          timeout: float | None = None, min_rate: float | None = None,
          max_bytes: int | None = None) -> tuple[bytes, str]:
    """The body and content type of a web address, within the limits; SourceError says why not.

    Limits left out are the module's constants (``DEADLINE``, ``TIMEOUT``, ``MIN_RATE``, ``MAX_BYTES``).
    """
    import httpcore

    deadline = DEADLINE if deadline is None else deadline
    timeout = TIMEOUT if timeout is None else timeout
    min_rate = MIN_RATE if min_rate is None else min_rate
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    for label, value in (("deadline", deadline), ("timeout", timeout), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{label} must be a positive number, got {value!r}")
    shown = printable(url)
    start = time.monotonic()
    end = start + deadline
    with _pool(end, allow_private) as pool:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SourceError(f"{shown}: not a web address; give one starting with https://")
            try:
                with pool.stream("GET", url, headers=_HEADERS, extensions={"timeout": {
                        "connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}) as response:
                    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
                    if 300 <= response.status < 400 and "location" in headers:
                        url = urljoin(url, headers["location"].strip())
                        continue
                    if response.status >= 400:
                        reason = response.extensions.get("reason_phrase", b"").decode("latin-1")
                        raise SourceError(f"{shown}: the server answered {response.status} "
                                          f"{printable(reason, 40)}; check the address")
                    decode = _Decoder(headers.get("content-encoding", ""), limit=max_bytes, url=shown)
                    body = bytearray()
                    received = 0
                    for chunk in response.iter_stream():
                        received += len(chunk)
                        body += decode(chunk)
                        elapsed = time.monotonic() - start
                        if elapsed > deadline:
                            raise httpcore.ReadTimeout("deadline")
                        if elapsed > RATE_GRACE and received < min_rate * elapsed:
                            raise SourceError(f"{shown}: the server sends too slowly (under "
                                              f"{min_rate / 1000:g} kB/s); try again later")
                    return bytes(body), headers.get("content-type", "")
            except _Refused:
                raise SourceError(f"{shown}: {_UNREACHABLE}") from None
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                raise SourceError(f"{shown}: {_UNREACHABLE}") from e
            except httpcore.TimeoutException as e:
                if time.monotonic() - start >= deadline - 0.05:
                    raise SourceError(f"{shown}: took longer than {deadline:g} s to download; "
                                      f"try again later") from e
                raise SourceError(f"{shown}: no answer within {timeout:g} s; try again later") from e
            except httpcore.UnsupportedProtocol as e:
                raise SourceError(f"{shown}: not a web address; give one starting with https://") from e
            except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as e:
                raise SourceError(f"{shown}: {_UNREACHABLE}") from e
    raise SourceError(f"{shown}: more than {MAX_REDIRECTS} redirects; give the final address")


def decode_text(data: bytes, content_type: str) -> str:
    """A body as text in the charset the server names, if it is one of ``CHARSETS``; else UTF-8."""
    import re

    found = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    charset = "utf-8"
    if found:
        try:
            name = codecs.lookup(found.group(1)).name
        except LookupError:
            name = "utf-8"
        charset = name if name in CHARSETS else "utf-8"
    return data.decode(charset, errors="replace")
