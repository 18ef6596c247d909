"""The page in a real browser: Debian's Chromium, driven by Selenium through chromium-driver,
against the app served by uvicorn on 127.0.0.1 with a real model and a real SQLite file.

Digits are drawn on the canvas with strokes traced from held-out MNIST digits (tracing.py), by
mouse, pen and touch. Screenshots at desktop and phone widths go to test-artifacts/.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import dataset
import model
import preprocessing  # noqa: F401  (registers HEIC with Pillow, as in the service)
import styles
import tracing
from conftest import ROOT, SAMPLE_DIR

WebDriver = webdriver.Chrome  # what the tests drive: Chromium, through chromium-driver

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = (1280, 900)
PHONE = (360, 740)
POINTERS = [interaction.POINTER_MOUSE, interaction.POINTER_PEN, interaction.POINTER_TOUCH]

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("DIGITS_REQUIRE_BROWSER"):
        raise RuntimeError("The browser test needs Debian's chromium and chromium-driver.")
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """uvicorn serving the app, on a copy of the session's model and a fresh database."""
    home = tmp_path_factory.mktemp("served")
    (home / "models").mkdir()
    shutil.copy(model_file, home / "models" / "model.joblib")
    shutil.copy(
        model.run_note_path(model_file), model.run_note_path(home / "models" / "model.joblib")
    )
    port = free_port()
    env = {
        **os.environ,
        "MNIST_DATA_DIR": str(SAMPLE_DIR),
        "DATA_DIR": str(home / "data"),
        "MODEL_PATH": str(home / "models" / "model.joblib"),
        "DATABASE_URL": f"sqlite:///{home / 'digits.db'}",
    }
    command = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1"]
    log = home / "uvicorn.log"
    with log.open("w") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=ROOT, env=env, stdout=log_file, stderr=log_file
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not get ready: {log.read_text()}")
            time.sleep(0.1)
        yield {"url": base, "database": home / "digits.db"}
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, server: dict[str, Any]) -> Iterator[WebDriver]:
    """The page freshly loaded at desktop size, logged out; no console errors by the end."""
    browser.set_window_size(*DESKTOP)
    browser.get(server["url"] + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(server["url"] + "/")
    browser.get_log("browser")  # start counting from here
    yield browser
    problems = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] in ("SEVERE", "WARNING")
        # a 4xx the test asked for (blank canvas, wrong password) is logged by the browser
        # itself; anything from the page's own code is a failure
        and not (entry["source"] == "network" and "status of 4" in entry["message"])
    ]
    assert problems == []


def screenshot(driver: WebDriver, name: str) -> None:
    """The whole page, not only the window, as test-artifacts/<name>.png."""
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000


def wait(driver: WebDriver, condition: Any, timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def visible(driver: WebDriver, element_id: str) -> WebElement:
    return wait(driver, lambda d: (e := d.find_element(By.ID, element_id)).is_displayed() and e)


def draw(driver: WebDriver, strokes: list[list[tuple[float, float]]], pointer: str) -> None:
    """Draw strokes given in MNIST pixels (28 to the pad's side) with one pointer."""
    draw_number(driver, [strokes], pointer)


def read_answer(driver: WebDriver) -> str:
    """The digit the page shows once its answer (or error) has arrived."""
    wait(
        driver,
        # not busy: no stroke under way, no read due, no request out
        lambda d: (
            d.find_element(By.ID, "answer").get_attribute("aria-busy") == "false"
            and (
                d.find_element(By.ID, "result").is_displayed()
                or d.find_element(By.ID, "error").is_displayed()
            )
        ),
    )
    if driver.find_element(By.ID, "error").is_displayed():
        return "error: " + driver.find_element(By.ID, "error").text
    return str(driver.find_element(By.ID, "digit").text)


def clear(driver: WebDriver) -> None:
    driver.find_element(By.ID, "clear").click()
    visible(driver, "idle")


@pytest.fixture(scope="module")
def digits(server: dict[str, Any]) -> dict[int, np.ndarray]:
    """One held-out digit of each kind: the first one the served model reads right as an MNIST
    image, so what the test measures is the page's drawing path, not the small test model."""
    holdout = dataset.split(dataset.read_folder(SAMPLE_DIR))[1]
    chosen: dict[int, np.ndarray] = {}
    for image, label in zip(holdout.images, holdout.labels, strict=True):
        if int(label) in chosen:
            continue
        upload = styles.mnist_png(image, np.random.default_rng(0))
        answer = httpx.post(server["url"] + "/predict/mnist", files={"file": upload}).json()
        if answer["prediction"] == str(label):
            chosen[int(label)] = image
    assert sorted(chosen) == list(range(10))
    return chosen


def test_digits_drawn_on_the_canvas_are_read(
    page: WebDriver, digits: dict[int, np.ndarray]
) -> None:
    answers = {}
    for digit in range(10):
        clear(page)
        # no button: the page reads the drawing by itself after a pause
        draw(page, tracing.trace(digits[digit]), POINTERS[digit % 3])
        answers[digit] = read_answer(page)
        # what the model saw is shown, as a decoded 28x28 image
        assert page.execute_script(
            "const img = document.getElementById('processed');"
            "return img.complete && [img.naturalWidth, img.naturalHeight];"
        ) == [28, 28]
    right = [digit for digit, answer in answers.items() if answer == str(digit)]
    print(f"drawn digits read right: {len(right)} of 10; answers {answers}")
    assert len(right) >= 9, answers
    bars = page.find_elements(By.CSS_SELECTOR, "#bars li")
    assert [bar.text.split("\n")[0] for bar in bars] == [str(d) for d in range(10)]
    assert page.find_element(By.CSS_SELECTOR, "#bars li.best").text.startswith(answers[9])
    screenshot(page, "desktop-answer")
    page.set_window_size(*PHONE)
    clear(page)
    draw(page, tracing.trace(digits[2]), interaction.POINTER_TOUCH)
    assert read_answer(page) == answers[2]
    screenshot(page, "phone-answer")


def test_a_blank_canvas_gets_the_services_message_not_a_guess(page: WebDriver) -> None:
    clear(page)
    page.find_element(By.ID, "predict").click()
    assert read_answer(page) == "error: No digit found in the image."
    assert not page.find_element(By.ID, "result").is_displayed()


@pytest.mark.parametrize("suffix", ["jpg", "heic"])
def test_an_uploaded_photo_is_read(
    page: WebDriver, digits: dict[int, np.ndarray], tmp_path: Path, suffix: str
) -> None:
    """A photo as a JPEG, and as an iPhone stores it: HEIC, on its side with the box that
    turns it upright (which the browser cannot show, and the service reads)."""
    photo = tmp_path / f"photo of a seven.{suffix}"
    data = styles.paper_photo(digits[7], np.random.default_rng(7))
    if suffix == "heic":
        exif = Image.Exif()
        exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
        buffer = io.BytesIO()
        turned = Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_90)
        turned.save(buffer, "HEIF", quality=80, exif=exif.tobytes())
        data = buffer.getvalue()
    photo.write_bytes(data)
    page.find_element(By.ID, "file").send_keys(str(photo))
    assert read_answer(page) == "7"
    assert page.find_element(By.ID, "upload-label").text == f"photo of a seven.{suffix}"


def test_a_file_that_is_not_an_image_gets_a_sentence(page: WebDriver, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a digit")
    page.find_element(By.ID, "file").send_keys(str(notes))
    message = read_answer(page)
    assert message.startswith("error: ")
    assert "image" in message and "{" not in message


def type_into(driver: WebDriver, element_id: str, text: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def history(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#history li")


def thumb(driver: WebDriver) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, "#history li .thumb")


def test_register_keep_a_history_log_out_log_in_and_delete(
    page: WebDriver, server: dict[str, Any], digits: dict[int, np.ndarray]
) -> None:
    # a rule broken: the API's message as a sentence, not JSON
    type_into(page, "register-username", "grace")
    type_into(page, "register-email", "grace@example.com")
    type_into(page, "register-password", "short")
    page.find_element(By.CSS_SELECTOR, "#register button").click()
    error = visible(page, "account-error")
    assert error.text == "Password must be at least 8 characters long."

    type_into(page, "register-password", "a long enough secret")
    page.find_element(By.CSS_SELECTOR, "#register button").click()
    wait(page, lambda d: d.find_element(By.ID, "whoami").text == "Logged in as grace")
    assert not page.find_element(By.ID, "account-error").is_displayed()
    wait(page, lambda d: "Nothing kept yet" in d.find_element(By.ID, "history-count").text)
    # the token lives in sessionStorage, never in a cookie
    assert page.execute_script("return document.cookie") == ""
    assert page.execute_script("return sessionStorage.length") == 1

    clear(page)
    draw(page, tracing.trace(digits[3]), interaction.POINTER_MOUSE)
    assert read_answer(page) == "3"
    wait(page, lambda d: len(history(d)) == 1)
    entry = history(page)[0]
    assert entry.find_element(By.CSS_SELECTOR, ".entry-digit").text == "3"
    assert entry.find_element(By.CSS_SELECTOR, ".entry-confidence").text.endswith("% sure")
    assert entry.find_element(By.TAG_NAME, "time").get_attribute("datetime")
    # the thumbnail is the upload itself, fetched with the token
    wait(page, lambda d: d.execute_script("return arguments[0].naturalWidth", thumb(d)) == 280)
    assert page.find_element(By.ID, "history-count").text == "1 prediction kept."

    page.find_element(By.ID, "logout").click()
    wait(page, lambda d: d.find_element(By.ID, "whoami").text == "Not logged in")
    assert page.execute_script("return sessionStorage.length") == 0
    assert not page.find_element(By.ID, "signed-in").is_displayed()

    # a wrong password, then the right one, by keyboard alone
    type_into(page, "login-username", "grace")
    type_into(page, "login-password", "not the secret" + Keys.ENTER)
    assert visible(page, "account-error").text == "Unable to log in with provided credentials."
    type_into(page, "login-password", "a long enough secret")
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait(page, lambda d: d.find_element(By.ID, "whoami").text == "Logged in as grace")
    wait(page, lambda d: len(history(d)) == 1)

    # the history survives a reload in the same tab
    page.refresh()
    wait(page, lambda d: len(history(d)) == 1)
    wait(page, lambda d: d.execute_script("return arguments[0].naturalWidth", thumb(d)) == 280)
    screenshot(page, "desktop-history")
    page.set_window_size(*PHONE)
    width = page.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at {PHONE[0]} px: {width}"
    screenshot(page, "phone-history")

    delete = history(page)[0].find_element(By.CSS_SELECTOR, ".delete")
    assert (delete.get_attribute("aria-label") or "").startswith("Delete 3, ")
    delete.send_keys(Keys.ENTER)
    wait(page, lambda d: history(d) == [])
    assert "Nothing kept yet" in page.find_element(By.ID, "history-count").text
    with sqlite3.connect(server["database"]) as database:
        assert database.execute("SELECT count(*) FROM predictions").fetchone() == (0,)


def test_every_control_has_a_name_for_screen_readers(page: WebDriver) -> None:
    unnamed = page.execute_script(
        """
        return [...document.querySelectorAll('button, input, canvas, img, output, a')]
          .filter(e => {
            const label = e.labels?.length ? e.labels[0].textContent.trim() : '';
            const own = e.getAttribute('aria-label') || e.getAttribute('alt') ||
                        e.textContent.trim() || e.getAttribute('aria-labelledby');
            // decorative images say so with alt="" (their text is beside them)
            return !(label || own || (e.tagName === 'IMG' && e.hasAttribute('alt')) ||
                     e.id === 'digit');
          })
          .map(e => e.outerHTML);
        """
    )
    assert unnamed == []
    # the keyboard reaches the pad, the buttons and the file chooser, in reading order
    reached = []
    for _ in range(7):
        ActionChains(page).send_keys(Keys.TAB).perform()
        active = page.switch_to.active_element
        reached.append(active.get_attribute("id") or active.text)
    assert reached == [
        "Skip to the drawing area",
        "API documentation",
        "mode-digit",  # the radio group: one stop, its arrows choose
        "pad",
        "predict",
        "clear",
        "file",
    ]


def draw_number(
    driver: WebDriver,
    digits: list[list[list[tuple[float, float]]]],
    pointer: str = interaction.POINTER_MOUSE,
) -> None:
    """Draw digits side by side with one pointer, each in its own equal share of the pad, its
    strokes given in MNIST pixels (28 to the pad's height)."""
    pad = driver.find_element(By.ID, "pad")
    scale = pad.size["height"] / 28
    share = pad.size["width"] / len(digits)
    actions = ActionBuilder(driver, mouse=PointerInput(pointer, pointer), duration=15)
    for index, strokes in enumerate(digits):
        centre = (index + 0.5) * share - pad.size["width"] / 2  # Selenium's offsets: from the
        # element's centre

        def offset(point: tuple[float, float], centre: float = centre) -> tuple[int, int]:
            row, column = point
            return round((column + 0.5 - 14) * scale + centre), round((row + 0.5 - 14) * scale)

        for stroke in strokes:
            actions.pointer_action.move_to(pad, *offset(stroke[0])).pointer_down()
            for point in stroke[1:]:
                actions.pointer_action.move_to(pad, *offset(point))
            actions.pointer_action.pointer_up()
    actions.perform()


def test_a_number_drawn_on_the_wide_pad_is_read_and_boxed(
    page: WebDriver, digits: dict[int, np.ndarray], server: dict[str, Any]
) -> None:
    page.find_element(By.CSS_SELECTOR, "label:has(#mode-number)").click()
    pad = page.find_element(By.ID, "pad")
    assert (pad.get_attribute("width"), pad.get_attribute("height")) == ("840", "280")
    assert page.find_element(By.ID, "input-title").text == "Draw or drop a number"
    number = "3708"
    draw_number(page, [tracing.trace(digits[int(d)]) for d in number])
    assert read_answer(page) == number
    shown = page.find_elements(By.CSS_SELECTOR, "#number-digits li")
    assert [item.text.split()[0] for item in shown] == list(number)
    assert all(item.text.endswith("% sure") for item in shown)
    assert not page.find_element(By.ID, "seen").is_displayed()
    # the drawing, with a box in the page's blue around each digit
    blue = page.execute_script(
        """
        const canvas = document.getElementById('boxes');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let blue = 0;
        for (let i = 0; i < data.length; i += 4)
          if (data[i] === 31 && data[i + 1] === 95 && data[i + 2] === 209) blue++;
        return [canvas.width, canvas.height, blue];
        """
    )
    assert blue[:2] == [800, 267] and blue[2] > 4 * 100, blue
    screenshot(page, "desktop-number")
    # back to one digit: the square pad again
    page.find_element(By.CSS_SELECTOR, "label:has(#mode-digit)").click()
    assert pad.get_attribute("width") == "280"
    draw(page, tracing.trace(digits[3]), interaction.POINTER_MOUSE)
    assert read_answer(page) == "3"
    assert page.find_element(By.ID, "seen").is_displayed()
    assert not page.find_element(By.ID, "number-view").is_displayed()


def test_keyboard_on_the_pad_reads_and_clears(
    page: WebDriver, digits: dict[int, np.ndarray]
) -> None:
    clear(page)
    draw(page, tracing.trace(digits[0]), interaction.POINTER_PEN)
    read_answer(page)
    pad = page.find_element(By.ID, "pad")
    pad.send_keys(Keys.ESCAPE)
    visible(page, "idle")
    pad.send_keys(Keys.ENTER)
    assert read_answer(page) == "error: No digit found in the image."


def test_pasted_and_dropped_images_are_read(page: WebDriver, digits: dict[int, np.ndarray]) -> None:
    """Clipboard and drag-and-drop events carry a File; the browser makes them here from a
    real PNG, since a headless browser has no clipboard or mouse drag from the desktop."""
    png = styles.canvas_png(digits[4], np.random.default_rng(4))
    script = """
        const [kind, bytes, done] = arguments;
        const file = new File([new Uint8Array(bytes)], 'four.png', {type: 'image/png'});
        const data = new DataTransfer();
        data.items.add(file);
        if (kind === 'paste') {
          document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data}));
        } else {
          const zone = document.getElementById('pad');
          for (const type of ['dragenter', 'dragover', 'drop'])
            zone.dispatchEvent(
              new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
        }
        done();
    """
    for kind in ("paste", "drop"):
        clear(page)
        page.execute_async_script(script, kind, list(png))
        assert read_answer(page) == "4", kind
        assert page.find_element(By.ID, "upload-label").text == "four.png"
