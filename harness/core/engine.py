"""Run a pure per-file function over many inputs: in-process, a process pool, or Ray tasks.

Filters and the resharder hand over one task per parquet file / shard range; results come back
in input order whatever the engine, so the output is identical across engines and worker counts.

Ray retries a task whose worker process died (``max_retries``), so a task function must be
idempotent: it writes its output under a name fixed by its task (a temporary name, then a
rename), never appends, so a retried task replaces, and never duplicates, what a dead attempt
left. Results travel through the object store: return counts and paths, not bulk data.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Sequence

from harness.core.errors import HarnessError

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'ray[default]'"
# Ray settings that keep a harness run local and quiet: no usage-stats call home, no dashboard.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


def _local(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int) -> Iterator[Any]:
    if workers <= 1 or len(tasks) <= 1:
        yield from map(fn, tasks)
        return
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            yield from pool.map(fn, tasks)
    except BrokenProcessPool:
        raise HarnessError(f"a worker process died while running {fn.__name__} (out of memory? killed?); "
                           "rerun the same command to resume, or use engine=ray, which retries lost tasks") from None


def ray_init(address: str | None, workers: int) -> None:
    """Connect to the cluster at ``address`` (``auto``, ``host:port``, ``ray://...``) or start a local one.

    A local cluster gets ``workers`` CPUs; an existing cluster keeps its own resources.
    """
    try:
        import ray
    except ImportError:
        raise HarnessError(f"engine=ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    if ray.is_initialized():
        return
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:  # "local": a new cluster even when `ray start` left one (or its stale address file) here
            ray.init(address="local", num_cpus=max(workers, 1), **kwargs)
    except ConnectionError as exc:
        raise HarnessError(f"cannot reach the Ray cluster at ray_address={address!r} ({exc}); "
                           "start one with `ray start --head` or leave ray_address unset") from None


def _ray_get(ray: Any, ref: Any) -> Any:
    """One result; a task's HarnessError reaches the user as itself, not as a Ray traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if hasattr(exc, "cause") else None
        if isinstance(cause, HarnessError):
            raise HarnessError(str(cause)) from None
        raise
    except ray.exceptions.WorkerCrashedError as exc:
        raise HarnessError(f"a Ray worker died on every retry of a task ({exc}); see the Ray logs") from None


def _ray(fn: Callable[[Any], Any], tasks: Sequence[Any], max_retries: int) -> Iterator[Any]:
    import ray

    remote = ray.remote(max_retries=max_retries, retry_exceptions=False)(fn)
    refs = [remote.remote(t) for t in tasks]
    done = 0
    try:
        for ref in refs:
            yield _ray_get(ray, ref)
            done += 1
    except BaseException:  # an error or an abandoned generator: stop the tasks still queued
        for ref in refs[done + 1:]:
            ray.cancel(ref)
        raise


def map_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], engine: str = "local", workers: int = 1,
              ray_address: str | None = None, max_retries: int = 3) -> Iterator[Any]:
    """Yield ``fn(task)`` for each task, in task order.

    ``fn`` must be a picklable top-level function; on Ray its module must be importable by the
    workers (the installed harness, or a plugin package installed on every node).
    """
    if engine not in ENGINES:
        raise HarnessError(f"unknown engine {engine!r} (choose from: {', '.join(ENGINES)})")
    tasks = list(tasks)
    if engine == "local":
        return _local(fn, tasks, workers)
    ray_init(ray_address, workers)  # fail at the call, not at the first result
    return _ray(fn, tasks, max_retries)
