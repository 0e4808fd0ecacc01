"""Long work off the script thread: a job runs in its own thread, reports progress into a record a
page can poll, and survives the visitor clicking elsewhere (a Streamlit rerun stops the script,
never the job). One board per server holds the jobs by name and caps how many run at once.

>>> board = JobBoard(max_running=1)
>>> job = board.start("double", lambda progress: [progress(i + 1, 3) for i in range(3)] and 2 * 21)
>>> job.wait(5).state, job.result, job.done, job.total
('finished', 42, 3, 3)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Job", "JobBoard", "JobRefused"]

Progress = Callable[[int, int], None]


class JobRefused(RuntimeError):
    """A job could not start: the same name is already running, or the board is full."""


@dataclass
class Job:
    """One piece of work: ``state`` goes ``running`` → ``finished`` or ``failed`` (``error`` holds
    the exception); ``done``/``total`` is the latest progress."""

    name: str
    state: str = "running"
    done: int = 0
    total: int = 0
    result: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.time)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)

    def wait(self, timeout: float | None = None) -> "Job":
        self._finished.wait(timeout)
        return self


class JobBoard:
    """Named jobs of one server; at most ``max_running`` run at once (a small shared box should
    not build several caches together). ``keep_finished``: how many ended jobs (and their results)
    stay to be looked up, the oldest forgotten first; None keeps all."""

    def __init__(self, max_running: int = 1, keep_finished: int | None = None):
        self.max_running = max_running
        self.keep_finished = keep_finished
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def names(self) -> list[str]:
        """The jobs still on the board, oldest first."""
        return list(self._jobs)

    def running(self) -> list[Job]:
        return [job for job in self._jobs.values() if job.running]

    def start(self, name: str, work: Callable[[Progress], Any]) -> Job:
        """Run ``work(progress)`` in a daemon thread under ``name``; raises :class:`JobRefused`
        when ``name`` is running or ``max_running`` jobs are."""
        with self._lock:
            current = self._jobs.get(name)
            if current is not None and current.running:
                raise JobRefused(f"“{name}” is already being built ({current.done} / {current.total} images)")
            busy = self.running()
            if len(busy) >= self.max_running:
                raise JobRefused(f"another build is running (“{busy[0].name}”, {busy[0].done} / {busy[0].total} "
                                 "images); start yours when it has finished")
            job = Job(name)
            self._jobs.pop(name, None)   # a restarted job is the newest
            self._jobs[name] = job
            self._forget_old()
        threading.Thread(target=self._run, args=(job, work), name=f"featurelens-job-{name}", daemon=True).start()
        return job

    def _forget_old(self) -> None:
        if self.keep_finished is None:
            return
        ended = [name for name, job in self._jobs.items() if not job.running]
        for name in ended[:max(0, len(ended) - self.keep_finished)]:
            del self._jobs[name]

    @staticmethod
    def _run(job: Job, work: Callable[[Progress], Any]) -> None:
        try:
            job.result = work(job.progress)
            job.state = "finished"
        except BaseException as exc:  # the page shows it; the thread must not die silently
            job.error, job.state = exc, "failed"
        finally:
            job._finished.set()
