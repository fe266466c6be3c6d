"""One writer per feature store: an OS file lock on ``DIR/.lock``.

A writer holds the OS lock of :mod:`filelock` (``flock`` on POSIX, ``msvcrt`` on
Windows) on ``DIR/.lock`` for its whole run, taken without waiting; a second writer is refused at once with :class:`StoreLockedError`
naming the holder (PID, host, start time -- written into the file once the
lock is held). The kernel drops an flock when its process dies, even by
SIGKILL, so a killed run never leaves a stale lock behind: the next writer
takes it and resumes. (A PID file would need guessing whether its PID is
still alive, and on which host.)

Details:

* flock belongs to an *open file description*: a second ``StoreLock`` of the
  same directory in the same process is refused too (threads sharing one
  ``StoreLock`` object are not told apart). A child forked without exec
  (multiprocessing's 'fork') shares the lock and keeps it while it lives.
* The holder removes ``.lock`` on a clean release; after a kill it stays,
  holding a dead PID, and is simply taken over. It is never store data:
  :func:`~vggkit.features.store.load_features` reads only the files the
  manifest names, and readers take no lock.
* Only rank 0 of a distributed run locks (see
  :func:`vggkit.features.runner.writer_lock`); the ranks of one run share the
  store by design.
* On a filesystem that refuses locks (e.g. NFS without a lock daemon: ENOLCK),
  the lock degrades to a warning and no protection: make sure only one run
  writes a store there.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import warnings
from datetime import datetime
from types import TracebackType
from typing import Any

from filelock import FileLock, Timeout

from vggkit.features.store import LOCK_FILE, StoreError

#: errnos of a filesystem that cannot lock at all (as opposed to "held by another")
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, getattr(errno, "ENOTSUP", -1)}


class StoreLockedError(StoreError):
    """Another process is writing the feature store.

    Attributes:
        holder: the holder's record (``pid``, ``host``, ``started``), or None
            when it could not be read.
    """

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder


def holder_record() -> dict[str, Any]:
    """What this process writes into a lock it holds."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds")}


def describe_holder(holder: dict[str, Any] | None) -> str:
    """'PID 1234 on host H since TIME', or 'another process' when unknown."""
    if not holder or "pid" not in holder:
        return "another process"  # it has the lock but has not written its record yet
    return (f"PID {holder['pid']} on host {holder.get('host', '?')} "
            f"since {holder.get('started', '?')}")


class StoreLock:
    """The writer lock of the store directory ``root``, as a context manager.

    ``with StoreLock(root): ...`` creates ``root`` if needed, takes the lock or
    raises :class:`StoreLockedError` at once, and releases it on exit. The OS lock
    is :mod:`filelock`'s (as the weights cache's); this class adds what a refused
    writer is told: who holds the store, since when.

    Args:
        root: the store directory.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.path = os.path.join(self.root, LOCK_FILE)
        self._lock: FileLock | None = None
        self._made_root = False  # remove the directory again if the run leaves it empty

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self) -> StoreLock:
        """Take the lock (never waits).

        Raises:
            StoreLockedError: another open of the lock holds it.
            StoreError: ``root`` cannot hold a lock file (not a writable directory).
        """
        if self._lock is not None:
            raise RuntimeError(f"the lock '{self.path}' is already held by this StoreLock")
        self._make_root()
        # one lock per StoreLock (not per path or thread): a second open in this process is
        # refused as another process's is; the record is written once the lock is ours
        lock = FileLock(self.path, timeout=0, thread_local=False, is_singleton=False,
                        fallback_to_soft=False, on_acquired=_write_record)
        try:
            lock.acquire()
        except Timeout:
            holder = _read_record(self.path)
            raise StoreLockedError(
                f"feature store '{self.root}' is being written by {describe_holder(holder)} "
                f"(its lock {self.path} is held); wait for it to finish, or choose another "
                "--out", holder) from None
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                self._warn_unlocked(f"its filesystem cannot lock files ({exc.strerror})")
                return self
            raise StoreError(f"cannot lock '{self.path}': {exc.strerror or exc}") from exc
        self._lock = lock
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op when not held).

        A directory this lock created is removed too if nothing else was
        written into it (e.g. the run failed on a bad ``--data-root``).
        """
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            # unlinked while still locked, so nobody takes the lock on a file that is about
            # to disappear (filelock retries a lock taken on an unlinked file)
            os.unlink(self.path)
            if self._made_root:
                os.rmdir(self.root)  # fails, harmlessly, unless empty
        except OSError:
            pass  # removal is tidiness only; releasing below is what frees the store
        finally:
            lock.release()

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _make_root(self) -> None:
        try:
            if not os.path.isdir(self.root):
                os.makedirs(self.root, exist_ok=True)
                self._made_root = True
        except OSError as exc:
            raise StoreError(f"cannot create the lock file '{self.path}' of the feature store: "
                             f"{exc.strerror or exc}; --out must be a writable directory") from exc

    def _warn_unlocked(self, why: str) -> None:
        warnings.warn(f"feature store '{self.root}' is not locked against a second writer: "
                      f"{why}; make sure only one run writes it at a time", stacklevel=3)


def _write_record(fd: int) -> None:
    # written only now that the lock is ours: a refused writer reads the holder's
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder_record(), sort_keys=True) + "\n").encode("utf-8"), 0)


def _read_record(path: str) -> dict[str, Any] | None:
    """The holder's record in the lock file, or None while it is empty or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.loads(f.read(4096))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
