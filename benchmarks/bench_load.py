"""Load on loopback: N sessions open the Layer hierarchy page, then all click its views.

Each session is a lightweight client of Streamlit's own protocol (protobuf ``BackMsg`` /
``ForwardMsg`` over ``ws://HOST:PORT/_stcore/stream``, as the browser speaks it), not a
browser, so the measured load is the server's: one asyncio process drives every session
(the last column shows it uses a few percent of a core).

A run
  1. opens the page in all N sessions at once, as a browser does on opening
     ``/layer_hierarchy`` (a ``rerun_script`` with the page name; "open p95" is that burst);
     the views are the page's ``featurelens.similarity_view`` element
     (``pages/_ui/similarity_view.py``: all four layers in one) in the deltas of that run;
  2. once every session is open, each clicks ``--clicks`` times at random points of random
     views, one click every ``--pace`` seconds from a random start (a person waits for the
     views before clicking again, so a click never starts before the previous one was
     answered); ``--pace 0`` is the saturation run. A click is what the browser sends: a
     fragment rerun (the views' ``st.fragment``) carrying the element's ``commit`` trigger
     (``json_trigger_value`` ``[{"event": "commit", "value": {x, y, image, view, stamp}}]`` on
     the element's trigger widget ``$$STREAMLIT_INTERNAL_KEY_<element id>__events``). Pointer
     moves send nothing: the browser draws them itself.

Measured per click: click → update, from sending the rerun to its ``script_finished``.
An *error* is an exception (or ``st.error``) element in a run, a run that ends in anything
but success, a dropped connection, or no answer within ``--timeout`` s. A *blank view* is
a view of the page (all of them were in the page's first run) that is missing from the
deltas of a click's run, or whose data holds no photo, feature grid or view. Server
RSS is sampled every 0.25 s (peak during the run, value after it). CPU while clicking is
in cores, for the server, this client and everything else on the machine: other work on
a shared box slows the server, so look at that column before comparing runs.

    python -m benchmarks.bench_load                       # 10, 20, 50 sessions at 2 s; 20 with no pause
    python -m benchmarks.bench_load --sessions 50 --saturation 0 --clicks 10 --pace 2
    python -m benchmarks.bench_load --server-env STREAMLIT_RUNNER_POST_SCRIPT_GC=false

Starts its own server (``streamlit run app.py`` on a free port, as the browser tests do),
or uses ``--url`` (then RSS needs ``--server-pid``). Timings only, no assertions; the last
line says whether the target (50 sessions: 0 errors, 0 blank views, click p95 < 1 s) is met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psutil
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from benchmarks.browser import browser_helpers
from featurelens.similarity import unpack_hover
from pages._ui.similarity_view import COMPONENT_NAME as VIEW_COMPONENT

ROOT = Path(__file__).resolve().parents[1]
PAGE = "layer_hierarchy"
TARGET_SESSIONS, TARGET_P95_S = 50, 1.0
FINISHED = ForwardMsg.ScriptFinishedStatus
OK_FINISH = {FINISHED.FINISHED_SUCCESSFULLY, FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


def trigger_widget_id(element_id: str) -> str:
    """The id of a Components v2 element's trigger widget, as the browser addresses it
    (streamlit/components/v2/bidi_component/main.py ``_make_trigger_id(id, "events")``)."""
    return f"$$STREAMLIT_INTERNAL_KEY_{element_id}__events"


@dataclass
class View:
    element_id: str
    fragment_id: str
    image_ok: bool


@dataclass
class Run:
    """What one script run sent: its views (by element id), errors, how it finished."""

    views: dict[str, View] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    finish: int | None = None


@dataclass
class Stats:
    open_s: list[float] = field(default_factory=list)
    click_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blank_views: int = 0
    clicks_sent: int = 0


class Session:
    """One browser tab's worth of protocol: a websocket, the page state a browser keeps."""

    def __init__(self, ws_url: str, timeout_s: float):
        self.ws_url, self.timeout_s = ws_url, timeout_s
        self.query_string = ""
        self.page_script_hash = ""
        self.views: dict[str, View] = {}
        self._ws = None
        self._runs: asyncio.Queue[Run] = asyncio.Queue()
        self._run = Run()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> "Session":
        self._ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                            open_timeout=self.timeout_s, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._reader:
            self._reader.cancel()
        if self._ws:
            await self._ws.close()

    async def _read(self) -> None:
        """Collect each run's deltas; a ``script_finished`` hands the run to the waiter."""
        try:
            async for raw in self._ws:
                msg = ForwardMsg.FromString(raw)
                kind = msg.WhichOneof("type")
                if kind == "new_session":
                    self.page_script_hash = msg.new_session.page_script_hash
                elif kind == "page_info_changed":
                    self.query_string = msg.page_info_changed.query_string
                elif kind == "delta":
                    self._on_delta(msg.delta)
                elif kind == "ref_hash":
                    self._run.errors.append("server sent a cached-message reference; this client caches none")
                elif kind == "script_finished":
                    self._run.finish = msg.script_finished
                    if msg.script_finished != FINISHED.FINISHED_EARLY_FOR_RERUN:
                        self._runs.put_nowait(self._run)
                    self._run = Run()
        except websockets.ConnectionClosed as exc:
            self._run.errors.append(f"connection closed: {exc}")
            self._runs.put_nowait(self._run)

    def _on_delta(self, delta) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "exception":
            self._run.errors.append(f"{element.exception.type}: {element.exception.message}"[:300])
        elif kind == "alert" and element.alert.format == element.alert.ERROR:
            self._run.errors.append(f"st.error: {element.alert.body}"[:300])
        elif kind == "bidi_component" and element.bidi_component.component_name == VIEW_COMPONENT:
            proto = element.bidi_component
            try:
                header, blob = unpack_hover(proto.bytes)
                photos, grids = header["assets"]["photos"], header["assets"]["grids"]
                image_ok = (len(header["views"]) > 0 and len(blob) > 100 and all(p["width"] > 0 and p["height"] > 0
                                                                                  for p in photos) and len(grids) > 0)
            except (ValueError, TypeError, AttributeError, KeyError):
                image_ok = False
            self._run.views[proto.id] = View(proto.id, delta.fragment_id, image_ok)

    async def _rerun(self, *, fragment_id: str = "", widgets: list[WidgetState] | None = None, page_name: str = "") -> Run:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.page_script_hash
        state.page_name = page_name
        state.fragment_id = fragment_id
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-US"
        for widget in widgets or []:
            state.widget_states.widgets.append(widget)
        await self._ws.send(msg.SerializeToString())
        return await asyncio.wait_for(self._runs.get(), self.timeout_s)

    async def open_page(self) -> Run:
        run = await self._rerun(page_name=PAGE)
        self.views = dict(run.views)
        return run

    async def click(self, rng: random.Random, stamp: int) -> Run:
        view = self.views[rng.choice(sorted(self.views))]
        value = {"x": rng.uniform(0.05, 0.95), "y": rng.uniform(0.05, 0.95), "image": 0,
                 "view": rng.randrange(4), "stamp": stamp}
        widget = WidgetState(id=trigger_widget_id(view.element_id),
                             json_trigger_value=json.dumps([{"event": "commit", "value": value}]))
        return await self._rerun(fragment_id=view.fragment_id, widgets=[widget])


def _check_run(run: Run, expected: set[str], stats: Stats) -> bool:
    """Count the run's errors and blank views; whether it was a clean update."""
    errors = list(run.errors)
    if run.finish not in OK_FINISH:
        errors.append(f"run finished with status {run.finish}")
    blank = sum(1 for vid in expected if vid not in run.views or not run.views[vid].image_ok)
    stats.errors.extend(errors)
    stats.blank_views += blank
    return not errors and not blank


async def _open(ws_url: str, index: int, timeout_s: float, stats: Stats) -> Session | None:
    """Connect and open the page; the open session, or None (its error counted)."""
    session = Session(ws_url, timeout_s)
    try:
        await session.__aenter__()
        t0 = time.perf_counter()
        run = await session.open_page()
        stats.open_s.append(time.perf_counter() - t0)
        if not session.views:
            stats.errors.append(f"session {index}: the page sent no views")
            stats.errors.extend(run.errors)
        else:
            _check_run(run, set(session.views), stats)
            return session
    except (asyncio.TimeoutError, TimeoutError):
        stats.errors.append(f"session {index}: the page did not open within {timeout_s:.0f} s")
    except (OSError, websockets.WebSocketException) as exc:
        stats.errors.append(f"session {index}: {type(exc).__name__}: {exc}")
    await session.__aexit__()
    return None


async def _click(session: Session, index: int, clicks: int, pace_s: float, stats: Stats) -> None:
    rng = random.Random(index)
    expected = set(session.views)
    try:
        next_click = time.perf_counter() + rng.uniform(0, pace_s)  # people do not click in step
        for n in range(clicks):
            await asyncio.sleep(max(0.0, next_click - time.perf_counter()))
            t_click = time.perf_counter()
            stats.clicks_sent += 1
            run = await session.click(rng, stamp=index * 1_000_000 + n)
            stats.click_s.append(time.perf_counter() - t_click)
            _check_run(run, expected, stats)
            next_click = t_click + pace_s
    except (asyncio.TimeoutError, TimeoutError):
        stats.errors.append(f"session {index}: no answer to a click within {session.timeout_s:.0f} s")
    except (OSError, websockets.WebSocketException) as exc:
        stats.errors.append(f"session {index}: {type(exc).__name__}: {exc}")


class RssSampler:
    """Peak and last RSS (MB) of the server process and its children, sampled in a thread."""

    def __init__(self, pid: int | None, period_s: float = 0.25):
        self.process = psutil.Process(pid) if pid else None
        self.period_s, self.peak, self.last = period_s, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def rss_mb(self) -> float:
        if self.process is None:
            return float("nan")
        try:
            procs = [self.process, *self.process.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs) / 2**20
        except psutil.Error:
            return float("nan")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.last = self.rss_mb()
            self.peak = max(self.peak, self.last)
            self._stop.wait(self.period_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.last = self.rss_mb()


class CpuMeter:
    """CPU used while clicking, in cores: by the server, by this client, and by anything else
    on the machine (other work on a shared box makes every number here worse)."""

    def __init__(self, pid: int | None):
        self.process = psutil.Process(pid) if pid else None
        self.server = self.client = self.other = float("nan")

    def _server_s(self) -> float:
        if self.process is None:
            return float("nan")
        try:
            return sum(sum(p.cpu_times()[:2]) for p in [self.process, *self.process.children(recursive=True)])
        except psutil.Error:
            return float("nan")

    @staticmethod
    def _busy_s() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def __enter__(self) -> "CpuMeter":
        self._t0, self._busy0 = time.perf_counter(), self._busy_s()
        self._server0, self._client0 = self._server_s(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._t0
        self.server = (self._server_s() - self._server0) / wall
        self.client = (time.process_time() - self._client0) / wall
        self.other = max(0.0, (self._busy_s() - self._busy0) / wall - self.server - self.client)


@dataclass
class Row:
    sessions: int
    pace: str
    stats: Stats
    wall_s: float
    rss_peak_mb: float
    rss_after_mb: float
    cpu: CpuMeter  #: cores used while clicking

    def cells(self) -> list[str]:
        clicks = np.asarray(self.stats.click_s) * 1000
        opens = np.asarray(self.stats.open_s)
        p50, p95 = (np.percentile(clicks, q) if len(clicks) else float("nan") for q in (50, 95))
        return [f"{self.sessions}", self.pace, f"{len(clicks)}", f"{p50:.0f}", f"{p95:.0f}",
                f"{p95 / 1000 / TARGET_P95_S:.2f}", f"{len(clicks) / self.wall_s:.1f}",
                f"{np.percentile(opens, 95) if len(opens) else float('nan'):.1f}",
                f"{len(self.stats.errors)}", f"{self.stats.blank_views}",
                f"{self.rss_peak_mb:.0f}", f"{self.rss_after_mb:.0f}",
                f"{self.cpu.server:.2f}/{self.cpu.client:.2f}/{self.cpu.other:.2f}"]


HEADER = ["sessions", "pace", "clicks", "p50 ms", "p95 ms", "p95÷1s", "clicks/s", "open p95 s",
          "errors", "blank views", "RSS peak MB", "RSS after MB", "cores server/client/other"]


async def run_load(ws_url: str, sessions: int, clicks: int, pace_s: float, timeout_s: float,
                   pid: int | None) -> Row:
    """All sessions open the page together; once every one is open, all of them click."""
    stats = Stats()
    with RssSampler(pid) as rss:
        opened = await asyncio.gather(*(_open(ws_url, i, timeout_s, stats) for i in range(sessions)))
        live = [(i, s) for i, s in enumerate(opened) if s is not None]
        t0 = time.perf_counter()
        with CpuMeter(pid) as cpu:
            await asyncio.gather(*(_click(s, i, clicks, pace_s, stats) for i, s in live))
        wall_s = time.perf_counter() - t0
        await asyncio.gather(*(s.__aexit__() for _, s in live))
    pace = f"{pace_s:g} s" if pace_s else "none"
    return Row(sessions, pace, stats, wall_s, rss.peak, rss.last, cpu)


def _server_pid(base_url: str) -> int | None:
    """The pid of the process listening on ``base_url``'s port."""
    port = urlsplit(base_url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return conn.pid
    return None


def print_table(rows: list[Row]) -> None:
    table = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    for n, cells in enumerate(table):
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 20, 50], help="paced runs, one per count")
    parser.add_argument("--saturation", type=int, default=20,
                        help="sessions of the run with no pause between clicks (0: none)")
    parser.add_argument("--clicks", type=int, default=10, help="clicks per session")
    parser.add_argument("--pace", type=float, default=2.0, help="seconds from one click to the next")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for any one answer")
    parser.add_argument("--url", help="an app already running (default: start one)")
    parser.add_argument("--server-pid", type=int, help="its process id, for RSS (with --url)")
    parser.add_argument("--server-env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="environment of the started server, e.g. STREAMLIT_RUNNER_POST_SCRIPT_GC=false")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.url:
            base_url, pid = args.url.rstrip("/"), args.server_pid
        else:
            env = dict(item.split("=", 1) for item in args.server_env)
            base_url = stack.enter_context(browser_helpers().streamlit_server(env=env or None))
            pid = _server_pid(base_url)
        ws_url = base_url.replace("http", "ws", 1) + "/_stcore/stream"
        idle_mb = RssSampler(pid).rss_mb()
        warm = asyncio.run(run_load(ws_url, 1, 2, 0.0, args.timeout, pid))  # loads the model and the photo
        if warm.stats.errors:
            sys.exit(f"warm-up session failed: {warm.stats.errors[:3]}")
        runs = [(n, args.pace) for n in args.sessions] + ([(args.saturation, 0.0)] if args.saturation else [])
        rows = []
        for sessions, pace in runs:
            rows.append(asyncio.run(run_load(ws_url, sessions, args.clicks, pace, args.timeout, pid)))
            print(f"... {sessions} sessions, pace {pace:g} s: done in {rows[-1].wall_s:.0f} s", file=sys.stderr)

    cores = psutil.cpu_count()
    print(f"Layer hierarchy (4 views), {args.clicks} clicks per session; server and this client on one "
          f"{cores}-core machine; sessions driven by Streamlit's websocket protocol (no browser). "
          f"Server RSS idle {idle_mb:.0f} MB, after warm-up {warm.rss_after_mb:.0f} MB.")
    print_table(rows)
    for row in rows:
        for error in sorted(set(row.stats.errors))[:5]:
            print(f"  {row.sessions} sessions, pace {row.pace}: {error}")
    target = next((r for r in rows if r.sessions == TARGET_SESSIONS and r.pace != "none"), None)
    if target is not None:
        p95 = np.percentile(target.stats.click_s, 95) if target.stats.click_s else float("inf")
        met = not target.stats.errors and not target.stats.blank_views and p95 < TARGET_P95_S
        print(f"target ({TARGET_SESSIONS} sessions: 0 errors, 0 blank views, click p95 < {TARGET_P95_S:.0f} s): "
              f"{'met' if met else 'MISSED'} (p95 {p95 * 1000:.0f} ms, {len(target.stats.errors)} errors, "
              f"{target.stats.blank_views} blank views)")


if __name__ == "__main__":
    main()
