"""The prediction processes: decoding, preprocessing and classifying, beside the web server.

Each server process runs a pool of prediction processes once its model is loaded
(PREDICTION_PROCESSES, by default one per usable core; which one gets a job: SPILL_SECONDS).
The server and each process talk over a socket pair in length-prefixed pickled
frames: a job goes in with its id, its outcome comes out. A prediction process takes every job
that has arrived since it last looked and does them in one call of its work function, so under
load many requests share one pass through the model (and one database transaction, for
predictions kept in a history).

Why a process and not a thread: the event loop and the model then never compete for one GIL.
Measured on 2 cores (BENCHMARKS.md), a prediction thread beside the loop halved the loop's
throughput; a prediction process beside it costs the loop a few per cent.

Where it comes from: a fork server (multiprocessing's "forkserver"), a fresh interpreter
started once with exec, which imports the service's modules with single-threaded numerical
libraries and then only ever forks. The server itself never forks: it has threads (the thread
pool, a training thread, BLAS pools), and a fork copies their locks as they are at that instant,
held or not. A prediction process gets the model as its first message, not as a file, so it
serves exactly what the server loaded.

What one upload may cost is bounded in the prediction process: its address space (an upload
that needs more memory than allowed gets MemoryError, a 413, and the process goes on) and its
time (an alarm interrupts an upload that takes too long: 413). A watchdog in the server kills
a process that shows no sign of life for `timeout` seconds while it has work; its requests fail
with 503, and a new process starts. No upload is ever retried elsewhere: one that killed the
prediction process could kill the server too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import pickle
import resource
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any

from errors import InvalidImage, PredictionUnavailable, ServiceError, TooCostly

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")  # frame length
MAX_JOBS = 64  # jobs per call of the work function
READY = -1  # the job id of the prediction process's "model loaded, serving" frame
ALIVE = -2  # ...and of its "still working" frame, sent at most every HEARTBEAT seconds
HEARTBEAT = 1.0
RESTARTING = "The prediction process is restarting; try again in a moment."

# A small job goes to the first process of the pool that keeps up with its work: one with
# nothing in hand, or only jobs sent under SPILL_SECONDS ago costing under SPILL_BYTES together
# (a job costs what its sender says: its uploads' bytes, or COSTLY). Small uploads thus fill one
# process's passes, as many to a pass as with a pool of one: spreading them evenly made
# MNIST-format uploads 15-40% slower on 2 cores (passes of half the size, each with its fixed
# cost, and a second process woken for each). A costly job (a photo, a number, a share of a
# batch) goes to an idle process, else to the least busy; and a process does the small jobs
# that arrived with large ones first (_passes).
SPILL_SECONDS = 0.05
SPILL_BYTES = 256 * 1024
COSTLY = SPILL_BYTES  # the cost of a job that should have a process to itself

Work = Callable[[list[Any]], list[Any]]  # jobs in, one outcome per job out, in order

# Imported by the fork server before it forks anything: the first pins the numerical libraries
# to one thread (so the fork server has no threads to copy), the others are what a prediction
# process runs, so it starts in milliseconds.
PRELOAD = ["single_threaded", "predictor", "history"]


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


class _Frames:
    """Whole frames out of a blocking socket, as many as have arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.sizes: list[int] = []  # of each frame the last wait() took, in order

    @property
    def received(self) -> int:
        """Bytes of frames the last wait() took."""
        return sum(self.sizes)

    def _complete(self) -> list[Any]:
        messages = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + size:
                break
            payload = bytes(self.buffer[HEADER.size : HEADER.size + size])
            del self.buffer[: HEADER.size + size]
            self.sizes.append(size)
            messages.append(pickle.loads(payload))  # noqa: S301 -- our own parent process
        if not self.buffer:  # a new, empty buffer: the old one keeps its largest size
            self.buffer = bytearray()
        return messages

    def wait(self) -> list[Any] | None:
        """Block for at least one frame, then take every other one already here. None at EOF."""
        self.sizes = []
        while True:
            messages = self._complete()
            # take what else is waiting, without blocking, so it joins this pass
            while select.select([self.sock], [], [], 0)[0]:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    return messages or None
                self.buffer += chunk
                messages += self._complete()
            if messages:
                return messages
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return None
            self.buffer += chunk


# --- in the prediction process ----------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What one upload may cost in the prediction process."""

    seconds: float  # wall-clock time to decode and preprocess it
    memory: int  # bytes of address space beyond what the process holds when it starts


class _Guard:
    """The prediction process's per-upload alarm and its heartbeat to the server."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock = sock
        self.seconds = seconds
        self.last_sign = time.monotonic()

    @contextlib.contextmanager
    def upload(self) -> Iterator[None]:
        def too_slow(signum: int, frame: object) -> None:
            raise TooCostly(
                f"The image took over {self.seconds:g} s to decode and prepare; "
                "send a smaller or simpler image."
            )

        previous = signal.signal(signal.SIGALRM, too_slow)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            yield  # MemoryError passes through: preprocessing turns it into a 413
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            now = time.monotonic()
            if now - self.last_sign >= HEARTBEAT:  # a long pass: tell the watchdog we live
                self.last_sign = now
                self.sock.sendall(_frame((ALIVE, None)))


_guard: _Guard | None = None  # set in the prediction process only


def upload_guard() -> contextlib.AbstractContextManager[None]:
    """Wrap the work on each upload: in the prediction process, its time and memory are
    bounded (TooCostly when over); in the server (the thread-pool mode), nothing is."""
    return _guard.upload() if _guard is not None else contextlib.nullcontext()


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _serve(sock: socket.socket, work: Work) -> None:
    """The prediction process's loop: jobs in, outcomes out, until the server goes away."""
    frames = _Frames(sock)
    untrimmed = 0  # bytes of uploads since freed memory was last handed back
    while (jobs := frames.wait()) is not None:
        for batch in _passes(jobs, frames.sizes):
            _answer(sock, batch, work)
            if _guard is not None:  # an answer is a sign of life: no heartbeat needed yet
                _guard.last_sign = time.monotonic()
        jobs = batch = []  # neither is held while the next jobs are awaited
        untrimmed += frames.received
        # after large uploads, hand freed memory back once no more work is waiting (a trim
        # costs about 10 ms: after every pass of photos it was an eighth of their cost)
        if untrimmed > TRIM_AFTER and not select.select([sock], [], [], 0)[0]:
            trim()
            untrimmed = 0


def _passes(jobs: list[Any], sizes: list[int]) -> list[list[Any]]:
    """The jobs that arrived together, as passes of at most MAX_JOBS: the small ones first, so a
    digit that arrived with a large photo is not kept waiting while the photo is decoded."""
    small = [job for job, size in zip(jobs, sizes, strict=True) if size < SPILL_BYTES]
    large = [job for job, size in zip(jobs, sizes, strict=True) if size >= SPILL_BYTES]
    return [
        group[start : start + MAX_JOBS]
        for group in (small, large)
        for start in range(0, len(group), MAX_JOBS)
    ]


def _answer(sock: socket.socket, jobs: list[tuple[int, Any]], work: Work) -> None:
    try:
        outcomes = work([job for _, job in jobs])
    except Exception as error:
        # The work function fails uploads one by one; should a whole pass fail all the same,
        # each job is done again alone, so that only the one at fault fails.
        outcomes = [error] if len(jobs) == 1 else [_alone(work, job) for _, job in jobs]
    frames = []
    for (job_id, _), outcome in zip(jobs, outcomes, strict=True):
        try:
            frames.append(_frame((job_id, _reportable(outcome))))
        except Exception as error:  # an outcome that cannot travel (an exception holding a
            # memoryview, say) fails its own request, never this process
            frames.append(_frame((job_id, _reportable(error))))
    sock.sendall(b"".join(frames))


def _alone(work: Work, job: Any) -> Any:
    try:
        (outcome,) = work([job])
    except Exception as error:
        return error
    return outcome


def _reportable(outcome: Any) -> Any:
    """An outcome as the client may see it: an unforeseen exception becomes a 400 naming it."""
    if isinstance(outcome, BaseException) and not isinstance(outcome, ServiceError):
        log.error("an upload failed unexpectedly: %r", outcome)
        return InvalidImage(
            f"The image could not be processed ({type(outcome).__name__}: {outcome})."
        )
    return outcome


def _child(sock: socket.socket, work: Work, limits: Limits) -> None:  # pragma: no cover
    """The prediction process, from the fork to its exit. (Coverage is not collected here.)"""
    global _guard
    # The server decides when this process stops (it closes the socket, and this exits):
    # Ctrl+C or a SIGTERM sent to the whole process group must not end it mid-request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + limits.memory
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    _guard = _Guard(sock, limits.seconds)
    sock.sendall(_frame((READY, os.getpid())))
    _serve(sock, work)


TRIM_AFTER = 1024 * 1024  # bytes of uploads in a pass after which freed memory is returned


def trim() -> None:
    """Give the heap's free pages back to the system (glibc; elsewhere nothing happens).

    Large uploads leave much of the heap free but resident (glibc raises its threshold for
    mapping buffers separately once a large one is freed, and serves the next ones from the
    heap). Trimming after a pass of large uploads held a prediction process at 146 MB through
    three rounds of Pillow's corpus of odd images (180 MB without). Mapping every buffer over
    256 kB instead (mallopt) held it as well, but made a batch of 256 digits 70% slower."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --- in the server ------------------------------------------------------------------------------


class ProcessStopped(PredictionUnavailable):
    """The prediction process went away with this job in it. The job is not retried."""


def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(PRELOAD)
    return context


class PredictionProcess:
    """The server's side: starts the process, hands it jobs, awaits their outcomes, and kills
    it when it hangs."""

    def __init__(
        self,
        work: Work,
        limits: Limits,
        timeout: float,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self._work = work
        self._limits = limits
        self._timeout = timeout
        self._on_exit = on_exit
        self._stopping = False
        self._ready = False
        self._why_stopped = "The prediction process stopped; try again in a moment."
        self._process: BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[Any], float]] = {}  # future, sent at
        self._in_hand = 0  # what the jobs pending cost
        self._last_sign = time.monotonic()
        self._ids = itertools.count()

    @property
    def running(self) -> bool:
        return self._writer is not None and self._ready

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def load(self) -> int:
        """Jobs handed to the process and not yet answered."""
        return len(self._pending)

    def keeping_up(self, now: float) -> bool:
        """Whether a new job would be done soon here: nothing in hand, or only jobs sent under
        SPILL_SECONDS ago and costing under SPILL_BYTES together."""
        if not self._pending:
            return True
        _, oldest = next(iter(self._pending.values()))
        return now - oldest < SPILL_SECONDS and self._in_hand < SPILL_BYTES

    async def start(self, wait: float = 30.0) -> None:
        """Start the prediction process (the model travels with it) and wait until it serves."""
        ours, theirs = socket.socketpair()
        process = _context().Process(
            target=_child, args=(theirs, self._work, self._limits), name="prediction", daemon=True
        )
        try:
            # in a thread: the fork server reads the model from a pipe while this writes it
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()
        self._process = process
        reader, self._writer = await asyncio.open_connection(sock=ours)
        started = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(reader, started))
        self._watchdog = asyncio.create_task(self._watch())
        try:
            await asyncio.wait_for(asyncio.shield(started), wait)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            log.error("prediction process %s did not start", process.pid)
            self._kill("The prediction process did not start; try again in a moment.")
            raise
        log.info("prediction process %d started", process.pid)

    async def run(self, job: Any, cost: int = 0) -> Any:
        """The job's outcome, or the exception the work function raised for it. `cost`: what
        it weighs against SPILL_BYTES while it is in hand."""
        if not self.running:
            raise ProcessStopped(RESTARTING)
        assert self._writer is not None
        if self._writer.is_closing():  # the process is gone; its reader has not seen it yet
            raise ProcessStopped(self._why_stopped)
        job_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        frame = _frame((job_id, job))
        self._pending[job_id] = (future, time.monotonic())
        self._in_hand += cost
        try:
            try:
                self._writer.write(frame)
            except RuntimeError as error:  # uvloop, on a transport closed by the process's death
                raise ProcessStopped(self._why_stopped) from error
            return await future
        finally:
            if self._pending.pop(job_id, None) is not None:
                self._in_hand -= cost

    async def _read(self, reader: asyncio.StreamReader, started: asyncio.Future[None]) -> None:
        try:
            while True:
                (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(size)
                try:
                    job_id, outcome = pickle.loads(payload)  # noqa: S301 -- our own child
                except Exception:  # a bug, not a fault of the process: end it cleanly
                    log.exception("an answer of prediction process %s cannot be read", self.pid)
                    self._kill("The prediction process failed; try again in a moment.")
                    continue
                self._last_sign = time.monotonic()
                if job_id == READY:
                    self._ready = True
                    started.set_result(None)
                    continue
                entry = self._pending.get(job_id)
                if entry is None or entry[0].done():  # ALIVE, or its request was cancelled
                    continue
                if isinstance(outcome, BaseException):
                    entry[0].set_exception(outcome)
                else:
                    entry[0].set_result(outcome)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            if not started.done():
                started.set_exception(error)
            if not self._stopping:
                log.error("prediction process %s stopped", self.pid)
        finally:
            self._disconnect()
            await self._reap()
            if not self._stopping and self._on_exit is not None:
                self._on_exit()

    async def _watch(self) -> None:
        """Kill the process when it has work and has shown no sign of life for `timeout` s."""
        while self._writer is not None:
            await asyncio.sleep(min(1.0, self._timeout / 4))
            if not self._pending:
                continue
            _, oldest = next(iter(self._pending.values()))
            silent = time.monotonic() - max(oldest, self._last_sign)
            if silent > self._timeout:
                log.error(
                    "prediction process %s silent for %.1f s with %d jobs: killing it",
                    self.pid,
                    silent,
                    len(self._pending),
                )
                self._kill("The prediction took too long and was stopped; try again later.")
                return

    def _kill(self, why: str) -> None:
        self._why_stopped = why
        if self._process is not None and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)

    def _disconnect(self) -> None:
        self._ready = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(ProcessStopped(self._why_stopped))
        self._pending.clear()
        self._in_hand = 0

    async def _reap(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await asyncio.to_thread(process.join, 5)
            if process.exitcode is None:  # still there after its socket closed: make sure
                process.kill()
                await asyncio.to_thread(process.join, 5)

    async def stop(self) -> None:
        """Close the connection; the prediction process sees it end, and exits."""
        self._stopping = True
        if self._writer is not None:
            self._writer.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in (self._reader, self._watchdog):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


RESTART_DELAY = 0.1  # seconds before a dead prediction process is replaced...
MAX_RESTART_DELAY = 5.0  # ...doubling up to this while new ones keep dying young


class PredictionPool:
    """`size` prediction processes doing the same work. A small job goes to the first running
    process that keeps up, a costly one to an idle process (see SPILL_SECONDS), else either goes
    to the one with the fewest jobs in hand; each process batches what reaches it. A process
    that dies is replaced on its own, at once or after a growing pause while its replacements
    keep dying young (a crash loop); the others serve meanwhile, and only the jobs in the dead
    one's hands fail."""

    def __init__(self, work: Work, limits: Limits, timeout: float, size: int) -> None:
        self._work = work
        self._limits = limits
        self._timeout = timeout
        self._slots: list[PredictionProcess | None] = [None] * size
        self._delays = [RESTART_DELAY] * size
        self._started = [0.0] * size  # when each slot's newest process was started
        self._stopping = False

    @property
    def size(self) -> int:
        return len(self._slots)

    @property
    def running(self) -> bool:
        """Whether any process serves."""
        return any(process.running for process in self._slots if process is not None)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._slots if p is not None and p.running and p.pid is not None]

    async def start(self) -> None:
        """Start every process, side by side, and wait until each serves or failed to."""
        await asyncio.gather(*(self._start(slot) for slot in range(self.size)))

    async def _start(self, slot: int) -> None:
        if self._stopping:
            return
        process = PredictionProcess(
            self._work, self._limits, self._timeout, on_exit=lambda: self._exited(slot)
        )
        self._slots[slot] = process
        self._started[slot] = time.monotonic()
        try:
            await process.start()
        except Exception:
            log.exception("prediction process %d of %d did not start", slot + 1, self.size)

    def _exited(self, slot: int) -> None:
        if self._stopping:
            return
        lived = time.monotonic() - self._started[slot]
        delay = RESTART_DELAY if lived > 1 else min(MAX_RESTART_DELAY, 2 * self._delays[slot])
        self._delays[slot] = delay
        log.info("starting a new prediction process in %.1f s", delay)
        asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self._start(slot))
        )

    async def run(self, job: Any, cost: int) -> Any:
        """The job's outcome (see PredictionProcess.run), from the process chosen for it by its
        `cost`: the bytes of its uploads, or COSTLY."""
        running = [p for p in self._slots if p is not None and p.running]
        if not running:
            raise ProcessStopped(RESTARTING)
        if cost >= SPILL_BYTES:  # a costly job: to an idle process, else the least busy
            chosen = min(running, key=lambda process: process.load)
        else:
            now = time.monotonic()
            chosen = next(
                (process for process in running if process.keeping_up(now)),
                min(running, key=lambda process: process.load),
            )
        return await chosen.run(job, cost)

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*(p.stop() for p in self._slots if p is not None))
