"""The page at / and its files, over HTTP (the browser test drives the page itself)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

import pages

UI_FILES = sorted(path.name for path in pages.UI_DIR.iterdir())


def test_the_page_is_served_at_the_root_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == (pages.UI_DIR / "index.html").read_text()
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.head("/").status_code == 200


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_the_page_files_are_served(client: TestClient, name: str, media_type: str) -> None:
    response = client.get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (pages.UI_DIR / name).read_bytes()


def test_a_missing_page_file_is_404(client: TestClient) -> None:
    assert client.get("/ui/nothing.js").status_code == 404
    assert client.get("/ui/../main.py").status_code == 404


def test_the_page_is_not_in_the_api_documentation(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/ui") for path in paths)


@pytest.mark.parametrize("name", UI_FILES)
def test_the_page_loads_nothing_from_elsewhere(name: str) -> None:
    text = (pages.UI_DIR / name).read_text()
    # the only absolute URL allowed is the SVG namespace, which is a name, not a download
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)) - {"http://www.w3.org"}
    assert urls == set()
