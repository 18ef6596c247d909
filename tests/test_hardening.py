"""Input a hostile or careless client sends: each class that once gave a 500 or a wrong
answer, with its exact answer now (found by schemathesis and Pillow's corpus of odd images)."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import png
from errors import NoDigitFound

FORMATS = "PNG, JPEG, GIF, BMP, WebP, TIFF, AVIF or HEIC."
GOOD = {"email": "ada@example.com", "password": "correct horse"}


def register(client: TestClient, **body: Any) -> Any:
    return client.post("/api/register/", json={"username": "ada", **GOOD, **body})


@pytest.fixture
def token(client: TestClient) -> str:
    return str(register(client).json()["token"])


def test_a_username_with_a_trailing_newline_is_refused(client: TestClient) -> None:
    assert register(client).status_code == 201
    answer = register(client, username="ada\n")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"] == (
        "Username may contain only letters, digits and @ . + - _"
    )


@pytest.mark.parametrize("field", ["username", "email", "password"])
def test_lone_surrogates_are_refused_with_422(client: TestClient, field: str) -> None:
    body = {"username": "ada", **GOOD, field: "ad\ud800a@example.com"}
    raw = json_with_surrogate(body)
    answer = client.post(
        "/api/register/", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["msg"] == "Text must be valid Unicode (it holds a lone surrogate)."
    assert error["input"] == "ad\\ud800a@example.com"  # echoed, escaped
    login = client.post(
        "/api/login/",
        content=json_with_surrogate({"username": "ad\ud800a", "password": "x"}),
        headers={"content-type": "application/json"},
    )
    assert login.status_code == 422


def json_with_surrogate(body: dict[str, str]) -> bytes:
    import json

    return json.dumps(body).encode()  # ensure_ascii: the surrogate travels as \ud800


def test_nan_in_the_json_is_refused_with_422(client: TestClient) -> None:
    answer = client.post(
        "/api/register/",
        content=b'{"username": NaN, "email": "ada@example.com", "password": "correct horse"}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert (error["loc"], error["msg"], error["input"]) == (
        ["body", "username"],
        "Input should be a valid string",
        "nan",
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/history/9223372036854775808/",
        "/api/history/2147483648/image/",
        "/api/history/?offset=9223372036854775808",
        "/api/history/?page=9223372036854775807",
        "/api/history/?page=21474838&page_size=100",
    ],
)
def test_integers_too_large_to_store_are_refused_with_422(
    client: TestClient, token: str, path: str
) -> None:
    answer = client.get(path, headers={"Authorization": f"Token {token}"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "less_than_equal"


def test_the_last_page_that_can_exist_is_empty_not_an_error(client: TestClient, token: str) -> None:
    answer = client.get(
        "/api/history/?page=21474837&page_size=100", headers={"Authorization": f"Token {token}"}
    )
    assert (answer.status_code, answer.json()["results"]) == (200, [])


def test_date_joined_carries_its_timezone(client: TestClient, token: str) -> None:
    profile = client.get("/api/profile/", headers={"Authorization": f"Token {token}"}).json()
    assert profile["date_joined"].endswith(("Z", "+00:00"))


def test_options_on_a_history_item_names_every_method_it_has(
    client: TestClient, token: str
) -> None:
    answer = client.options("/api/history/1/", headers={"Authorization": f"Token {token}"})
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET"


def test_a_large_json_body_is_told_about_the_body_not_an_image(client: TestClient) -> None:
    answer = client.post(
        "/api/register/",
        content=b'{"username": "' + b"a" * 10_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["detail"] == (
        "Request body is 10 MB; the limit is 65.5 kB. Send a smaller request body."
    )


def test_a_body_that_is_not_json_is_a_400_that_says_so(client: TestClient) -> None:
    answer = client.post(
        "/api/register/", content=b"\xd2\x96s\xff", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == (
        "The request body cannot be parsed: send JSON in UTF-8, or a multipart/form-data upload."
    )


def icns_claiming(width: int) -> bytes:
    """An ICNS file whose one entry claims a huge icon: the kind that once took 16 GB."""
    entry = b"ic10" + struct.pack(">I", 8 + 16) + b"\x89PNG\r\n\x1a\n" + b"\0" * 8
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


def dds_unknown_variant() -> bytes:
    """A DDS header with a pixel format Pillow has no decoder for."""
    header = bytearray(128)
    header[0:4] = b"DDS "
    struct.pack_into("<7I", header, 4, 124, 0x1007, 64, 64, 0, 0, 0)
    struct.pack_into("<2I4s", header, 76, 32, 0x4, b"ZZZZ")  # FOURCC nobody knows
    return bytes(header) + b"\0" * 4096


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            icns_claiming(1 << 15),
            f"ICNS images are not supported; send {FORMATS}",
        ),
        (dds_unknown_variant(), "File provided is not an image."),
    ],
)
def test_formats_not_served_are_refused_by_content(
    client: TestClient, data: bytes, detail: str
) -> None:
    answer = client.post("/predict/mnist", files={"file": ("digit.png", data)})
    assert (answer.status_code, answer.json()) == (400, {"detail": detail})


def test_a_bad_file_in_a_batch_fails_alone(client: TestClient, holdout: Any) -> None:
    good = png(holdout.images[1])
    files = [("files", ("a.png", good)), ("files", ("b.dds", dds_unknown_variant())),
             ("files", ("c.icns", icns_claiming(1 << 15))), ("files", ("d.png", good))]  # fmt: skip
    answer = client.post("/predict/mnist/batch", files=files)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["prediction"] for r in results] == ["3", None, None, "3"]
    assert [r["error"]["status"] for r in results[1:3]] == [400, 400]


def test_a_variant_of_a_served_format_that_no_decoder_reads_is_a_400_naming_it(
    client: TestClient,
) -> None:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="BMP")
    bmp = bytearray(buffer.getvalue())
    struct.pack_into("<I", bmp, 30, 99)  # the header's compression method: none has number 99
    answer = client.post("/predict/mnist", files={"file": bytes(bmp)})
    assert (answer.status_code, answer.json()) == (
        400,
        {"detail": "The image cannot be read (Unsupported BMP compression (99))."},
    )


def test_a_truncated_tiff_is_a_400(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(buffer, format="TIFF")
    answer = client.post("/predict/mnist", files={"file": buffer.getvalue()[:-2000]})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("The image is truncated or corrupt")


def phone_photo(fmt: str, digit: np.ndarray) -> bytes:
    """A held-out digit drawn large in dark ink on a white page, saved as a phone saves it."""
    page = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    page.convert("RGB").save(buffer, format=fmt, quality=80)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "name"), [("HEIF", "HEIC"), ("AVIF", "AVIF")])
def test_a_heic_or_avif_is_read_and_a_damaged_one_is_a_400_naming_it(
    client: TestClient, holdout: Any, fmt: str, name: str
) -> None:
    data = phone_photo(fmt, holdout.images[1])
    answer = client.post("/predict/mnist", files={"file": ("IMG_0001.heic", data)})
    assert (answer.status_code, answer.json()["prediction"]) == (200, "3")
    # cut short in its header (not known for an image by its first bytes alone), or in its
    # picture (its decoder's own words, on one line)
    answer = client.post("/predict/mnist", files={"file": data[:40]})
    assert (answer.status_code, answer.json()) == (
        400,
        {"detail": f"The image is truncated or corrupt (its {name} container cannot be read)."},
    )
    answer = client.post("/predict/mnist", files={"file": data[: len(data) // 2]})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("The image is truncated or corrupt (") and "\n" not in detail


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_heic_or_avif_claiming_too_many_pixels_is_refused_before_decoding(
    client: TestClient, holdout: Any, fmt: str
) -> None:
    data = bytearray(phone_photo(fmt, holdout.images[1]))
    size = data.find(b"ispe") + 8  # the picture's size: after the box's version and flags
    struct.pack_into(">II", data, size, 9000, 9000)
    answer = client.post("/predict/mnist", files={"file": bytes(data)})
    assert (answer.status_code, answer.json()) == (
        413,
        {"detail": "Image is 9000x9000 pixels (81.0 megapixels); the limit is 50 megapixels."},
    )


def test_file_names_are_returned_as_sent_or_with_replacement_characters(
    client: TestClient, holdout: Any
) -> None:
    good = png(holdout.images[1])
    boundary = b"b0undary"
    names = ["café 7.png".encode(), "café 7.png".encode("cp1252"), "数字.png".encode()]
    body = b"".join(
        b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"files\"; filename=\""
        + name + b"\"\r\nContent-Type: image/png\r\n\r\n" + good + b"\r\n"
        for name in names
    ) + b"--" + boundary + b"--\r\n"  # fmt: skip
    answer = client.post(
        "/predict/mnist/batch",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b0undary"},
    )
    assert answer.status_code == 200
    assert [r["filename"] for r in answer.json()["results"]] == [
        "café 7.png",
        "caf\ufffd 7.png",  # not UTF-8: the byte that does not decode is shown as such
        "数字.png",
    ]


def test_a_refused_upload_holds_on_to_nothing() -> None:
    """Errors travel without their tracebacks: those held the decoded image in a reference
    cycle that only the cyclic collector freed, late (a prediction process grew by ~50 MB per
    pass through Pillow's corpus of broken images)."""
    import gc
    import weakref

    import preprocessing

    buffer = io.BytesIO()
    Image.new("L", (600, 600), 255).save(buffer, format="PNG")  # decodes, but holds no digit
    gc.collect()
    gc.disable()
    try:
        opened: list[weakref.ref[Image.Image]] = []
        real_open = Image.open

        def watched(*args: Any, **kwargs: Any) -> Image.Image:
            image = real_open(*args, **kwargs)
            opened.append(weakref.ref(image))
            return image

        Image.open = watched  # type: ignore[assignment]
        try:
            (error,) = preprocessing.prepare_many([buffer.getvalue()], 50_000_000)
        finally:
            Image.open = real_open
        assert isinstance(error, NoDigitFound)
        assert (error.__traceback__, error.__cause__, error.__context__) == (None, None, None)
        assert opened and all(ref() is None for ref in opened)  # freed without the collector
    finally:
        gc.enable()
