"""The reference board and the user's board read together: marks, addresses, standing, add's default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_leaderboard_runs import make_run

from harness.core.errors import HarnessError
from leaderboard.boards import find_entry, load_boards, methods, resolve, standing_line
from leaderboard.compare import method_deltas
from leaderboard.store import (REFERENCE_DIR, add_entry, entry_from_run, leaderboard_path, load_leaderboard,
                               user_board_dir)

LB = ("filtering", "tiny")


def reference() -> dict:
    return load_leaderboard(REFERENCE_DIR, *LB)


def _add(lb: Path, root: Path, method: str, seed: int, quality: float, **kw) -> None:
    reference_entry = kw.pop("reference", False)
    run = make_run(root / "runs", method, seed, quality, **kw)
    add_entry(lb, entry_from_run(run, method, *LB, reference=reference_entry))


@pytest.fixture
def yours(tmp_path) -> Path:
    """A user's board whose basic-seed0 clashes with the reference's, plus a method of its own."""
    lb = tmp_path / "mine"
    _add(lb, tmp_path, "basic", 0, 0.9)
    _add(lb, tmp_path, "caption_length", 0, 0.2)
    return lb


def test_the_user_board_is_read_beside_the_reference(yours):
    ref = reference()
    doc = load_boards(*LB, yours)
    assert doc["boards"] == {"reference": str(REFERENCE_DIR / "filtering_tiny.json"),
                             "yours": str(yours / "filtering_tiny.json")}
    assert len(doc["entries"]) == len(ref["entries"]) + 2
    marks = {e["key"]: e["board"] for e in doc["entries"]}
    # the clashing id is addressed per board; the user's rows always say whose they are
    assert marks["ref:basic-seed0"] == "reference" and marks["yours:basic-seed0"] == "yours"
    assert marks["yours:caption_length-seed0"] == "yours" and marks["basic-seed1"] == "reference"
    assert "basic-seed0" not in marks
    # each board's per-example folders are resolved against its own folder
    mine = next(e for e in doc["entries"] if e["key"] == "yours:basic-seed0")
    assert mine["per_example_dir"] == str(yours / "per_example" / "filtering_tiny" / "basic-seed0")
    assert "board" not in json.loads(leaderboard_path(yours, *LB).read_text())["entries"][0]  # never persisted


def test_a_missing_user_board_and_the_reference_folder_itself(tmp_path):
    doc = load_boards(*LB, tmp_path / "nothing-yet")
    assert doc["boards"]["yours"] == str(tmp_path / "nothing-yet" / "filtering_tiny.json")
    assert {e["board"] for e in doc["entries"]} == {"reference"}
    only = load_boards(*LB, REFERENCE_DIR)  # the maintainer's view: read once, not twice
    assert only["boards"]["yours"] is None and len(only["entries"]) == len(reference()["entries"])
    assert load_boards(*LB)["boards"]["yours"] == str(user_board_dir() / "filtering_tiny.json")
    with pytest.raises(HarnessError) as err:
        load_boards("filtering", "small", tmp_path)
    assert str(err.value) == (f"no leaderboard at {REFERENCE_DIR / 'filtering_small.json'} or "
                              f"{tmp_path / 'filtering_small.json'}: add a run with `harness leaderboard add run_dir=...`")


def test_a_user_board_of_another_recipe_is_left_out_with_a_note(yours):
    path = leaderboard_path(yours, *LB)
    path.write_text(json.dumps({**json.loads(path.read_text()), "recipe_hash": "0" * 16}))
    doc = load_boards(*LB, yours)
    assert {e["board"] for e in doc["entries"]} == {"reference"}
    assert doc["notes"] == [f"{path} was made for recipe 000000000000 (suite tiny), the reference for "
                            f"{reference()['recipe_hash'][:12]} (suite tiny): its entries are not shown; "
                            "move the file aside to start a new board"]


def test_bare_names_on_both_boards_mean_yours_with_a_note(yours):
    doc = load_boards(*LB, yours)
    entry, note = find_entry(doc, "basic-seed0")
    assert entry["board"] == "yours" and note == ("'basic-seed0' is an entry on both boards: using yours "
                                                  "(yours:basic-seed0); write ref:basic-seed0 for the reference board's")
    assert find_entry(doc, "ref:basic-seed0") == (next(e for e in doc["entries"] if e["key"] == "ref:basic-seed0"), None)
    runs, note = resolve(doc, "basic")
    assert [e["key"] for e in runs] == ["yours:basic-seed0"] and "a method on both boards" in note
    runs, note = resolve(doc, "ref:basic")
    assert sorted(e["key"] for e in runs) == ["basic-seed1", "basic-seed2", "ref:basic-seed0"] and note is None


def test_methods_are_grouped_per_board(yours):
    rows = {m["label"]: m for m in methods(load_boards(*LB, yours))}
    assert rows["basic (yours)"]["n"] == 1 and rows["basic (yours)"]["key"] == "yours:basic"
    assert rows["basic"]["n"] == 3 and rows["basic"]["key"] == "ref:basic" and rows["basic"]["board"] == "reference"
    assert rows["caption_length (yours)"]["key"] == "caption_length"
    assert rows["basic (yours)"]["stats"]["Average"][1] is None  # one seed: no sd, not a zero sd


def test_standing_line_counts_methods_and_entries(yours):
    doc = load_boards(*LB, yours)
    ranked = [e for e in reference()["entries"] if e["ranked"]]
    n_methods = len({e["method_name"] for e in ranked}) + 2  # + basic (yours) + caption_length (yours)
    assert standing_line(doc, "basic-seed0") == (
        f"rank 1 of {n_methods} methods by mean Average over seeds (reference board + yours; "
        f"per seed: 1 of {len(ranked) + 2} entries)")
    assert standing_line(doc, "caption_length-seed0") == (
        f"rank {n_methods} of {n_methods} methods by mean Average over seeds (reference board + yours; "
        f"per seed: {len(ranked) + 2} of {len(ranked) + 2} entries)")
    assert standing_line(doc, "oracle-seed0") == "unranked reference entry"
    alone = load_boards(*LB, REFERENCE_DIR)
    assert standing_line(alone, "no_filter-seed0").endswith(f"(reference board; per seed: 10 of {len(ranked)} entries)")


def test_delta_baseline_is_the_own_boards_no_filter_else_the_references(tmp_path, yours):
    doc = load_boards(*LB, yours)
    deltas = method_deltas(doc, n_boot=20)
    assert deltas["no_filter"] == {"baseline": True, "delta": 0.0, "ci": None, "note": None}
    mine = deltas["yours:basic"]
    assert mine["against"] == "no_filter" and mine["seeds"] == [0] and mine["ci"] is None
    # make_run's test sets are smaller than the tiny suite's: the table says why there is no CI
    assert mine["note"].startswith("task 'tiny_objects': the entries were evaluated on different test sets")
    _add(yours, tmp_path, "no_filter", 0, 0.3)
    _add(yours, tmp_path, "no_filter", 1, 0.3)
    deltas = method_deltas(load_boards(*LB, yours), n_boot=50)
    mine = deltas["yours:basic"]
    assert mine["against"] == "no_filter (yours)" and mine["note"] is None and mine["beyond_noise"]
    assert deltas["caption_length"]["against"] == "no_filter (yours)"
    _add(yours, tmp_path, "late", 7, 0.5)
    assert method_deltas(load_boards(*LB, yours), n_boot=5)["late"]["note"] == (
        "no seed in common with no_filter (yours) (seeds 0, 1)")


def test_add_writes_the_user_board_by_default_and_a_rerun_is_fine(tmp_path, cli):
    home = tmp_path / "home"
    run = make_run(tmp_path / "runs", "basic", 0, 0.6)
    env = {"HARNESS_HOME": str(home)}
    res = cli("leaderboard", "add", f"run_dir={run}", env=env)
    assert res.returncode == 0, res.stderr
    board = home / "leaderboard" / "filtering_tiny.json"
    lines = res.stdout.splitlines()
    assert lines[0] == f"added basic-seed0 to {board}"
    assert lines[1].startswith("rank ") and "(reference board + yours; per seed: " in lines[1]
    assert [e["id"] for e in json.loads(board.read_text())["entries"]] == ["basic-seed0"]
    again = cli("leaderboard", "add", f"run_dir={run}", env=env)
    assert again.returncode == 0, again.stderr
    added = json.loads(board.read_text())["entries"][0]["timestamp"]
    assert again.stdout.splitlines() == [
        f"entry 'basic-seed0' is already on the board (same checkpoint, added {added}): nothing to add ({board})",
        lines[1]]
    assert len(json.loads(board.read_text())["entries"]) == 1
    assert load_leaderboard(REFERENCE_DIR, *LB) == reference()  # the reference board was not touched
