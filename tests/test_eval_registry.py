"""The registry equals DataComp's task list; the tiny suite has the same schema; `eval list`."""

from __future__ import annotations

import json

import pytest

from evals.registry import AGGREGATES, aggregate_members, load_suite, select
from harness.core.errors import HarnessError

# From mlfoundations/datacomp tasklist.yml: every task whose main metric is not acc1.
NON_ACC1 = {
    "vtab/caltech101": "mean_per_class_recall", "fgvc_aircraft": "mean_per_class_recall",
    "vtab/flowers": "mean_per_class_recall", "vtab/pets": "mean_per_class_recall",
    "retrieval/flickr_1k_test_image_text_retrieval": "mean_recall@1",
    "retrieval/mscoco_2014_5k_test_image_text_retrieval": "mean_recall@1",
    "misc/winogavil": "jaccard_score_10-12", "wilds/iwildcam": "F1-macro_all", "wilds/fmow": "acc_worst_region",
    "fairness/dollar_street": "acc_top5_wg", "fairness/geode": "acc_wg",
    "fairness/fairface": None, "fairness/utkface": None,
}
VTAB = {"vtab/caltech101", "vtab/cifar100", "vtab/clevr_count_all", "vtab/clevr_closest_object_distance",
        "vtab/dtd", "vtab/eurosat", "vtab/flowers", "vtab/pets", "vtab/pcam", "vtab/resisc45", "sun397",
        "vtab/svhn", "vtab/kitti_closest_vehicle_distance"}
SHIFTS = {"imagenet_sketch", "imagenetv2", "imagenet-a", "imagenet-o", "imagenet-r", "objectnet"}


def test_datacomp_suite_is_datacomps_task_list():
    tasks = load_suite("datacomp")
    assert len(tasks) == 40 and sum(t.scored for t in tasks) == 38
    by = {t.key: t for t in tasks}
    for t in tasks:
        assert t.main_metric == NON_ACC1.get(t.key, "acc1"), t.key
    members = aggregate_members(tasks)
    assert list(members) == list(AGGREGATES)
    assert members["ImageNet"] == ["imagenet1k"]
    assert set(members["ImageNet dist. shifts"]) == SHIFTS
    assert set(members["VTAB"]) == VTAB and len(members["VTAB"]) == 13
    assert set(members["Retrieval"]) == {k for k in NON_ACC1 if k.startswith(("retrieval/", "misc/"))}
    assert len(members["Average"]) == 38
    assert {t.key for t in tasks if "wilds" in t.groups} == {"wilds/iwildcam", "wilds/camelyon17", "wilds/fmow"}
    assert len([t for t in tasks if "fairness" in t.groups]) == 4
    # spot values from tasklist.yml, and DataComp's repo naming for the WebDataset copies
    assert (by["imagenet1k"].num_classes, by["imagenet1k"].random_score, by["imagenet1k"].size) == (1000, 0.001, 50000)
    assert (by["vtab/clevr_count_all"].num_classes, by["vtab/clevr_count_all"].random_score) == (8, 0.125061)
    assert by["vtab/caltech101"].hub == "djghosh/wds_vtab-caltech101_test"
    assert by["fairness/geode"].dir == "wds_geode_test"
    assert by["wilds/fmow"].group_spec() == {"from": "npy", "column": 0, "name": "region"}


def test_tiny_suite_same_schema_and_groups():
    tasks = load_suite("tiny")
    keys = [t.key for t in tasks]
    assert keys == ["tiny_objects", "tiny_colors", "tiny_counts", "tiny_textures", "tiny_digits",
                    "tiny_objects_sketch", "tiny_retrieval", "tiny_worst_group"]
    members = aggregate_members(tasks)
    assert members["ImageNet"] == ["tiny_objects"] and members["ImageNet dist. shifts"] == ["tiny_objects_sketch"]
    assert members["Retrieval"] == ["tiny_retrieval"] and len(members["Average"]) == 8
    assert {t.key: t.main_metric for t in tasks}["tiny_worst_group"] == "acc_wg"


def test_select_and_bad_names(tmp_path):
    tasks = load_suite("datacomp")
    assert [t.key for t in select(tasks, ["cifar10", "ImageNet 1k"])] == ["cifar10", "imagenet1k"]
    with pytest.raises(HarnessError, match="did you mean cifar10"):
        select(tasks, ["cifar11"])
    with pytest.raises(HarnessError, match="unknown eval suite"):
        load_suite("imagenet")
    bad = tmp_path / "s.yaml"
    bad.write_text("tasks:\n  - {key: a, name: A, kind: captioning}\n")
    with pytest.raises(HarnessError, match="unknown kind 'captioning'"):
        load_suite(str(bad))


def test_eval_list_cli(cli):
    table = cli("eval", "list", "suite=datacomp")
    assert table.returncode == 0, table.stderr
    assert "40 tasks, 38 scored" in table.stdout and "jaccard_score_10-12" in table.stdout
    js = cli("eval", "list", "suite=tiny", "format=json")
    assert js.returncode == 0, js.stderr
    rows = json.loads(js.stdout)
    assert len(rows) == 8 and rows[-1]["group"] == {"from": "json", "field": "group", "name": "background"}
    bad = cli("eval", "list", "suite=nope")
    assert bad.returncode == 2 and "unknown eval suite 'nope'" in bad.stderr
