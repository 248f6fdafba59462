"""The engine on its own: ordered results, clear errors, and a real local Ray cluster (2 CPUs)
started once for this module, on which a worker killed mid-task is retried without duplicates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.engine import map_tasks
from harness.core.errors import HarnessError


def square_after_write(task: tuple[str, int]) -> int:
    """An idempotent task: writes its own file (temp name, then rename) and returns a value."""
    out_dir, i = task
    tmp = Path(out_dir) / f".{i}.tmp"
    tmp.write_text(str(i * i))
    tmp.replace(Path(out_dir) / f"{i}.txt")
    return i * i


def die_once_then_write(task: tuple[str, str, int]) -> int:
    """Kill this worker process mid-task the first time (after a partial write), succeed on retry."""
    marker, out_dir, i = task
    tmp = Path(out_dir) / f".{i}.tmp"
    tmp.write_text("partial")
    if i == 3 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)
    tmp.write_text(str(i * i))
    tmp.replace(Path(out_dir) / f"{i}.txt")
    return i * i


def refuse_seven(i: int) -> int:
    if i == 7:
        raise HarnessError(f"task {i}: bad input row 7")
    return i


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize("workers", [1, 2])
def test_local_is_ordered(tmp_path, workers):
    tasks = [(str(tmp_path), i) for i in range(9)]
    assert list(map_tasks(square_after_write, tasks, workers=workers)) == [i * i for i in range(9)]
    assert _listing(tmp_path) == sorted(f"{i}.txt" for i in range(9))


def test_unknown_engine():
    with pytest.raises(HarnessError, match=r"unknown engine 'spark' \(choose from: local, ray\)"):
        map_tasks(refuse_seven, [1], engine="spark")


def test_local_worker_death_is_a_clear_error(tmp_path):
    tasks = [(str(tmp_path / "marker"), str(tmp_path), i) for i in range(5)]
    with pytest.raises(HarnessError, match="worker process died while running die_once_then_write"):
        list(map_tasks(die_once_then_write, tasks, workers=2))


def test_ray_missing_gives_install_line(tmp_path):
    """Ray absent from the interpreter (import blocked), engine=ray: one line with the install command."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from harness.core.engine import map_tasks\n"
            "from harness.core.errors import HarnessError\n"
            "try:\n    map_tasks(abs, [1], engine='ray')\n"
            "except HarnessError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "engine=ray needs Ray, which is not installed: pip install 'ray[default]'"


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with 2 CPUs for this module; test functions travel by value."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    from harness.core.engine import ray_init

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray_init(None, workers=2)
    yield ray  # left running: the next Ray test module reuses it; Ray stops it when pytest exits


def test_ray_matches_local(tmp_path, ray_cluster):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    local = list(map_tasks(square_after_write, [(str(tmp_path / "a"), i) for i in range(20)], workers=2))
    on_ray = list(map_tasks(square_after_write, [(str(tmp_path / "b"), i) for i in range(20)], engine="ray"))
    assert on_ray == local == [i * i for i in range(20)]
    assert _listing(tmp_path / "a") == _listing(tmp_path / "b")
    assert ray_cluster.cluster_resources()["CPU"] == 2


def test_ray_worker_crash_is_retried_without_duplicates(tmp_path, ray_cluster):
    marker = tmp_path / "died"
    out = tmp_path / "out"
    out.mkdir()
    results = list(map_tasks(die_once_then_write, [(str(marker), str(out), i) for i in range(6)], engine="ray"))
    assert marker.exists(), "the task never killed its worker"
    assert results == [i * i for i in range(6)]
    assert _listing(out) == sorted(f"{i}.txt" for i in range(6))
    assert (out / "3.txt").read_text() == "9"


def test_ray_task_error_reaches_user_as_one_line(ray_cluster):
    with pytest.raises(HarnessError) as info:
        list(map_tasks(refuse_seven, range(10), engine="ray"))
    assert str(info.value) == "task 7: bad input row 7"
