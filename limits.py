"""Refuse oversized request bodies before they are read into memory."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from errors import human_size

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file itself


class BodySizeLimit:
    """ASGI middleware: 413 when a body declares, or streams, more than the upload limit allows.

    A declared Content-Length over the limit is refused before a byte is read; a chunked body
    is counted as it arrives and cut off as soon as it passes the limit.
    """

    def __init__(
        self, app: ASGIApp, max_upload_bytes: int, larger: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.larger = larger or {}  # paths allowed more (batches), and their limits

    def _limit(self, scope: Scope) -> int:
        return self.larger.get(scope["path"], self.max_upload_bytes)

    def _message(self, scope: Scope, size: int, limit: int) -> str:
        many = scope["path"] in self.larger
        advice = "Send fewer or smaller images." if many else "Send a smaller image."
        return f"Upload is {human_size(size)}; the limit is {human_size(limit)}. {advice}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        max_body = limit + MULTIPART_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                await JSONResponse({"detail": "Invalid Content-Length header."}, 400)(
                    scope, receive, send
                )
                return
            if size > max_body:
                await JSONResponse({"detail": self._message(scope, size, limit)}, 413)(
                    scope, receive, send
                )
                return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise HTTPException(413, self._message(scope, received, limit))
            return message

        await self.app(scope, counted_receive, send)
