"""Refuse oversized request bodies before they are read into memory."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from errors import human_size

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file itself
MAX_OTHER_BODY = 64 * 1024  # any other body: JSON of a login or registration is far smaller


class BodySizeLimit:
    """ASGI middleware: 413 when a body declares, or streams, more than its path allows.

    Upload paths are allowed their upload limit (and multipart framing); every other path a
    small body. A declared Content-Length over the limit is refused before a byte is read; a
    chunked body is counted as it arrives and cut off as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, uploads: dict[str, tuple[int, str]]) -> None:
        self.app = app
        self.uploads = uploads  # path: (its limit, advice when over it)

    def _limits(self, scope: Scope) -> tuple[int, int, str]:
        """(the limit to name, the body size allowed, advice) for this request's path."""
        upload = self.uploads.get(scope["path"])
        if upload is None:
            return MAX_OTHER_BODY, MAX_OTHER_BODY, "Send a smaller request body."
        limit, advice = upload
        return limit, limit + MULTIPART_OVERHEAD, advice

    def _message(self, scope: Scope, size: int) -> str:
        limit, _, advice = self._limits(scope)
        what = "Upload" if scope["path"] in self.uploads else "Request body"
        return f"{what} is {human_size(size)}; the limit is {human_size(limit)}. {advice}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _, max_body, _ = self._limits(scope)
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
                await JSONResponse({"detail": self._message(scope, size)}, 413)(
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
                    raise HTTPException(413, self._message(scope, received))
            return message

        await self.app(scope, counted_receive, send)
