"""Run a pure per-file function over many inputs: in-process, a process pool, or Ray tasks.

Filters and the resharder hand over one task per parquet file / shard range; results come back
in input order whatever the engine, so the output is identical across engines and worker counts.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

from harness.errors import HarnessError

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'ray[data]'"


def _local(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int) -> Iterator[Any]:
    if workers <= 1 or len(tasks) <= 1:
        yield from map(fn, tasks)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        yield from pool.map(fn, tasks)


def _ray(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int, address: str | None,
         max_retries: int) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise HarnessError(f"engine=ray needs Ray: {RAY_INSTALL}") from None
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else max(workers, 1),
                 include_dashboard=False, log_to_driver=False)
    remote = ray.remote(max_retries=max_retries, retry_exceptions=False)(fn)
    refs = [remote.remote(t) for t in tasks]
    for ref in refs:
        yield ray.get(ref)


def map_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], engine: str = "local", workers: int = 1,
              ray_address: str | None = None, max_retries: int = 3) -> Iterator[Any]:
    """Yield ``fn(task)`` for each task, in task order. ``fn`` must be a picklable top-level function."""
    tasks = list(tasks)
    runners = {"local": lambda: _local(fn, tasks, workers),
               "ray": lambda: _ray(fn, tasks, workers, ray_address, max_retries)}
    if engine not in runners:
        raise HarnessError(f"unknown engine {engine!r} (choose from: {', '.join(ENGINES)})")
    return runners[engine]()
