"""Write a file atomically, one writer at a time: what every `FORMAT:PATH` and `-o FILE` goes through.

A reader (node_exporter's textfile collector, a CI step, a person) sees either the previous complete file or the
new complete file, never a part: the text goes to a temporary file in the same directory (created with O_EXCL,
a name no reader picks up: node_exporter reads only `*.prom`), is fsync'd, renamed over PATH, and the directory
is fsync'd. On any failure (missing or unwritable directory, disk full, a signal) the temporary file is removed
and PATH is left as it was.

Two tcpaudit processes writing the same PATH would each win a rename in turn; instead the second one is refused:
a writer holds an flock(2) on `.NAME.lock` beside PATH (a running `tcpaudit agent` holds it for its whole life,
a one-shot write for the write). The lock file is removed by whoever releases it; a lock left by a killed
process holds no lock, because flock(2) locks die with their process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


class OutputError(Exception):
    """PATH could not be written; the message is one line and names PATH. PATH is unchanged."""


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such directory"
    if exc.errno == errno.ENOSPC:
        return "no space left on device (the previous file is kept)"
    return exc.strerror or str(exc)


def lock_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


class WriterLock:
    """An exclusive, non-blocking lock on writing PATH. `acquire()` raises OutputError when another process
    holds it, naming that process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_file = lock_path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot write {self.path}: {_describe(exc)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    who = f" (pid {holder})" if holder else ""
                    raise OutputError(
                        f"cannot write {self.path}: another tcpaudit{who} is writing it (lock {self.lock_file})"
                    ) from None
                raise OutputError(f"cannot write {self.path}: {_describe(exc)}") from None
            # The holder we waited for may have unlinked the file we locked: lock the one on disk.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_file)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _maybe_locked(path: Path, lock: WriterLock | None) -> Iterator[None]:
    if lock is not None and lock.held:
        yield
        return
    with WriterLock(path):
        yield


def write_atomic(path: str | Path, data: str | bytes, *, lock: WriterLock | None = None, mode: int = 0o644) -> None:
    """Replace PATH with `data` atomically (see the module doc). `lock`: a WriterLock the caller already holds
    for PATH (the agent's); without one, the lock is taken for this write."""
    p = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    directory = p.parent if str(p.parent) else Path(".")
    with _maybe_locked(p, lock):
        tmp = directory / f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise OutputError(f"cannot write {p}: {_describe(exc)}") from None
        try:
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, p)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise OutputError(f"cannot write {p}: {_describe(exc)}") from None
        except BaseException:  # a signal (SIGTERM in the agent) mid-write: PATH stays as it was
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable; a directory may refuse O_RDONLY fsync
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
