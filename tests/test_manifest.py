import subprocess
import sys

import pytest

from harness.core.errors import HarnessError
from harness.core.manifest import atomic_dir, fingerprint, stage_done, write_manifest


def test_atomic_dir_removes_temps_of_dead_processes_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.tmp-{dead.stdout.strip()}"
    stale.mkdir()
    (stale / "half.bin").write_bytes(b"x")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "done.txt").write_text("ok")
    assert not stale.exists()
    assert (tmp_path / "out" / "done.txt").read_text() == "ok"


def test_atomic_dir_failure_leaves_nothing_and_refuses_non_empty(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "x").write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("keep")
    with pytest.raises(HarnessError, match="exists and is not empty"):
        with atomic_dir(tmp_path / "out"):
            pass
    assert (tmp_path / "out" / "f").read_text() == "keep"


def test_stage_done_skips_same_refuses_other_and_overwrite_clears(tmp_path):
    fp = fingerprint({"pool": "a"}, {"k": 1})
    write_manifest(tmp_path, "stage", fp, {"pool": "a"}, {"k": 1})
    assert stage_done(tmp_path, fp)
    other = fingerprint({"pool": "b"}, {"k": 1})
    with pytest.raises(HarnessError, match="holds a finished stage with other inputs"):
        stage_done(tmp_path, other)
    assert not stage_done(tmp_path, other, overwrite=True)
    assert list(tmp_path.iterdir()) == []
