"""Running a cache build on a Dask cluster: connect, one task per chunk, wait with progress.

``dask`` and ``distributed`` are optional (``pip install featurelens[cluster]``) and imported
only inside these functions. The chunk work itself lives in :mod:`featurelens.caches.build`,
which passes its per-chunk task function in (so this module does not import the build)::

    with cluster_client(workers=2) as client:
        build_cache("big.zarr", images, "efficientnet_lite0", ["stage5"], dataset_name="big", client=client)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import uuid
from typing import Any, Callable, Iterator, Sequence

from ..models import FeatureModel, load_model
from .errors import CacheError

__all__ = ["cluster_client", "connect_scheduler", "worker_model"]

_MODELS: dict[tuple[str, str], FeatureModel] = {}  # per worker process: (registry name, device) → model


def _distributed() -> Any:
    """The ``distributed`` module, or a :class:`CacheError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise CacheError("building on a cluster needs Dask: pip install 'featurelens[cluster]' "
                         "(dask[distributed])") from exc
    return distributed


def connect_scheduler(address: str, timeout_s: float = 10.0) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (e.g. ``tcp://host:8786``).

    Raises:
        CacheError: Dask is not installed, or the scheduler does not answer within ``timeout_s`` (naming it).
    """
    distributed = _distributed()
    try:
        return distributed.Client(address, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CacheError(f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s "
                         f"({type(exc).__name__}); check the address and that the scheduler is running") from exc


@contextlib.contextmanager
def cluster_client(scheduler: str | None = None, workers: int | None = None, *,
                   connect_timeout: float = 10.0) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler``, or to a new local cluster of ``workers`` processes.

    Args:
        scheduler: a scheduler address such as ``"tcp://10.0.0.5:8786"``.
        workers: start a ``LocalCluster`` of this many single-threaded worker processes instead.
        connect_timeout: seconds to wait for the scheduler before giving up.

    Yields:
        The client; it (and a cluster started here) is closed on exit.

    Raises:
        CacheError: Dask is not installed, both or neither of ``scheduler``/``workers`` were
            given, ``workers`` is not positive, or the scheduler cannot be reached (naming it).
    """
    if (scheduler is None) == (workers is None):
        raise CacheError("pass either a scheduler address or a number of local workers, not both or neither")
    distributed = _distributed()
    cluster, environ, changed = None, dict(os.environ), set()
    if workers is not None:
        if not isinstance(workers, int) or workers < 1:
            raise CacheError(f"the number of workers must be a positive integer, got {workers!r}")
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")  # any free port, no warning
        client = distributed.Client(cluster)
        changed = {key for key in {*environ, *os.environ} if environ.get(key) != os.environ.get(key)}
        _restore_environ(environ, changed)
    else:
        client = connect_scheduler(scheduler, connect_timeout)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
            _restore_environ(environ, changed)


def _restore_environ(environ: dict[str, str], keys: set[str]) -> None:
    """Undo the variables ``keys`` a ``LocalCluster`` set in this process for its workers (``OMP_NUM_THREADS=1``
    and others), which would otherwise leak into later subprocesses and change their torch threads."""
    for key in keys:
        if key in environ:
            os.environ[key] = environ[key]
        else:
            os.environ.pop(key, None)


def worker_model(name: str, torch_threads: int | None = None) -> FeatureModel:
    """The registry model ``name``, loaded once per worker process (on cuda when the worker has it, else cpu).

    ``torch_threads`` sets this process's torch CPU threads: CPU convolutions round differently
    with different thread counts, so a build passes the client's count to get the same bytes.
    """
    import torch

    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    key = (name, device)
    if key not in _MODELS:
        _MODELS[key] = load_model(name, device=device)
    return _MODELS[key]


def _check_picklable(images: Sequence[Any], first: int) -> None:
    """Refuse images a task cannot carry to a worker, naming the first such image."""
    for offset, image in enumerate(images):
        try:
            pickle.dumps(image)
        except Exception as exc:
            raise CacheError(f"image #{first + offset} ({getattr(image, 'id', image)!r}) cannot be sent to Dask "
                             f"workers ({type(exc).__name__}: {exc}); a cluster build needs picklable images "
                             "such as featurelens.images.folder_images(DIR)") from exc


def run_chunk_tasks(client: Any, task: Callable[..., int], chunks: Sequence[tuple[int, int, int]],
                    images: Sequence[Any], task_args: tuple[Any, ...], *, done: int, total: int,
                    report: Callable[[int, int], None]) -> None:
    """Run ``task(index, images[start:stop], *task_args)`` for each ``(index, start, stop)`` on the cluster.

    Each task writes chunk ``index`` into the shared store and returns its image count; as tasks
    finish, ``report(done + images finished, total)`` is called on this (the client's) thread.

    Raises:
        CacheError: a task failed (its error is chained), or the cluster went away; chunks
            finished before that are kept, so running the build again resumes it.
    """
    distributed = _distributed()
    futures, run = [], uuid.uuid4().hex[:12]  # a fresh key per build: never reuse another build's results
    for index, start, stop in chunks:
        part = list(images[start:stop])
        _check_picklable(part, start)
        futures.append(client.submit(task, index, part, *task_args, key=f"featurelens-chunk-{index}-{run}"))
    try:
        for future in distributed.as_completed(futures):
            done += future.result()
            report(done, total)
    except CacheError:
        raise
    except Exception as exc:
        with contextlib.suppress(Exception):
            client.cancel(futures)
        raise CacheError(f"the cluster build stopped ({type(exc).__name__}: {exc}); the chunks finished so far "
                         "are kept: run the same build again to resume") from exc
