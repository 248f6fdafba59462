from harness.cli import rewrite_overrides
from harness.errors import HarnessError

import pytest


def test_help_lists_commands(cli):
    res = cli("--help")
    assert res.returncode == 0
    for word in ("pool make", "filter", "reshard", "train", "eval", "leaderboard show", "run"):
        assert word in res.stdout


def test_command_help_shows_keys(cli):
    res = cli("filter", "--help")
    assert res.returncode == 0, res.stderr
    assert "pool_dir: ???" in res.stdout and "out: ???" in res.stdout


def test_cfg_job_prints_composed_config(cli):
    res = cli("filter", "pool_dir=/p", "out=/o.npy", "--cfg", "job")
    assert res.returncode == 0, res.stderr
    assert "pool_dir: /p" in res.stdout


def test_unknown_scale_is_one_clear_line(cli):
    res = cli("pool", "make", "pool_dir=/tmp/x", "scale=tinny")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        res.stderr.strip().splitlines()[0]]
    assert "unknown scale 'tinny'" in res.stderr and "did you mean tiny" in res.stderr


def test_unknown_command(cli):
    res = cli("fliter")
    assert res.returncode == 2 and "unknown command 'fliter'" in res.stderr and "filter" in res.stderr


def test_plugin_filter_spec_is_rewritten():
    assert rewrite_overrides(["filter=my.py:keep", "filter.fraction=0.3"]) == [
        "filter=plugin", "++filter.name=my.py:keep", "++filter.fraction=0.3"]
    with pytest.raises(HarnessError, match="not key=value"):
        rewrite_overrides(["oops"])


def test_missing_required_key_is_one_line(cli):
    res = cli("filter", "pool_dir=/p")
    assert res.returncode == 2
    assert "missing required key(s) out" in res.stderr
    assert "Traceback" not in res.stderr


def test_reshard_needs_pool_and_subset_unless_byod(cli, tmp_path):
    res = cli("reshard", f"out_dir={tmp_path / 'o'}")
    assert res.returncode == 2 and "missing required key(s) pool_dir, subset" in res.stderr
