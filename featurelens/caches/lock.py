"""One build per cache at a time: a lock key in the cache's own store, ``.featurelens-build.lock``.

A build or repair creates the key atomically (the store's exclusive create) holding JSON
``{pid, host, started, heartbeat, token}`` and deletes it when it ends, also on errors. A second
build of the same cache meanwhile gets :class:`CacheBusyError` naming the owner. A lock left by a
build that died (``kill -9``, power loss) is *stale* and taken over with a warning:

* same host: the owner's pid is no longer running;
* another host (a shared folder): its heartbeat, refreshed about every minute while the build
  runs, is older than :data:`STALE_AFTER_S` (pids of other machines cannot be checked);
* unreadable lock contents.

The create is atomic on a folder; stores opened through fsspec (``s3://…``) check, then write.
In a cluster build only the client (the process that called :func:`~featurelens.caches.build_cache`)
holds the lock; workers just write chunks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Iterator

from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from .errors import CacheBusyError, CacheLockWarning

__all__ = ["LOCK_KEY", "STALE_AFTER_S", "BuildLock", "LockOwner", "build_lock", "lock_owner", "running_build"]

LOCK_KEY = ".featurelens-build.lock"
"""The lock's key in the cache's store (a file in a cache folder)."""

STALE_AFTER_S = 30 * 60
"""A lock from another host whose heartbeat is older than this is stale."""

_HEARTBEAT_S = 60.0


@dataclass(frozen=True)
class LockOwner:
    """Who holds a cache's build lock."""

    pid: int
    host: str
    started: str    # ISO UTC
    heartbeat: str  # ISO UTC, refreshed while the build runs
    token: str      # unique per build

    def describe(self) -> str:
        here = " (this process)" if self.is_this_process else ""
        return f"pid {self.pid} on {self.host} since {self.started}{here}"

    @property
    def is_this_process(self) -> bool:
        return self.pid == os.getpid() and self.host == socket.gethostname()


def lock_owner(store: Store) -> LockOwner | None:
    """The holder of ``store``'s build lock, or None when no build holds it (or it cannot be read)."""
    raw = _read(store)
    return None if raw is None else _parse(raw)


def running_build(store: Store) -> LockOwner | None:
    """The live build holding ``store``'s lock (None when there is none, or only a stale lock)."""
    try:
        owner = lock_owner(store)
    except Exception:  # a store that cannot even be read: no build runs there
        return None
    return owner if owner is not None and _stale_reason(owner) is None else None


class BuildLock:
    """A held lock; :meth:`touch` refreshes its heartbeat (cheap: writes at most once a minute)."""

    def __init__(self, store: Store, owner: LockOwner, where: str):
        self._store, self.owner, self._where = store, owner, where
        self._touched = time.monotonic()

    def touch(self) -> None:
        """Refresh the heartbeat; raise :class:`CacheBusyError` if another build took the lock over."""
        if time.monotonic() - self._touched < _HEARTBEAT_S:
            return
        current = lock_owner(self._store)
        if current is None or current.token != self.owner.token:
            taker = current.describe() if current else "nobody (it was deleted)"
            raise CacheBusyError(f"the build lock of {self._where} is now held by {taker}: another build took it "
                                 "over, so this one stops; run the build again once that one has finished")
        self.owner = LockOwner(**{**asdict(self.owner), "heartbeat": _now()})
        sync(self._store.set(LOCK_KEY, _buffer(self.owner)))
        self._touched = time.monotonic()

    def release(self) -> None:
        """Delete the lock if it is still ours."""
        current = lock_owner(self._store)
        if current is not None and current.token == self.owner.token:
            sync(self._store.delete(LOCK_KEY))


@contextlib.contextmanager
def build_lock(store: Store, where: str) -> Iterator[BuildLock]:
    """Hold ``store``'s build lock for the ``with`` block; released on exit, also on errors.

    Raises:
        CacheBusyError: a live build holds it (the message names its pid, host and start).
    """
    lock = _acquire(store, where)
    try:
        yield lock
    finally:
        lock.release()


def _acquire(store: Store, where: str) -> BuildLock:
    mine = LockOwner(pid=os.getpid(), host=socket.gethostname(), started=_now(), heartbeat=_now(),
                     token=uuid.uuid4().hex)
    taken_from: tuple[LockOwner, str] | None = None
    for _ in range(5):
        sync(store.set_if_not_exists(LOCK_KEY, _buffer(mine)))
        raw = _read(store)
        if raw is not None and _parse(raw).token == mine.token:
            if taken_from is not None:
                warnings.warn(f"took over the build lock of {where} from {taken_from[0].describe()}: "
                              f"{taken_from[1]}; this build continues that one", CacheLockWarning, stacklevel=4)
            return BuildLock(store, mine, where)
        if raw is None:
            continue  # released in between: try again
        owner = _parse(raw)
        reason = _stale_reason(owner)
        if reason is None:
            raise CacheBusyError(
                f"the cache at {where} is being built by {owner.describe()}: one build per cache at a time. Wait "
                "for that build to finish, then run this one again (it reuses the finished chunks), or build "
                f"into another --out path. If no such build is running, delete the lock file {LOCK_KEY} in {where}")
        if _read(store) == raw:  # still the stale one: delete it, then race fairly for a new one
            sync(store.delete(LOCK_KEY))
        taken_from = (owner, reason)
    raise CacheBusyError(f"could not take the build lock of {where}: other builds keep taking it; run again later")


def _stale_reason(owner: LockOwner) -> str | None:
    """Why the lock's owner is gone, or None while it may still be building."""
    if owner.pid < 0:
        return "its contents could not be read"
    if owner.host == socket.gethostname():
        return None if _pid_alive(owner.pid) else f"pid {owner.pid} is no longer running"
    try:
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(owner.heartbeat)).total_seconds()
    except (TypeError, ValueError):
        return "its heartbeat time could not be read"
    if age > STALE_AFTER_S:
        return f"no heartbeat from {owner.host} for {age / 60:.0f} minutes"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def _read(store: Store) -> bytes | None:
    buffer = sync(store.get(LOCK_KEY, prototype=default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


def _parse(raw: bytes) -> LockOwner:
    """The owner recorded in a lock; unreadable contents give pid -1 (stale)."""
    try:
        data = json.loads(raw)
        return LockOwner(pid=int(data["pid"]), host=str(data["host"]), started=str(data["started"]),
                         heartbeat=str(data.get("heartbeat", data["started"])), token=str(data["token"]))
    except (ValueError, TypeError, KeyError):
        return LockOwner(pid=-1, host="?", started="?", heartbeat="?", token="")


def _buffer(owner: LockOwner):  # -> zarr Buffer
    return default_buffer_prototype().buffer.from_bytes(json.dumps(asdict(owner)).encode())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
