"""What the server refuses before doing any work: oversized request bodies and rapid password guessing."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

#: The largest request body accepted. A question is at most 1,000 characters; what the chat window posts
#: with it (the conversation shown so far, as HTML) stays far below this for hundreds of turns.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
#: The largest upload request (Gradio's upload route; each file is also held to the app's file limit).
MAX_UPLOAD_REQUEST_BYTES = 100 * 1024 * 1024
#: Routes (path endings) with their own body limit.
UPLOAD_ROUTE = "/gradio_api/upload"
#: Seconds each wrong login waits, one at a time across all clients: guessing gets one try a second,
#: while a right password is checked at once.
FAILED_LOGIN_DELAY = 1.0

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``max_bytes`` without reading the rest of it."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, max_bytes: int = MAX_REQUEST_BYTES,
                 routes: dict[str, int] | None = None) -> None:
        for limit in (max_bytes, *(routes or {}).values()):
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ValueError(f"body limits must be positive ints, got {limit!r}")
        self.app = app
        self.max_bytes = max_bytes
        #: Path endings with their own limit (the upload route takes documents).
        self.routes = dict(routes if routes is not None else {UPLOAD_ROUTE: MAX_UPLOAD_REQUEST_BYTES})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on when its body fits; else refuse it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = next((n for end, n in self.routes.items() if path.endswith(end)), self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "Bad Content-Length header.")
            elif int(declared) > limit:
                await _refuse(send, 413, self._too_large(int(declared), limit))
            else:  # the server stops the body at the declared length
                await self.app(scope, receive, send)
            return
        # no declared length (chunked): read up to the limit before the app sees anything
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(send, 413, self._too_large(size, limit))
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _too_large(size: int, limit: int) -> str:
        return (f"Request too large ({size:,} bytes; the limit is {limit:,}). "
                "Questions are at most 1,000 characters; documents at most 20 MB.")


async def _refuse(send: Send, status: int, text: str) -> None:
    """Send a plain-text error response."""
    body = text.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def slow_login(user: str, password: str, *,
               delay: float = FAILED_LOGIN_DELAY) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio's ``auth`` callable for one user: a wrong login waits ``delay`` seconds, one at a time.

    It is a coroutine function, which Gradio awaits inside its login route, so the waiting never blocks
    the server.
    """
    if not user or not password:
        raise ValueError("user and password must both be non-empty")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")
    lock: list[asyncio.Lock] = []  # made on first use, inside the server's event loop

    async def check(given_user: str, given_password: str) -> bool:
        ok = hmac.compare_digest(str(given_user).encode(), user.encode()) & \
            hmac.compare_digest(str(given_password).encode(), password.encode())
        if ok:
            return True
        if not lock:
            lock.append(asyncio.Lock())
        async with lock[0]:
            await asyncio.sleep(delay)
        return False

    return check
