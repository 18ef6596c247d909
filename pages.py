"""The page for people at GET /: plain HTML, CSS and JavaScript from ui/, no CDN, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent / "ui"

# The page loads nothing from elsewhere and runs no inline code, so the policy can be strict:
# an injected script or a framing site gets nowhere. Images come back as data: and blob: URLs.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
def index() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers=SECURITY_HEADERS)


def mount(app: FastAPI) -> None:
    """Serve the page at / and its files under /ui/."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")
