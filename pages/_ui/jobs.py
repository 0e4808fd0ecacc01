"""The server's background cache builds, shared by every page that starts one (Feature caches,
Chest X-ray): one board, one build at a time, each build's progress polled on the page."""

from __future__ import annotations

import streamlit as st

from featurelens.caches import CacheError, CacheMismatchError
from featurelens.config import hosted
from featurelens.hosting import JobBoard

from .shell import plain, visitor_text

MAX_SKIPPED_SHOWN = 10


@st.cache_resource(show_spinner=False)
def build_board() -> JobBoard:
    """The server's cache builds: one at a time (a small shared box), each in its own thread."""
    return JobBoard(max_running=1)


def build_status(name: str, running: bool, on_done=None) -> None:
    """The build's progress, polled every second while it runs (the page stays usable);
    ``on_done()`` runs once when a build that was running has finished (before the page reruns)."""

    @st.fragment(run_every=1.0 if running else None)
    def status() -> None:
        job = build_board().get(name)
        if job.running:
            fraction = job.done / job.total if job.total else 0.0
            st.progress(fraction, text=f"Building “{name}”: {job.done} / {job.total or '…'} images "
                                       "(you can use other pages meanwhile)")
            return
        if running:  # it finished since the last full run: refresh the list below too
            if on_done is not None:
                on_done()
            st.rerun(scope="app")
        if job.state == "failed":
            st.error(plain(failure_text(name, job.error)))
            return
        cache = job.result
        st.success(f"Cache **{name}** is ready: {cache.n_images} images.")
        if cache.skipped:
            lines = [f"- {plain(image_id)}: {plain(visitor_text(reason))}"
                     for image_id, reason in list(cache.skipped.items())[:MAX_SKIPPED_SHOWN]]
            more = len(cache.skipped) - len(lines)
            st.warning(f"{len(cache.skipped)} images could not be read and were left out of search:\n"
                       + "\n".join(lines) + (f"\n- … and {more} more" if more > 0 else ""))

    status()


def failure_text(name: str, error: BaseException) -> str:
    """What a visitor reads when a build fails; in hosted mode a clash with another cache never
    lists that cache's images (they may be another visitor's file names)."""
    if isinstance(error, CacheMismatchError) and hosted():
        return f"A different cache is already saved as “{name}”: choose another name."
    if isinstance(error, (CacheError, ValueError, OSError)):
        return visitor_text(str(error))
    return f"The build of “{name}” failed: {type(error).__name__}: {visitor_text(str(error))}"
