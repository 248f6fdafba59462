"""Benchmark integrity (issue 16): participants' filters cannot reach the world's truth or eval
data, eligibility is the harness's decision, a filter's identity covers its whole source closure,
and plugin failures keep their traceback on request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core.errors import HarnessError
from harness.filters import run_filter
from harness.filters.api import read_pool_info
from harness.filters.guard import truth_file
from harness.filters.registry import identity
from harness.pool.uids import pairs_to_hex, read_subset
from test_filter_support import expected, make_pool, pool_uids


@pytest.fixture
def world(tmp_path: Path) -> dict:
    """A pool laid out like the tiny world: truth beside the eval suite, recorded in pool.json."""
    pool = tmp_path / "world" / "pool"
    evals = tmp_path / "world" / "evalsets"
    rel = {"path": "../evalsets/truth/ground_truth.parquet", "eval_dir": "../evalsets"}
    make_pool(pool, {"text": ["a photo of a dog"] * 8}, files=2, meta={"name": "t", "truth": rel})
    bad = np.array([0, 1, 0, 0, 0, 1, 0, 1], bool)
    (evals / "truth").mkdir(parents=True)
    (evals / "tiny_objects" / "test").mkdir(parents=True)
    (evals / "tiny_objects" / "test" / "nshards.txt").write_text("1\n")
    pq.write_table(pa.table({"uid": list(pairs_to_hex(pool_uids(pool))), "defect": ["x"] * 8, "mismatched": bad}),
                   evals / "truth" / "ground_truth.parquet")
    return {"pool": pool, "evals": evals, "truth": evals / "truth" / "ground_truth.parquet", "bad": bad}


def _plugin(tmp_path: Path, body: str, prepare: str = "", top: str = "", name: str = "cheat.py") -> str:
    """A plugin file whose module level runs ``top``, its prepare ``prepare``, its batches ``body``."""
    def block(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip() or "pass", "    ")

    path = tmp_path / "plugins" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([
        "import os", "from pathlib import Path", "import numpy as np", "import pyarrow.parquet as pq",
        "from harness.filters import pool_filter", textwrap.dedent(top).strip(), "",
        "def _prepare(info, params):", block(prepare), "    return params", "",
        '@pool_filter(columns=["uid"], prepare=_prepare)', "def cheat(batch, features):", block(body),
        "    return np.ones(batch.num_rows, bool)", ""]))
    return f"{path}:cheat"


ATTEMPTS = {
    "open by path in a batch": ("open(TRUTH, 'rb').read()", "", ""),
    "pyarrow read_table in a batch": ("pq.read_table(TRUTH)", "", ""),
    "pyarrow ParquetFile in prepare": ("", "pq.ParquetFile(TRUTH)", ""),
    "numpy fromfile in prepare": ("", "np.fromfile(TRUTH, dtype=np.uint8)", ""),
    "walking up from PoolInfo.root": ("", "next(info.root.parent.rglob('ground_truth.parquet')).read_bytes()", ""),
    "listing the eval suite": ("", "os.listdir(info.root.parent / 'evalsets')", ""),
    "eval data by path": ("", "open(info.root.parent / 'evalsets/tiny_objects/test/nshards.txt').read()", ""),
    "at import time": ("", "", "open(TRUTH, 'rb').read()"),
    "a program that reads it": ("", "os.system('cat ' + TRUTH)", ""),
}


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
def test_plugin_cannot_open_the_truth_and_writes_no_subset(world, tmp_path, attempt):
    body, prepare, top = ATTEMPTS[attempt]
    top = f"TRUTH = {str(world['truth'])!r}\n" + top
    ref = _plugin(tmp_path, body, prepare, top)
    out = tmp_path / "s.npy"
    with pytest.raises(HarnessError, match=r"refused by the harness guard|may not start programs") as err:
        run_filter(world["pool"], ref, out)
    msg = str(err.value)
    if "programs" not in msg:
        assert ("ground_truth.parquet" in msg or "evalsets" in msg) and "may not open" in msg
    assert "no subset was written" in msg
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_a_caught_refusal_still_writes_no_subset(world, tmp_path):
    top = f"TRUTH = {str(world['truth'])!r}"
    body = """\
        try:
            pq.read_table(TRUTH)
        except PermissionError:
            pass
    """
    out = tmp_path / "s.npy"
    with pytest.raises(HarnessError, match=r"may not open .*ground_truth\.parquet.*no subset was written"):
        run_filter(world["pool"], _plugin(tmp_path, body, top=top), out)
    assert not out.exists()


def test_pool_info_carries_no_truth_location(world):
    info = read_pool_info(world["pool"])
    assert info.truth is None and "truth" not in info.meta
    assert truth_file(world["pool"]) == world["truth"].resolve()


def test_plugin_reading_only_the_pool_runs_under_the_guard(world, tmp_path):
    ref = _plugin(tmp_path, "pq.read_table(sorted(Path(POOL).glob('metadata/*.parquet'))[0])",
                  top=f"POOL = {str(world['pool'])!r}")
    doc = run_filter(world["pool"], ref, tmp_path / "s.npy")
    assert doc["n_kept"] == 8 and doc["eligible"] is True


def test_oracle_reads_the_truth_beside_the_eval_suite(world, tmp_path):
    doc = run_filter(world["pool"], "oracle", tmp_path / "s.npy")
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(world["pool"], ~world["bad"]))
    assert doc["eligible"] is False and "ground truth" in doc["ineligible"]["oracle"]


def test_oracle_cannot_be_combined_with_participant_code(world, tmp_path):
    spec = {"name": "intersect", "filters": [{"name": "oracle"}, {"name": _plugin(tmp_path, "")}]}
    with pytest.raises(HarnessError, match="cannot be combined with participant filters"):
        run_filter(world["pool"], spec, tmp_path / "s.npy")


@pytest.mark.parametrize("declared", [True, False])
def test_eligible_declaration_changes_nothing(world, tmp_path, declared):
    path = tmp_path / "decl.py"
    path.write_text(textwrap.dedent(f"""\
        import numpy as np
        from harness.filters import pool_filter

        @pool_filter(columns=["uid"], eligible={declared})
        def keep_all(batch, features):
            return np.ones(batch.num_rows, bool)
        """))
    doc = run_filter(world["pool"], f"{path}:keep_all", tmp_path / "s.npy")
    assert doc["eligible"] is True and doc["ineligible"] is None


def _with_helper(folder: Path, threshold: int) -> str:
    folder.mkdir(parents=True)
    (folder / "helper.py").write_text(f"LIMIT = {threshold}\n")
    (folder / "main.py").write_text(textwrap.dedent("""\
        import numpy as np
        from harness.filters import pool_filter
        from helper import LIMIT

        @pool_filter(columns=["uid"])
        def f(batch, features):
            return np.arange(batch.num_rows) < LIMIT
        """))
    return f"{folder / 'main.py'}:f"


def test_identity_covers_imported_helpers_and_not_the_machine_path(tmp_path):
    a = identity(_with_helper(tmp_path / "a", 3), {"params": {}})
    b = identity(_with_helper(tmp_path / "b", 4), {"params": {}})
    same = identity(_with_helper(tmp_path / "elsewhere" / "c", 3), {"params": {}})
    assert a["sha256"] != b["sha256"] and a["code_sha256"] != b["code_sha256"] and a["n_files"] == 2
    assert same["sha256"] == a["sha256"]
    assert identity(_with_helper(tmp_path / "d", 3), {"params": {"x": 1}})["sha256"] != a["sha256"]


def test_builtin_identity_covers_all_of_harness_filters():
    ident = identity("basic", {"params": {}})
    from harness import filters

    n = len([p for p in Path(filters.__file__).parent.rglob("*.py") if "__pycache__" not in p.parts])
    assert ident["n_files"] == n and "langid" in ident["models"]


def test_a_changed_helper_changes_the_recorded_source_hash(world, tmp_path):
    ref = _with_helper(tmp_path / "p", 3)
    one = run_filter(world["pool"], ref, tmp_path / "s1.npy")
    (tmp_path / "p" / "helper.py").write_text("LIMIT = 3  # same value, other bytes\n")
    two = run_filter(world["pool"], ref, tmp_path / "s2.npy")
    assert one["subset_sha256"] == two["subset_sha256"]
    assert one["filter"]["source_hash"] != two["filter"]["source_hash"]


def _failing(tmp_path: Path) -> str:
    path = tmp_path / "fails.py"
    path.write_text(textwrap.dedent("""\
        import numpy as np
        from harness.filters import pool_filter

        def deep_helper(n):
            raise ValueError("bad row count\\nsecond line")

        @pool_filter(columns=["uid"])
        def fails(batch, features):
            return deep_helper(batch.num_rows)
        """))
    return f"{path}:fails"


def test_plugin_failure_is_one_line_unless_verbose(world, tmp_path):
    ref = _failing(tmp_path)
    with pytest.raises(HarnessError) as short:
        run_filter(world["pool"], ref, tmp_path / "s.npy")
    assert "\n" not in str(short.value) and "ValueError: bad row count" in str(short.value)
    assert "verbose=true" in str(short.value)
    with pytest.raises(HarnessError) as full:
        run_filter(world["pool"], ref, tmp_path / "s.npy", verbose=True)
    first, rest = str(full.value).split("\n", 1)
    assert "ValueError: bad row count" in first and "Traceback" in rest and "deep_helper" in rest


def test_cli_verbose_and_harness_debug_print_the_traceback(world, tmp_path, cli):
    ref = _failing(tmp_path)
    args = ("filter", f"pool_dir={world['pool']}", f"filter={ref}", f"out={tmp_path / 's.npy'}")
    plain = cli(*args)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    verbose = cli(*args, "verbose=true")
    env = cli(*args, env={"HARNESS_DEBUG": "1"})
    for res in (verbose, env):
        assert res.returncode == 2 and "Traceback" in res.stderr and "deep_helper" in res.stderr
    helptext = cli("filter", "--help").stdout
    assert "verbose: false" in helptext and "verbose=true or HARNESS_DEBUG=1" in helptext
