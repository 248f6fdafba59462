"""``harness leaderboard show``: the per-method table first, short filter labels, and a layout that
fits the terminal without cutting a number (checked against the committed reference board)."""

from __future__ import annotations

import re

import pytest
from test_leaderboard_runs import make_run

from leaderboard.boards import methods
from harness.core.labels import spec_label
from leaderboard.store import REFERENCE_DIR, add_entry, entry_from_run, load_leaderboard
from leaderboard.table import filter_label

LB = ("filtering", "tiny")


@pytest.fixture(scope="module")
def reference() -> dict:
    return load_leaderboard(REFERENCE_DIR, *LB)


def _show(cli, *args: str, columns: str = "120"):
    res = cli("leaderboard", "show", "n_boot=100", *args, env={"COLUMNS": columns})
    assert res.returncode == 0, res.stderr
    return res.stdout


def _averages(doc: dict) -> set[str]:
    """Every Average the tables must show: each entry's and each method's mean."""
    return ({f"{e['aggregates']['Average']:.4f}" for e in doc["entries"]}
            | {f"{m['stats']['Average'][0]:.4f}" for m in methods(doc)})


def test_show_fits_120_columns_and_prints_every_average_in_full(reference, cli):
    out = _show(cli)
    lines = out.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    assert "…" not in out
    printed = set(re.findall(r"(?<![\d.])0\.\d{4}(?!\d)", out))
    assert _averages(reference) <= printed
    assert out.index("Methods: mean ± sd over seeds") < out.index("Entries: one row per seed")
    # the method row at 120 columns: mean, Δ to no_filter, the other aggregates; sd and CI beneath
    row = next(i for i, ln in enumerate(lines) if re.match(r"\s+1\s+clip_score_", ln))
    assert re.match(r"\s+1\s+clip_score_\s+reference\s+3\s+12,001\s+0\.3528\s+\+0\.0562\s+0\.4320\s+0\.1147\s+"
                    r"0\.5468\s+0\.4057\s*$", lines[row]), lines[row]
    assert re.match(r"\s+0\.3\s+± 0\.0096\s+\[\+0\.0\d{3}, \+0\.0\d{3}\] \*\s+± 0\.0118", lines[row + 1]), lines[row + 1]
    assert any(re.match(r"\s+6\s+no_filter\s+reference\s+3\s+40,000\s+0\.2966\s+baseline\s", ln) for ln in lines)
    assert "clip_score(fraction=0.3)" in out and "<array" not in out and "(?:" not in out
    assert ("Δ: mean Average minus no_filter's (the method's own board's no_filter, else the reference's), paired "
            "by seed over the seeds both have; 95% CI from 100 paired bootstrap resamples") in re.sub(r"\s+", " ", out)


def test_show_on_a_wide_terminal_keeps_each_method_on_one_line(cli):
    lines = _show(cli, "ci=false", columns="200").splitlines()
    assert max(map(len, lines)) <= 200
    assert any(re.match(r"\s+1\s+clip_score_0\.3\s+reference\s+3\s+12,001\s+0\.3528 ± 0\.0096\s+—\s+0\.4320 ± 0\.0118",
                        ln) for ln in lines)


def test_piped_show_without_columns_is_120_wide(reference, cli):
    out = _show(cli, "ci=false", columns="")  # no $COLUMNS and not a terminal
    assert max(map(len, out.splitlines())) <= 120 and _averages(reference) <= set(re.findall(r"0\.\d{4}", out))


def test_a_narrow_terminal_widens_the_table_rather_than_cut_numbers(reference, cli):
    out = _show(cli, "ci=false", columns="50")
    assert "…" not in out and _averages(reference) <= set(re.findall(r"(?<![\d.])0\.\d{4}(?!\d)", out))


def test_short_labels_keep_scalars_and_details_show_everything(reference, cli):
    by_id = {e["id"]: e for e in reference["entries"]}
    assert filter_label(by_id["clip_score_0.3-seed0"]) == "clip_score(fraction=0.3)"
    assert filter_label(by_id["image_based-seed0"]) == "image_based(language=en, num_clusters=267, seed=0, target=auto)"
    assert filter_label(by_id["text_based-seed0"]) == "text_based(language=en, vocab=auto, vocab_size=10)"
    assert filter_label(by_id["dedup-seed0"]) == "dedup(neighbors=16)"
    assert filter_label(by_id["oracle-seed0"]) == "oracle"
    assert filter_label(by_id["image_based_intersect_clip_score-seed0"]) == (
        "intersect(clip_score(fraction=0.3), image_based(language=en, num_clusters=267, seed=0, target=auto))")
    assert spec_label({"name": "f", "params": {"flag": True, "word": "exactly8", "long": "ninechars"}}) == (
        "f(flag=True, word=exactly8)")
    out = _show(cli, "ci=false", "details=true")
    assert ("  image_based-seed0: image_based(arch=None, centroids=<array float32 [267, 128]>, feature=tinyref_img, "
            "language=en, num_clusters=267, seed=0, target=auto, target_clusters=<array int64 [264]>)  "
            "[source 093df4cc1b6d]") in out.splitlines()
    pattern = by_id["text_based-seed0"]["filter"]["params"]["pattern"]
    assert f"pattern={pattern}" in out.split("Filter specs (full):")[1]


def test_the_users_rows_are_marked(tmp_path, cli):
    lb = tmp_path / "mine"
    for method, seed, quality in (("basic", 0, 0.9), ("late", 7, 0.5)):
        run = make_run(tmp_path / "runs", method, seed, quality)
        add_entry(lb, entry_from_run(run, method, *LB))
    out = _show(cli, f"leaderboard_dir={lb}", columns="200")
    lines = out.splitlines()
    assert "filtering / tiny leaderboard (reference board + yours; recipe " in lines[0]
    assert lines[1] == f"boards: reference {REFERENCE_DIR / 'filtering_tiny.json'}; yours {lb / 'filtering_tiny.json'}"
    assert any(re.match(r"\s+1\s+basic \(yours\)\s+yours\s+1\s+6,000\s+0\.\d{4}\s", ln) for ln in lines)
    assert any(ln.split()[1:2] == ["yours:basic-seed0"] for ln in lines)
    assert any(ln.split()[1:2] == ["ref:basic-seed0"] for ln in lines) and "basic-seed1" in out
    assert "— late (yours): no seed in common with no_filter (seeds 0, 1, 2)" in lines
    assert "— basic (yours): task 'tiny_objects': the entries were evaluated on different test sets" in out
