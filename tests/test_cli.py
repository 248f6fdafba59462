from harness.cli import rewrite_overrides
from harness.core.errors import HarnessError

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


def test_refused_command_leaves_no_empty_output_folder(cli, tmp_path):
    """A missing checkpoint: `harness eval` had made out_dir (and its parents) before refusing."""
    (tmp_path / "kept").mkdir()
    for out, left in ((tmp_path / "a" / "b" / "eval", []), (tmp_path / "kept", ["kept"])):
        res = cli("eval", f"checkpoint={tmp_path / 'missing.pt'}", "scale=tiny", f"out_dir={out}")
        assert res.returncode == 2
        assert res.stderr == f"error: checkpoint not found: {tmp_path / 'missing.pt'}\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and not any((tmp_path / "kept").iterdir())


def test_refused_command_keeps_what_it_wrote(tmp_path):
    from harness.cli import new_output_paths, remove_empty
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"out_dir": str(tmp_path / "x" / "y"), "out": str(tmp_path / "s" / "subset.npy"),
                            "work_dir": None, "pool_dir": str(tmp_path / "p")})
    new = new_output_paths(cfg)
    assert new == [tmp_path / "s" / "subset.npy", tmp_path / "x" / "y", tmp_path / "s", tmp_path / "x"]
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "subset.json").write_text("{}")
    (tmp_path / "p").mkdir()
    remove_empty(new)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["p", "s", "s/subset.json"]


def test_unknown_key_names_the_command_and_its_shared_spelling(cli, tmp_path):
    res = cli("run", f"work_dir={tmp_path / 'w'}", "data_dir=evalsets")
    assert res.returncode == 2
    assert res.stderr == ("error: harness run has no key 'data_dir'; did you mean eval_dir? "
                          "(harness run --help lists its keys)\n")
    res = cli("run", f"work_dir={tmp_path / 'w'}", "dryrun=true")
    assert res.stderr == "error: harness run has no key 'dryrun'; did you mean dry_run? (harness run --help lists its keys)\n"
    res = cli("eval", "checkpoint=c.pt", "out_dir=o", "eval_dir=e")
    assert res.stderr == "error: harness eval has no key 'eval_dir'; did you mean data_dir? (harness eval --help lists its keys)\n"
    assert not (tmp_path / "w").exists()
