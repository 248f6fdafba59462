"""Leaderboard files: schema, refusals with reasons, atomic locked writes, corrupt and hand-edited files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_leaderboard_runs import make_run, tiny_recipe_hash

from harness.core.errors import HarnessError
from leaderboard.store import (REFERENCE_DIR, SCHEMA_PATH, add_entry, entry_from_run, leaderboard_path,
                               load_leaderboard, rank_of, ranks)

LB = ("filtering", "tiny")


def _entry(tmp_path: Path, method: str = "basic", seed: int = 0, quality: float = 0.5, **kw) -> dict:
    reference = kw.pop("reference", False)
    return entry_from_run(make_run(tmp_path / "runs", method, seed, quality, **kw), method, *LB, reference=reference)


def test_added_entries_make_a_valid_versioned_document(tmp_path):
    from jsonschema import Draft202012Validator

    lb = tmp_path / "lb"
    assert add_entry(lb, _entry(tmp_path, "basic", quality=0.5)) == "basic-seed0"
    add_entry(lb, _entry(tmp_path, "clip_score", quality=0.7))
    doc = json.loads(leaderboard_path(lb, *LB).read_text())
    Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(doc)
    assert doc["schema_version"] == 1 and doc["suite"] == "tiny" and doc["recipe_hash"] == tiny_recipe_hash()
    assert [e["id"] for e in doc["entries"]] == ["basic-seed0", "clip_score-seed0"]
    assert ranks(doc) == {"clip_score-seed0": 1, "basic-seed0": 2}
    assert rank_of(lb, doc["entries"][0]) == 2
    assert not list(lb.glob("*.tmp")), "a temp file was left behind"


def _refusal_cases():
    def wrong_hash(e):
        e["recipe_hash"] = "0" * 16

    def off_recipe(e):
        e["off_recipe"] = True

    def missing_task(e):
        del e["tasks"]["tiny_counts"]

    def ineligible(e):
        e["eligible"], e["ranked"], e["filter"]["name"] = False, False, "oracle"

    def ranked_reference(e):
        e["reference"] = True

    def no_filter_spec(e):
        e["filter"] = None

    def metric_out_of_range(e):
        e["tasks"]["tiny_colors"]["value"] = 1.5

    return [(wrong_hash, "recipe hash 000000000000 is not the tiny scale's"),
            (off_recipe, "trained off-recipe"),
            (missing_task, "task set incomplete: missing tiny_counts"),
            (ineligible, r"filter 'oracle' is not eligible for ranking .*\(reference=true\)"),
            (ranked_reference, "ranked=True contradicts"),
            (no_filter_spec, "the filtering track needs the run's filter spec"),
            (metric_out_of_range, r"entry 'other-seed0' field 'tasks.tiny_colors.value': 1.5 is greater than")]


@pytest.mark.parametrize("edit,reason", _refusal_cases(), ids=lambda c: getattr(c, "__name__", "reason"))
def test_refused_with_the_reason_and_file_untouched(tmp_path, edit, reason):
    lb = tmp_path / "lb"
    add_entry(lb, _entry(tmp_path, "basic"))
    before = leaderboard_path(lb, *LB).read_bytes()
    bad = _entry(tmp_path, "other", quality=0.6)
    edit(bad)
    with pytest.raises(HarnessError, match=reason):
        add_entry(lb, bad)
    assert leaderboard_path(lb, *LB).read_bytes() == before


def test_duplicates_are_refused_never_overwritten(tmp_path):
    lb = tmp_path / "lb"
    first = _entry(tmp_path, "basic", quality=0.5)
    add_entry(lb, first)
    again = dict(first, aggregates={**first["aggregates"], "Average": 0.99}, checkpoint_sha256="f" * 64)
    with pytest.raises(HarnessError, match="entry 'basic-seed0' already exists .* nothing is overwritten"):
        add_entry(lb, again)
    renamed = dict(first, id="basic-again-seed0", method_name="basic again")
    with pytest.raises(HarnessError, match="duplicate entry: the same checkpoint is already entry 'basic-seed0'"):
        add_entry(lb, renamed)
    assert load_leaderboard(lb, *LB)["entries"] == [dict(first, per_example_dir="per_example/filtering_tiny/basic-seed0")]


def test_oracle_enters_only_as_an_unranked_reference(tmp_path):
    lb = tmp_path / "lb"
    add_entry(lb, _entry(tmp_path, "basic", quality=0.5))
    oracle = _entry(tmp_path, "oracle", quality=0.9, eligible=False, reference=True)
    assert oracle["reference"] and not oracle["ranked"]
    add_entry(lb, oracle)
    doc = load_leaderboard(lb, *LB)
    assert ranks(doc) == {"basic-seed0": 1}
    assert rank_of(lb, oracle) is None


def test_corrupt_json_is_refused_with_line_and_column(tmp_path):
    lb = tmp_path / "lb"
    add_entry(lb, _entry(tmp_path, "basic"))
    path = leaderboard_path(lb, *LB)
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rstrip(",")  # a hand edit that drops a comma
    path.write_text("\n".join(lines) + "\n")
    broken = path.read_bytes()
    with pytest.raises(HarnessError, match=r"filtering_tiny.json:7:\d+: corrupt leaderboard JSON .*nothing was written"):
        add_entry(lb, _entry(tmp_path, "clip_score", quality=0.7))
    assert path.read_bytes() == broken


def test_hand_edited_entry_failing_the_schema_names_entry_and_field(tmp_path):
    lb = tmp_path / "lb"
    add_entry(lb, _entry(tmp_path, "basic"))
    add_entry(lb, _entry(tmp_path, "clip_score", quality=0.7))
    path = leaderboard_path(lb, *LB)
    doc = json.loads(path.read_text())
    doc["entries"][1]["seed"] = "zero"
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(HarnessError, match=r"entry 'clip_score-seed0' \(entries\[1\]\) field 'seed': 'zero' is not of type"):
        load_leaderboard(lb, *LB)
    with pytest.raises(HarnessError, match="field 'seed'"):
        add_entry(lb, _entry(tmp_path, "text_based", quality=0.6))
    doc["entries"][1]["seed"], doc["schema_version"] = 0, 2
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(HarnessError, match="schema_version 2, but this harness reads version 1"):
        load_leaderboard(lb, *LB)


WORKER = """
import json, sys, time
from pathlib import Path
from leaderboard.store import add_entry
lb, entry, go = sys.argv[1], json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
print(add_entry(lb, entry))
"""


def test_eight_processes_adding_at_once_all_land(tmp_path):
    lb, go = tmp_path / "lb", tmp_path / "go"
    files = []
    for i in range(8):
        f = tmp_path / f"entry{i}.json"
        f.write_text(json.dumps(_entry(tmp_path, f"m{i}", seed=i, quality=0.3 + 0.05 * i)))
        files.append(f)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(lb), str(f), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    time.sleep(1.0)  # let every process import and wait at the start line
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outs]
    doc = load_leaderboard(lb, *LB)  # also re-validates the whole file against the schema
    assert sorted(e["id"] for e in doc["entries"]) == sorted(f"m{i}-seed{i}" for i in range(8))
    assert sorted(out.strip() for out, _ in outs) == sorted(f"m{i}-seed{i}" for i in range(8))


def test_add_command_adds_and_refuses_in_one_line(tmp_path, cli):
    lb = tmp_path / "lb"
    run = make_run(tmp_path / "runs", "clip_score", seed=1, quality=0.6)
    res = cli("leaderboard", "add", f"run_dir={run}", f"leaderboard_dir={lb}")
    assert res.returncode == 0, res.stderr
    ranked = [e for e in load_leaderboard(REFERENCE_DIR, *LB)["entries"] if e["ranked"]]
    n_methods = len({e["method_name"] for e in ranked}) + 1
    assert res.stdout.splitlines() == [  # the board written, and the standing beside the reference board
        f"added clip_score-seed1 to {lb / 'filtering_tiny.json'}",
        f"rank 1 of {n_methods} methods by mean Average over seeds (reference board + yours; "
        f"per seed: 1 of {len(ranked) + 1} entries)"]
    oracle = make_run(tmp_path / "runs", "oracle", seed=0, quality=0.9, eligible=False)
    refused = cli("leaderboard", "add", f"run_dir={oracle}", f"leaderboard_dir={lb}")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "filter 'oracle' is not eligible for ranking" in refused.stderr
    ok = cli("leaderboard", "add", f"run_dir={oracle}", f"leaderboard_dir={lb}", "reference=true")
    assert ok.returncode == 0 and ok.stdout.splitlines() == [f"added oracle-seed0 to {lb / 'filtering_tiny.json'}",
                                                             "unranked reference entry"]
    assert [e["reference"] for e in load_leaderboard(lb, *LB)["entries"]] == [False, True]
