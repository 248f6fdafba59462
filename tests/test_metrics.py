"""Metrics on hand-computed fixtures (values worked out by hand in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from evals import metrics as M
from harness.core.errors import HarnessError

# Four examples, six classes. Row 0 ranks 0>1>2>3>4>5 (top-1 0, right); row 1 the same with target
# 1 (top-1 wrong, in top 5); row 2 target 5 (not in top 5); row 3 puts class 3 first (right).
LOGITS6 = np.array([[6, 5, 4, 3, 2, 1], [6, 5, 4, 3, 2, 1], [6, 5, 4, 3, 2, 1], [0, 0, 0, 9, 0, 0]], float)
TARGET6 = np.array([0, 1, 5, 3])


def test_classification_acc1_acc5_mean_per_class_recall():
    m, a = M.classification_metrics(TARGET6, LOGITS6)
    assert m["acc1"] == 0.5                      # rows 0 and 3
    assert m["acc5"] == 0.75                     # rows 0, 1, 3
    assert m["mean_per_class_recall"] == 0.5     # classes 0,1,5,3 -> recalls 1,0,0,1
    assert a["pred"].tolist() == [0, 0, 0, 3]
    assert a["top5"].shape == (4, 5)


def test_acc5_is_none_under_five_classes():
    m, a = M.classification_metrics(np.array([0, 1, 2]), np.eye(3)[[0, 2, 2]])
    assert m["acc5"] is None and "top5" not in a
    assert m["acc1"] == pytest.approx(2 / 3)


def test_mean_per_class_recall_imbalanced():
    # class 0: 2 of 3 right, class 1: 1 of 1 -> (2/3 + 1) / 2; plain accuracy 3/4
    target, pred = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    assert M.mean_per_class_recall(target, pred) == pytest.approx(5 / 6)
    assert M.acc1(target, pred) == 0.75


def test_f1_macro_over_labels_in_target():
    # class 0: tp1 fp1 fn1 -> .5; class 1: tp2 fp1 fn0 -> .8; class 2: tp0 fn1 -> 0
    assert M.f1_macro(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])) == pytest.approx(1.3 / 3)
    # a predicted label absent from the targets (3) only costs recall of the true class
    assert M.f1_macro(np.array([0, 0, 1]), np.array([3, 0, 1])) == pytest.approx((2 / 3 + 1) / 2)


def test_group_table_and_worst_group_skip_empty_groups():
    correct = np.array([1, 0, 1, 1, 0, 1], bool)
    group = np.array([0, 0, 2, 2, 3, 3])             # group 1 empty
    t = M.group_table("acc", correct, group, "region")
    assert t["acc_avg"] == pytest.approx(4 / 6)
    assert t["acc_region:0"] == 0.5 and t["count_region:0"] == 2
    assert t["acc_region:1"] == 0.0 and t["count_region:1"] == 0
    assert t["acc_region:2"] == 1.0 and t["acc_region:3"] == 0.5
    assert t["acc_wg"] == 0.5                        # not 0.0: the empty group is ignored


def test_worst_group_top5_dollar_street_style():
    target = np.array([7, 7, 1, 2])
    top5 = np.array([[7, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [9, 8, 6, 5, 2]])
    group = np.array([0, 0, 1, 1])                    # income groups: hits 1,0 | 1,1
    arrays = {"target": target, "top5": top5, "group": group}
    assert M.recompute("acc_top5_wg", arrays, np.arange(4)) == 0.5
    assert M.recompute("acc_top5_wg", arrays, np.array([2, 3])) == 1.0


# Three images; captions t0,t1 -> image 0, t2 -> image 1, t3,t4 -> image 2. Rows: texts.
SCORES = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.1], [0.1, 0.7, 0.3], [0.5, 0.1, 0.4], [0.0, 0.2, 0.6]])
TEXT_IMAGE = np.array([0, 0, 1, 2, 2])


def test_retrieval_recall_clip_paper_sense():
    m, a = M.retrieval_metrics(SCORES, TEXT_IMAGE, ks=(1, 2, 5))
    # text -> image top-1: t0 right, t1 wrong (img1), t2 right, t3 wrong (img0), t4 right = 3/5
    assert m["image_retrieval_recall@1"] == pytest.approx(0.6)
    # image -> text top-1: img0 -> t0 (one of its two captions counts as a hit), img1 -> t1 (no), img2 -> t4
    assert m["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    assert m["mean_recall@1"] == pytest.approx(0.5 * (0.6 + 2 / 3))
    assert m["text_retrieval_recall@2"] == 1.0 and m["image_retrieval_recall@2"] == 1.0
    assert m["image_retrieval_recall@5"] == 1.0   # k past the number of images is all of them
    assert a["image_hit1"].tolist() == [True, False, True]
    assert a["text_hit1"].tolist() == [True, False, True, False, True]


def test_recompute_retrieval_resamples_images_with_their_captions():
    _, a = M.retrieval_metrics(SCORES, TEXT_IMAGE)
    assert M.recompute("mean_recall@1", a, np.arange(3)) == pytest.approx(0.5 * (0.6 + 2 / 3))
    # images 0,0,2: image side 1,1,1; captions t0,t1 twice, t3,t4 once: (2*1+2*0+0+1)/6
    assert M.recompute("mean_recall@1", a, np.array([0, 0, 2])) == pytest.approx(0.5 * (1 + 3 / 6))
    assert M.n_units(a) == 3


def test_winogavil_jaccard():
    # k = 2 associations (0, 3); the two most similar are 0 and 2: |{0}| / |{0,2,3}|
    assert M.winogavil_instance(np.array([0.9, 0.1, 0.8, 0.3, 0.2]), np.array([1, 0, 0, 1, 0])) == pytest.approx(1 / 3)
    m = M.winogavil_metrics(np.array([1 / 3, 1.0, 0.5]), np.array([5, 10, 12]))
    assert m["jaccard_score_10-12"] == 0.75 and m["jaccard_score_5-6"] == pytest.approx(1 / 3)
    assert m["avg_jaccard_score"] == pytest.approx((1 / 3 + 1.5) / 3) and m["jaccard_score_6"] is None
    arrays = {"jaccard": np.array([1 / 3, 1.0, 0.5]), "n_candidates": np.array([5, 10, 12])}
    assert M.recompute("jaccard_score_10-12", arrays, np.array([1, 1, 2])) == pytest.approx(2.5 / 3)


def test_recompute_matches_classification_metrics_and_refuses_unknown():
    m, a = M.classification_metrics(TARGET6, LOGITS6)
    idx = np.arange(4)
    for name in ("acc1", "acc5", "mean_per_class_recall"):
        assert M.recompute(name, a, idx) == pytest.approx(m[name])
    a["group"] = np.array([0, 0, 1, 1])               # hits 1,0 | 0,1
    assert M.recompute("acc_worst_region", a, idx) == 0.5
    assert M.recompute("F1-macro_all", a, idx) == pytest.approx(M.f1_macro(TARGET6, a["pred"]))
    assert M.recompute("acc1", a, np.array([0, 0, 3])) == 1.0
    with pytest.raises(HarnessError, match="no recompute rule"):
        M.recompute("bleu", a, idx)
