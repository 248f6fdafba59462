"""The example plugin package installs with pip and is found by name through its entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.pool.uids import read_subset
from test_filter_support import expected, make_pool

EXAMPLE = Path(__file__).resolve().parent.parent / "tracks" / "filtering" / "examples" / "caption_filters"
DIST = "datacomp-harness-example-caption-filters"


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed():
    res = pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-e", str(EXAMPLE))
    assert res.returncode == 0, res.stderr
    yield
    pip("uninstall", "-y", "-q", DIST)


def test_example_package_found_by_entry_point_name(installed, tmp_path):
    texts = ["one", "two words here", "a caption with 7 digits", "a much longer caption with many words in it", "x y"]
    root = make_pool(tmp_path / "p", {"text": texts}, files=2)
    out = tmp_path / "s.npy"
    res = subprocess.run([sys.executable, "-m", "harness", "filter", f"pool_dir={root}", "filter=caption_length",
                          "filter.top_k=2", f"out={out}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert np.array_equal(read_subset(out), expected(root, [False, False, True, True, False]))
    code = ("from harness.filters import available, run_filter; assert 'no_digits' in available(); "
            f"print(run_filter({str(root)!r}, 'no_digits', {str(tmp_path / 'd.npy')!r})['n_kept'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "4"
