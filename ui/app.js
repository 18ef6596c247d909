// Digit reader: draw or give an image, show what the model read and saw, keep a history.
// Plain browser JavaScript talking to the service's own API; no libraries, no build step.

const $ = (selector) => document.querySelector(selector);
const TOKEN_KEY = "digit-reader-token";
const AUTO_READ_MS = 700; // pause after the last stroke before the drawing is read
const HISTORY_PAGE = 10;

// --- talking to the API ---------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const FIELD_NAMES = { username: "Username", email: "Email", password: "Password", file: "Image", image: "Image" };

// FastAPI's validation errors are a list of {loc, msg}; make them one readable sentence each.
function validationSentence(problem) {
  const field = FIELD_NAMES[problem.loc?.[problem.loc.length - 1]];
  let text = String(problem.msg || "This value is not valid.").replace(/^Value error, /, "");
  if (text === "Field required") text = "is required";
  text = text.charAt(0).toLowerCase() + text.slice(1);
  const sentence = field && !text.toLowerCase().startsWith(field.toLowerCase()) ? `${field} ${text}` : text;
  const capitalised = sentence.charAt(0).toUpperCase() + sentence.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}

function errorMessage(status, body) {
  const detail = body?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) return detail.map(validationSentence).join(" ");
  if (status === 413) return "The upload is too large. Send a smaller image.";
  if (status >= 500) return "The service had a problem answering. Try again in a moment.";
  return `The service refused the request (HTTP ${status}).`;
}

const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  username: null,
  set(token, username) {
    this.token = token;
    this.username = username;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

async function request(method, url, { json, form, raw = false } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Token ${session.token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch {
    throw new ApiError("The service could not be reached. Check the connection and try again.", 0);
  }
  if (response.ok) {
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // not JSON (a proxy's error page, say): the status alone has to do
  }
  if (response.status === 401 && session.token) {
    signedOut();
    throw new ApiError("Your session has ended; log in again.", 401);
  }
  throw new ApiError(errorMessage(response.status, payload), response.status);
}

// --- the answer ------------------------------------------------------------------------------

// one decimal; never "100%" or "0%" for what is only nearly certain or nearly impossible
function percent(p) {
  if (p > 0.999) return "> 99.9%";
  if (p < 0.001) return "< 0.1%";
  return `${(p * 100).toFixed(1)}%`;
}

function show(state) {
  $("#idle").hidden = state !== "idle";
  $("#busy").hidden = state !== "busy";
  $("#result").hidden = state !== "result";
  $("#error").hidden = state !== "error";
}

function showAnswer(answer) {
  $("#seen").hidden = false;
  $("#number-view").hidden = $("#number-digits").hidden = true;
  const digit = String(answer.prediction ?? answer.result);
  $("#digit").textContent = digit;
  $("#confidence").textContent = `${percent(answer.confidence)} sure`;
  $("#processed").src = `data:image/png;base64,${answer.processed}`;
  const bars = $("#bars");
  bars.replaceChildren(
    ...answer.probabilities.map((p, d) => {
      const row = document.createElement("li");
      if (String(d) === digit) row.className = "best";
      const label = document.createElement("span");
      label.textContent = d;
      const track = document.createElement("span");
      track.className = "track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${(p * 100).toFixed(1)}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = percent(p);
      row.append(label, track, value);
      return row;
    }),
  );
  show("result");
}

// A number: its digits, and the upload with a box drawn around each digit (and point) found.
async function showNumber(answer, image) {
  $("#seen").hidden = true;
  $("#number-view").hidden = $("#number-digits").hidden = false;
  $("#digit").textContent = answer.number;
  const count = answer.digits.length;
  $("#confidence").textContent =
    count === 1 ? `${percent(answer.confidence)} sure` : `${percent(answer.confidence)} sure of all ${count} digits`;
  $("#number-digits").replaceChildren(
    ...answer.digits.map((digit) => {
      const item = document.createElement("li");
      const shown = document.createElement("b");
      shown.textContent = digit.digit;
      item.append(shown, ` ${percent(digit.confidence)} sure`);
      return item;
    }),
  );
  const canvas = $("#boxes");
  const picture = await createImageBitmap(image); // upright, as its EXIF orientation says
  const scale = Math.min(1, 800 / picture.width, 320 / picture.height);
  canvas.width = Math.max(1, Math.round(picture.width * scale));
  canvas.height = Math.max(1, Math.round(picture.height * scale));
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(picture, 0, 0, canvas.width, canvas.height);
  picture.close();
  context.lineWidth = 2;
  context.font = "600 14px system-ui, sans-serif";
  context.textBaseline = "bottom";
  for (const digit of answer.digits) {
    const { x, y, width, height } = digit.box;
    const [left, top] = [x * scale, y * scale];
    context.strokeStyle = "#1f5fd1";
    context.strokeRect(left, top, width * scale, height * scale);
    const label = `${digit.digit} ${percent(digit.confidence)}`;
    const above = Math.max(16, top);
    context.fillStyle = "#1f5fd1";
    context.fillRect(left, above - 16, context.measureText(label).width + 6, 16);
    context.fillStyle = "#fff";
    context.fillText(label, left + 3, above - 1);
  }
  for (const mark of [...(answer.points ?? []), ...(answer.dashes ?? [])]) {
    // a decimal point or a dash: a small box around it, no label (the number above shows it)
    const { x, y, width, height } = mark.box;
    context.strokeStyle = "#1f5fd1";
    context.strokeRect(x * scale - 2, y * scale - 2, width * scale + 4, height * scale + 4);
  }
  canvas.setAttribute("aria-label", `The image, with a box around each of the ${count} digits found`);
  show("result");
}

function showError(message) {
  $("#error").textContent = message;
  show("error");
}

let reading = 0; // only the newest request's answer is shown
let inFlight = 0;

// The answer region is busy while a stroke is drawn, a read is due, or a request is out:
// screen readers (and the browser test) then know the shown answer is about to change.
function updateBusy() {
  const busy = Boolean(stroke || autoRead || inFlight);
  $("#answer").setAttribute("aria-busy", String(busy));
}

// `image` is a Blob, or a promise of one (the pad's PNG is encoded asynchronously)
async function read(image, name) {
  const ticket = ++reading;
  inFlight += 1;
  updateBusy();
  show("busy");
  $("#predict").disabled = true;
  try {
    const form = new FormData();
    const signedIn = Boolean(session.token);
    const number = mode === "number"; // kept in the history too when signed in
    const blob = await image;
    form.append(signedIn && !number ? "image" : "file", blob, name);
    let url = signedIn ? "/api/predict/?include=processed" : "/predict/mnist?include=processed";
    if (number) url = "/predict/number";
    const answer = await request("POST", url, { form });
    if (ticket !== reading) return;
    if (number) await showNumber(answer, blob);
    else showAnswer(answer);
    if (signedIn && session.token) loadHistory();
  } catch (error) {
    if (ticket === reading) showError(error.message);
  } finally {
    if (ticket === reading) $("#predict").disabled = false;
    inFlight -= 1;
    updateBusy();
  }
}

// --- the drawing pad -------------------------------------------------------------------------

const pad = $("#pad");
const ink = pad.getContext("2d");
let stroke = null; // {last, mid, pointer} while a pointer is down
let autoRead = 0; // the timer of the read due after a pause in drawing, if any

function cancelAutoRead() {
  clearTimeout(autoRead);
  autoRead = 0;
  updateBusy();
}

function clearPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.strokeStyle = ink.fillStyle = "#000";
  ink.lineWidth = pad.height / 14;
  ink.lineCap = ink.lineJoin = "round";
  cancelAutoRead();
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * pad.width) / box.width,
    y: ((event.clientY - box.top) * pad.height) / box.height,
  };
}

// Each new point extends the stroke by a quadratic curve through the midpoints, so fast
// strokes come out smooth rather than as a polygon.
function extend(point) {
  const { last, mid } = stroke;
  const next = { x: (last.x + point.x) / 2, y: (last.y + point.y) / 2 };
  ink.beginPath();
  ink.moveTo(mid.x, mid.y);
  ink.quadraticCurveTo(last.x, last.y, next.x, next.y);
  ink.stroke();
  stroke.last = point;
  stroke.mid = next;
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  cancelAutoRead();
  const point = padPoint(event);
  ink.beginPath();
  ink.arc(point.x, point.y, ink.lineWidth / 2, 0, 2 * Math.PI);
  ink.fill();
  stroke = { last: point, mid: point, pointer: event.pointerId };
  updateBusy();
});

pad.addEventListener("pointermove", (event) => {
  if (!stroke || event.pointerId !== stroke.pointer) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of events.length ? events : [event]) extend(padPoint(each));
});

function endStroke(event) {
  if (!stroke || event.pointerId !== stroke.pointer) return;
  const { last, mid } = stroke;
  ink.beginPath();
  ink.moveTo(mid.x, mid.y);
  ink.lineTo(last.x, last.y);
  ink.stroke();
  stroke = null;
  clearTimeout(autoRead);
  autoRead = setTimeout(readPad, AUTO_READ_MS);
  updateBusy();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function readPad() {
  cancelAutoRead();
  hideUpload();
  // a blank pad is sent too: the service's "no digit" message is the answer, not a guess
  read(new Promise((resolve) => pad.toBlob(resolve, "image/png")), "drawing.png");
}

$("#predict").addEventListener("click", readPad);

// --- what is read: one digit, or a number on a pad three times as wide ----------------------

const MODES = {
  digit: {
    title: "Draw or drop a digit",
    hint: "Draw one digit with a mouse, finger or pen; it is read when you pause. Or choose, drop or paste an image.",
    button: "Read the digit",
    label: "Drawing area for one digit. Enter reads it, Escape clears it.",
    width: 280,
  },
  number: {
    title: "Draw or drop a number",
    hint: "Write a number, its digits side by side with a little space between them; it is read when you pause. Or choose, drop or paste an image.",
    button: "Read the number",
    label: "Drawing area for a number. Enter reads it, Escape clears it.",
    width: 840,
  },
};
let mode = "digit";

function setMode(next) {
  mode = next;
  const shown = MODES[mode];
  document.body.classList.toggle("number-mode", mode === "number");
  $("#input-title").textContent = shown.title;
  $("#pad-hint").textContent = shown.hint;
  $("#predict").textContent = shown.button;
  pad.setAttribute("aria-label", shown.label);
  pad.width = shown.width;
  reading += 1; // an answer still on its way belongs to the other mode
  $("#predict").disabled = false;
  clearPad();
  hideUpload();
  show("idle");
}
for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener("change", () => radio.checked && setMode(radio.value));
}
$("#clear").addEventListener("click", () => {
  clearPad();
  show("idle");
  pad.focus();
});
pad.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    readPad();
  } else if (event.key === "Escape" || event.key === "Delete" || event.key === "Backspace") {
    event.preventDefault();
    clearPad();
    show("idle");
  }
});

// --- images given as files: picker, drag and drop, paste --------------------------------------

let previewUrl = null;

function hideUpload() {
  $("#upload-name").hidden = true;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
}

function readFile(file) {
  hideUpload();
  previewUrl = URL.createObjectURL(file);
  $("#upload-preview").src = previewUrl;
  $("#upload-label").textContent = file.name || "pasted image";
  $("#upload-name").hidden = false;
  clearPad();
  read(file, file.name || "pasted.png");
}

$("#file").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) readFile(file);
  event.target.value = ""; // choosing the same file again reads it again
});

const dropzone = $("#input");
dropzone.addEventListener("dragover", (event) => {
  if (![...event.dataTransfer.types].includes("Files")) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  $("#dropzone").classList.add("dragging");
});
dropzone.addEventListener("dragleave", (event) => {
  if (!dropzone.contains(event.relatedTarget)) $("#dropzone").classList.remove("dragging");
});
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  $("#dropzone").classList.remove("dragging");
  const [file] = event.dataTransfer.files;
  if (file) readFile(file);
});

document.addEventListener("paste", (event) => {
  const file = [...(event.clipboardData?.files ?? [])][0];
  if (!file) return; // text pastes into the form fields as usual
  event.preventDefault();
  readFile(file);
});

// --- account and history ---------------------------------------------------------------------

function showAccountError(message) {
  $("#account-error").textContent = message;
  $("#account-error").hidden = !message;
}

function signedIn(username) {
  session.username = username;
  $("#whoami").textContent = `Logged in as ${username}`;
  $("#signed-out").hidden = true;
  $("#signed-in").hidden = false;
  $("#account-note").textContent = "What you read is kept in your history until you delete it.";
  showAccountError("");
  loadHistory();
}

function signedOut() {
  session.set(null, null);
  $("#whoami").textContent = "Not logged in";
  $("#signed-out").hidden = false;
  $("#signed-in").hidden = true;
  $("#account-note").textContent = "Log in to keep what you read, with the images, in a history of your own.";
  clearHistory();
}

async function submitAccount(event, path, fields) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  const values = Object.fromEntries(fields.map((name) => [name, form.elements[name].value]));
  button.disabled = true;
  showAccountError("");
  try {
    const answer = await request("POST", path, { json: values });
    session.set(answer.token, answer.username);
    form.reset();
    signedIn(answer.username);
    $("#history-title").focus();
  } catch (error) {
    showAccountError(error.message);
  } finally {
    button.disabled = false;
  }
}

$("#login").addEventListener("submit", (event) =>
  submitAccount(event, "/api/login/", ["username", "password"]),
);
$("#register").addEventListener("submit", (event) =>
  submitAccount(event, "/api/register/", ["username", "email", "password"]),
);

$("#logout").addEventListener("click", async () => {
  try {
    await request("POST", "/api/logout/");
  } catch {
    // the token is forgotten here either way
  }
  signedOut();
  $("#login-username").focus();
});

const thumbnails = new Set(); // object URLs to release when the list is redrawn
let nextPage = null;
let total = 0;

function clearHistory() {
  for (const url of thumbnails) URL.revokeObjectURL(url);
  thumbnails.clear();
  $("#history").replaceChildren();
  $("#more").hidden = true;
  $("#history-count").textContent = "";
}

function countText() {
  $("#history-count").textContent =
    total === 0 ? "Nothing kept yet: draw or upload a digit." : `${total} prediction${total === 1 ? "" : "s"} kept.`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

async function thumbnail(img, url) {
  // the image endpoint needs the token, which an <img src> cannot send
  try {
    const response = await request("GET", url, { raw: true });
    const objectUrl = URL.createObjectURL(await response.blob());
    thumbnails.add(objectUrl);
    img.src = objectUrl;
  } catch {
    img.alt = "(image not available)";
  }
}

function entry(item) {
  const node = $("#history-item").content.firstElementChild.cloneNode(true);
  const when = new Date(item.created_at);
  const read = item.kind === "number" ? item.number : item.result;
  const label = `${read}, ${percent(item.confidence)} sure`;
  node.dataset.id = item.id;
  node.querySelector(".entry-digit").textContent = read;
  node.querySelector(".entry-confidence").textContent = `${percent(item.confidence)} sure`;
  const time = node.querySelector("time");
  time.dateTime = item.created_at;
  time.textContent = timeFormat.format(when);
  const img = node.querySelector(".thumb");
  img.alt = `Your image, read as ${read}`;
  thumbnail(img, item.image);
  const button = node.querySelector(".delete");
  button.setAttribute("aria-label", `Delete ${label}, ${timeFormat.format(when)}`);
  button.addEventListener("click", () => remove(node, item.id, button));
  return node;
}

async function loadHistory(more = false) {
  try {
    const page = await request("GET", more ? nextPage : `/api/history/?limit=${HISTORY_PAGE}`);
    if (!more) clearHistory();
    total = page.count;
    nextPage = page.next && new URL(page.next).pathname + new URL(page.next).search;
    $("#history").append(...page.results.map(entry));
    $("#more").hidden = !nextPage;
    countText();
  } catch (error) {
    showAccountError(error.message);
  }
}
$("#more").addEventListener("click", () => loadHistory(true));

async function remove(node, id, button) {
  button.disabled = true;
  try {
    await request("DELETE", `/api/history/${id}/`);
  } catch (error) {
    button.disabled = false;
    if (error.status !== 404) {
      showAccountError(error.message);
      return;
    }
  }
  const neighbour = node.nextElementSibling || node.previousElementSibling;
  const img = node.querySelector(".thumb");
  if (thumbnails.delete(img.src)) URL.revokeObjectURL(img.src);
  node.remove();
  total = Math.max(0, total - 1);
  countText();
  (neighbour?.querySelector(".delete") ?? $("#history-title")).focus();
}

// --- start -----------------------------------------------------------------------------------

clearPad();
if (session.token) {
  request("GET", "/api/profile/")
    .then((profile) => signedIn(profile.username))
    .catch(() => signedOut());
}
