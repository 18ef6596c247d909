"""HTTP/1.1 with the timeouts uvicorn lacks: the image's server runs with
`uvicorn main:app --loop uvloop --http timeouts:TimedHttpToolsProtocol`, and gunicorn with
`-k timeouts.UvicornWorker` (the same). `TimedH11Protocol` is the same for uvicorn's pure-Python
parser, where httptools cannot be installed.

uvicorn times out a connection only while it is idle between requests (--timeout-keep-alive).
A client that connects and sends nothing, or sends part of its headers, or part of a body and
then stalls, keeps its socket (and a slot of the server's memory) for as long as it likes.
This protocol closes such connections:

- HEADER_TIMEOUT (default 10 s): from the first moment a request is awaited (the connection
  opened, or a keep-alive connection's next request began) to its last header line. Trickling
  bytes does not extend it.
- BODY_TIMEOUT (default 30 s): longest silence while a request body is unfinished. A slow
  upload that keeps sending is never cut off.

Both are read from the environment at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os

import h11
import uvicorn_worker
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT = float(os.environ.get("HEADER_TIMEOUT", "10"))
BODY_TIMEOUT = float(os.environ.get("BODY_TIMEOUT", "30"))


class _Deadlines(asyncio.Protocol):
    """The timer both protocols share: one deadline at a time, for the phase the request is in,
    and the hooks both take it from. (Mixed in before uvicorn's protocol, whose hooks its
    `super()` calls reach.)"""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: FlowControl
    client: tuple[str, int] | None
    _timer: asyncio.TimerHandle | None = None
    _awaiting_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]  # uvicorn's, next in the MRO
        self._request_in()  # uvicorn's hook armed its keep-alive timer for the idle time

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._awaiting_headers = True
        self._start_timer(HEADER_TIMEOUT, "request headers not received in time")

    def _await_body(self) -> None:
        self._awaiting_headers = False
        self._start_timer(BODY_TIMEOUT, "request body stalled")  # restarted by every byte

    def _request_in(self) -> None:
        """The whole request is in: the application's turn."""
        self._awaiting_headers = False
        self._stop_timer()

    def _start_timer(self, seconds: float, why: str) -> None:
        self._stop_timer()
        self._timer = self.loop.call_later(seconds, self._expire, why)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, why: str) -> None:
        self._timer = None
        if self.flow.read_paused:  # it is the application that is not reading: not the client
            self._start_timer(BODY_TIMEOUT, why)
        elif not self.transport.is_closing():
            log.info("closing connection from %s: %s", self.client, why)
            self.transport.close()


class TimedH11Protocol(_Deadlines, H11Protocol):
    """uvicorn's h11 protocol (pure Python) with the deadlines."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def _follow(self) -> None:
        """After bytes arrived: which phase the request is in, and its timer."""
        if self.transport.is_closing():
            return
        theirs = self.conn.their_state
        if theirs is h11.IDLE and self.conn.our_state is h11.IDLE:
            if not self._awaiting_headers:  # a new request began on a kept-alive connection
                self._await_headers()
        elif theirs is h11.SEND_BODY:
            self._await_body()
        else:
            self._request_in()


class TimedHttpToolsProtocol(_Deadlines, HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C) with the deadlines, driven by the parser's
    callbacks: a request begins, its headers are complete, a piece of body, its end."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_headers:  # a new request began on a kept-alive connection
            self._await_headers()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._await_body()  # the end of the message, at once for a body-less one

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._await_body()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._request_in()


class UvicornWorker(uvicorn_worker.UvicornWorker):
    """gunicorn's uvicorn worker, serving with these timeouts."""

    CONFIG_KWARGS = {  # noqa: RUF012
        **uvicorn_worker.UvicornWorker.CONFIG_KWARGS,
        "loop": "uvloop",
        "http": TimedHttpToolsProtocol,
    }
