"""The prediction process: decoding, preprocessing and classifying, beside the web server.

Each server process forks one prediction process once its model is loaded. The two talk over a
socket pair in length-prefixed pickled frames: a job goes in with its id, its outcome comes out.
The prediction process takes every job that has arrived since it last looked and does them in
one call of its work function, so under load many requests share one pass through the model
(and one database transaction, for predictions kept in a history).

Why a process and not a thread: the event loop and the model then never compete for one GIL.
Measured on 2 cores (BENCHMARKS.md), a prediction thread beside the loop halved the loop's
throughput; a prediction process beside it costs the loop a few per cent. The fork shares the
loaded model and libraries with the server copy-on-write, so the second process costs little
memory and starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import select
import signal
import socket
import struct
from collections.abc import Callable
from typing import Any

from threadpoolctl import threadpool_limits

from errors import ModelNotReady

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")  # frame length
MAX_JOBS = 64  # jobs per call of the work function

Work = Callable[[list[Any]], list[Any]]  # jobs in, one outcome per job out, in order


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


class _Frames:
    """Whole frames out of a blocking socket, as many as have arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _complete(self) -> list[Any]:
        messages = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + size:
                break
            payload = bytes(self.buffer[HEADER.size : HEADER.size + size])
            del self.buffer[: HEADER.size + size]
            messages.append(pickle.loads(payload))  # noqa: S301 -- our own parent process
        return messages

    def wait(self) -> list[Any] | None:
        """Block for at least one frame, then take every other one already here. None at EOF."""
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


def _serve(sock: socket.socket, work: Work) -> None:
    """The prediction process's loop: jobs in, outcomes out, until the server goes away."""
    frames = _Frames(sock)
    while (jobs := frames.wait()) is not None:
        for start in range(0, len(jobs), MAX_JOBS):
            _answer(sock, jobs[start : start + MAX_JOBS], work)


def _answer(sock: socket.socket, jobs: list[tuple[int, Any]], work: Work) -> None:
    try:
        outcomes = work([job for _, job in jobs])
    except Exception as error:  # every job of this pass gets it; the process goes on
        outcomes = [error] * len(jobs)
    frames = []
    for (job_id, _), outcome in zip(jobs, outcomes, strict=True):
        try:
            frames.append(_frame((job_id, outcome)))
        except Exception as error:  # an outcome that cannot travel (an exception holding a
            # memoryview, say) fails its own request, never this process
            failure = RuntimeError(f"{type(outcome).__name__} could not be sent back: {error}")
            frames.append(_frame((job_id, failure)))
    sock.sendall(b"".join(frames))


def _child(  # pragma: no cover
    ours: socket.socket, theirs: socket.socket, work: Work, after_fork: Callable[[], None] | None
) -> None:
    """The prediction process, from the fork to its exit. (Coverage is not collected here.)"""
    code = 0
    try:
        ours.close()
        # The server decides when this process stops (it closes the socket, and this exits):
        # Ctrl+C or a SIGTERM sent to the whole process group must not end it mid-request.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # one core's worth: BLAS threads would spin beside the server for small products
        threadpool_limits(1)
        if after_fork is not None:
            after_fork()
        _serve(theirs, work)
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            log.exception("prediction process failed")
    finally:
        os._exit(code)  # no atexit handlers, no cleanup of the server's copy of its state


class ProcessStopped(ModelNotReady):
    """The prediction process went away with this job in it (the server retries elsewhere)."""


class PredictionProcess:
    """The server's side: hands jobs to the forked process and awaits their outcomes."""

    def __init__(
        self,
        work: Work,
        on_exit: Callable[[], None] | None = None,
        after_fork: Callable[[], None] | None = None,
    ) -> None:
        self._work = work
        self._on_exit = on_exit
        self._after_fork = after_fork
        self._stopping = False
        self._pid: int | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()

    @property
    def running(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        """Fork the prediction process (sharing the loaded model) and connect to it."""
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            _child(ours, theirs, self._work, self._after_fork)
        theirs.close()
        self._pid = pid
        reader, self._writer = await asyncio.open_connection(sock=ours)
        self._reader_task = asyncio.create_task(self._read(reader))
        log.info("prediction process %d started", pid)

    async def run(self, job: Any) -> Any:
        """The job's outcome, or the exception the work function raised for it."""
        if self._writer is None:
            raise ProcessStopped("The prediction process is not running; try again in a moment.")
        job_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = future
        self._writer.write(_frame((job_id, job)))
        try:
            return await future
        finally:
            self._pending.pop(job_id, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                job_id, outcome = pickle.loads(await reader.readexactly(size))  # noqa: S301
                future = self._pending.get(job_id)
                if future is None or future.done():  # its request was cancelled meanwhile
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self._stopping:
                log.error("prediction process %s stopped", self._pid)
        finally:
            self._disconnect()
            if not self._stopping and self._on_exit is not None:
                self._on_exit()

    def _disconnect(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    ProcessStopped("The prediction process stopped; try again in a moment.")
                )
        self._pending.clear()
        self._reap()

    def _reap(self) -> None:
        if self._pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            self._pid = None

    async def stop(self) -> None:
        """Close the connection; the prediction process sees it end, and exits."""
        self._stopping = True
        task = self._reader_task
        if self._writer is not None:
            self._writer.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
