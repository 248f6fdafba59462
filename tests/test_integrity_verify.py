"""`harness leaderboard verify` (issue 16): the committed board's scores and recipes recompute; a
subset rebuilt from an entry's recorded filter matches on the pool it was made on; any edited
score, aggregate, subset hash/size or recipe hash is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.filters import run_filter
from leaderboard.store import REFERENCE_DIR, filter_of, read_document
from leaderboard.verify import runnable_spec, verify_board

BOARD = REFERENCE_DIR / "filtering_tiny.json"


def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def test_committed_board_scores_and_recipes_verify():
    rows = verify_board(BOARD, None, None)
    assert len(rows) >= 24
    assert [(i, d) for i, d, _ in rows if d] == []


def test_cli_verify_on_the_committed_board(cli):
    res = cli("leaderboard", "verify", "subset=false")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sum(line.startswith("verified ") for line in lines) >= 24 and "entries verified" in lines[-1]


def test_committed_board_holds_no_absolute_paths():
    doc = json.loads(BOARD.read_text())
    assert not [s for s in _strings(doc) if s.startswith(("/", "~")) or s[1:3] == ":\\"]
    assert all("run_dir" not in e for e in doc["entries"])


def _copy_board(tmp_path: Path, entries: list[dict]) -> Path:
    doc = read_document(BOARD)
    for e in entries:
        if e["per_example_dir"] and not Path(e["per_example_dir"]).is_absolute():
            e["per_example_dir"] = str(REFERENCE_DIR / e["per_example_dir"])
    path = tmp_path / "board" / "filtering_tiny.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**doc, "entries": entries}, indent=2))
    return path


def _edited(tmp_path: Path, edit) -> list[str]:
    entry = read_document(BOARD)["entries"][3]
    edit(entry)
    (row,) = verify_board(_copy_board(tmp_path, [entry]), None, None)
    return row[1]


@pytest.mark.parametrize("edit, field", [
    (lambda e: e["tasks"]["tiny_objects"].update(value=e["tasks"]["tiny_objects"]["value"] + 0.01), "tasks.tiny_objects"),
    (lambda e: e["aggregates"].update(Average=e["aggregates"]["Average"] + 0.001), "aggregates.Average"),
    (lambda e: e.update(recipe_hash="0" * 16), "recipe_hash"),
])
def test_an_edited_field_is_named(tmp_path, edit, field):
    diffs = _edited(tmp_path, edit)
    assert len(diffs) == 1 and diffs[0].startswith(f"{field}:"), diffs


def test_cli_exits_nonzero_naming_the_field(tmp_path, cli):
    entry = read_document(BOARD)["entries"][0]
    entry["tasks"]["tiny_counts"]["value"] = 0.99
    path = _copy_board(tmp_path, [entry])
    res = cli("leaderboard", "verify", f"leaderboard_dir={path.parent}", "subset=false")
    assert res.returncode == 1 and f"DIFFERS  {entry['id']}: tasks.tiny_counts: recorded 0.99" in res.stdout


@pytest.fixture(scope="module")
def rebuilt_board(tiny_world, tmp_path_factory) -> tuple[Path, Path]:
    """Entries of the committed board re-made on the small world: each committed method's recorded
    filter spec run on it (its subset is what the entry records), with the committed scores."""
    work = tmp_path_factory.mktemp("verify")
    entries = []
    for e in read_document(BOARD)["entries"]:
        if not e["id"].endswith("seed0"):
            continue
        doc = run_filter(tiny_world["pool_dir"], runnable_spec(e["filter"]), work / f"{e['id']}.npy")
        entries.append({**e, "filter": filter_of(doc["filter"]),
                        "subset": {"sha256": doc["subset_sha256"], "size": doc["n_kept"], "n_pool": doc["n_pool"]}})
    return _copy_board(work, entries), Path(tiny_world["pool_dir"])


def test_rebuilt_subsets_verify_on_the_pool_they_were_made_on(rebuilt_board):
    path, pool = rebuilt_board
    rows = verify_board(path, None, pool)
    assert len(rows) == 8 and [(i, d) for i, d, _ in rows if d] == []
    assert all(not notes for _, _, notes in rows)  # the same code: the same source identity


@pytest.mark.parametrize("field, value", [("sha256", "ab" * 32), ("size", 1)])
def test_an_edited_subset_is_named(rebuilt_board, tmp_path, field, value):
    path, pool = rebuilt_board
    doc = json.loads(path.read_text())
    entry = next(e for e in doc["entries"] if e["id"] == "basic-seed0")
    entry["subset"][field] = value
    (row,) = verify_board(_copy_board(tmp_path, [entry]), ["basic-seed0"], pool)
    assert [d.split(":")[0] for d in row[1]] == [f"subset.{field}"]
