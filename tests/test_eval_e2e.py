"""End to end: a small multi-task suite in the exact CLIP_benchmark layout, evaluated with a real
open_clip checkpoint (open_clip's checkpoint format) through `evaluate` and `harness eval`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from evals.export import write_wds_task
from evals.run import evaluate
from harness.core.errors import HarnessError

COLORS = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
          "cyan": (30, 210, 220), "magenta": (210, 40, 200)}
FORMATS = (("webp", "WEBP"), ("png", "PNG"), ("jpg", "JPEG"))
TEMPLATES = ["a photo of a {c} square.", "a {c} thing."]
MODEL = "harness-tiny-32"


def image(color, fmt: str, size: int = 36) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format=fmt)
    return buf.getvalue()


def cls_samples(n: int, n_classes: int, bad: tuple[int, ...] = ()) -> list[dict]:
    names = list(COLORS)
    out = []
    for i in range(n):
        ext, fmt = FORMATS[i % 3]
        out.append({"jpg": b"\xff\xd8 truncated", "cls": i % n_classes} if i in bad else
                   {ext: image(COLORS[names[i % n_classes % 6]], fmt), "cls": i % n_classes})
    return out


SUITE_YAML = """
suite: toy
defaults: {hub: null}
tasks:
  - {key: toy_cls, name: Toy Colors, num_classes: 6, groups: [imagenet], dir: toy_cls}
  - {key: toy_shift, name: Toy Colors Shift, num_classes: 6, groups: [imagenet_shift], dir: toy_shift}
  - {key: toy_ret, name: Toy Retrieval, kind: retrieval, main_metric: mean_recall@1, groups: [retrieval], dir: toy_ret}
  - {key: toy_geo, name: Toy GeoDE, main_metric: acc_wg, num_classes: 6, groups: [fairness], dir: toy_geo,
     group: {from: npy, column: 0, name: region}}
  - {key: toy_bg, name: Toy Background, main_metric: acc_wg, num_classes: 6, groups: [fairness], dir: toy_bg,
     group: {from: json, field: group, name: background}}
  - {key: toy_face, name: Toy FairFace, kind: fairface, main_metric: null, groups: [fairness], dir: toy_face}
"""


def fairface_task(root: Path) -> None:
    objectives = {"race": ["white", "black", "asian"], "gender": ["man", "woman"], "age": ["child", "adult"],
                  "toxic": [f"thing{i}" for i in range(20)]}
    classnames = [f"{o}:{c}" for o, cs in objectives.items() for c in cs]
    templates = [f"{o}:a photo of a {{c}}." for o in objectives]
    rng = np.random.default_rng(0)
    samples = []
    for i in range(12):   # npy metadata: age, gender, race, race_binary
        race = i % 3
        meta = np.array([i % 2, (i // 2) % 2, race, int(race != 1)], np.int64)
        buf = io.BytesIO()
        np.save(buf, meta)
        samples.append({"png": image(tuple(int(x) for x in rng.integers(0, 255, 3)), "PNG"), "npy": buf.getvalue()})
    write_wds_task(root, samples, classnames, templates, shard_size=8)


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> dict:
    """Data for the toy suite and for two DataComp keys, plus a real open_clip checkpoint."""
    import open_clip
    import torch

    from harness.core.models import register_model_configs

    root = tmp_path_factory.mktemp("evalsuite")
    data = root / "data"
    names6 = list(COLORS)
    write_wds_task(data / "toy_cls", cls_samples(30, 6, bad=(7,)), names6, TEMPLATES, shard_size=12)
    write_wds_task(data / "toy_shift", cls_samples(12, 6), names6, TEMPLATES, shard_size=100)
    ret = [{FORMATS[i % 3][0]: image(COLORS[names6[i]], FORMATS[i % 3][1]),
            "txt": "\n".join(f"{w} {names6[i]} square" for w in ("a", "one", "the")[: 1 + i % 3])} for i in range(6)]
    write_wds_task(data / "toy_ret", ret, dataset_type="retrieval", shard_size=4)
    geo = cls_samples(18, 6)
    for i, s in enumerate(geo):
        buf = io.BytesIO()
        np.save(buf, np.array([i % 3, 7], np.int64))   # region, country
        s["npy"] = buf.getvalue()
    write_wds_task(data / "toy_geo", geo, names6, TEMPLATES, shard_size=10)
    bg = cls_samples(12, 6)
    for i, s in enumerate(bg):
        s["json"] = json.dumps({"group": ["grass", "sand"][i % 2]})
    write_wds_task(data / "toy_bg", bg, names6, TEMPLATES)
    fairface_task(data / "toy_face")
    write_wds_task(data / "wds_cifar10_test", cls_samples(20, 10),
                   ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
                   ["a photo of a {c}."])
    (root / "suite.yaml").write_text(SUITE_YAML)
    register_model_configs()
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(MODEL)
    ckpt = root / "epoch_1.pt"
    torch.save({"epoch": 1, "name": "toy", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    return {"root": root, "data": data, "suite": str(root / "suite.yaml"), "ckpt": ckpt}


def test_suite_end_to_end_and_resume(suite, tmp_path, capsys, monkeypatch):
    from evals import tasks_eval

    monkeypatch.setattr(tasks_eval, "MIN_BYTES_FOR_WORKERS", 0)   # decode workers even for toy tasks
    out = tmp_path / "eval"
    scores = evaluate(suite["ckpt"], MODEL, suite["data"], out, suite=suite["suite"], batch_size=8, workers=2,
                      progress=False)
    rows = [json.loads(line) for line in (out / "eval_results.jsonl").read_text().splitlines()]
    by = {r["key"]: r for r in rows}
    assert list(by) == ["toy_cls", "toy_shift", "toy_ret", "toy_geo", "toy_bg", "toy_face"]
    for r in rows:
        assert set(r) >= {"key", "dataset", "metrics"} and "main_metric" in r["metrics"]
    cls = by["toy_cls"]["metrics"]
    assert cls["n_examples"] == 29 and cls["n_undecodable"] == 1
    assert "1 undecodable image(s) skipped" in capsys.readouterr().out
    assert cls["main_metric"] == cls["acc1"] and cls["acc5"] is not None
    ret = by["toy_ret"]["metrics"]
    assert ret["n_captions"] == 1 + 2 + 3 + 1 + 2 + 3 and ret["main_metric"] == ret["mean_recall@1"]
    assert ret["text_retrieval_recall@10"] == 1.0 and ret["image_retrieval_recall@10"] == 1.0
    geo = by["toy_geo"]["metrics"]
    assert [geo[f"count_region:{g}"] for g in range(3)] == [6, 6, 6]
    assert geo["main_metric"] == geo["acc_wg"] == min(geo[f"acc_region:{g}"] for g in range(3))
    assert by["toy_bg"]["metrics"]["background_names"] == ["grass", "sand"]
    face = by["toy_face"]["metrics"]
    assert face["main_metric"] is None and face["count_race_binary:1"] == 8 and "toxicity_crime_wg" in face
    # per-example arrays recompute the main metric
    from evals.metrics import n_units, recompute

    for key, metric in (("toy_cls", "acc1"), ("toy_ret", "mean_recall@1"), ("toy_geo", "acc_wg")):
        arrays = dict(np.load(out / "per_example" / f"{key}.npz"))
        assert recompute(metric, arrays, np.arange(n_units(arrays))) == pytest.approx(by[key]["metrics"]["main_metric"])
    saved = json.loads((out / "scores.json").read_text())
    assert saved["missing"] == {} and saved["aggregates"]["ImageNet"] == cls["acc1"]
    mains = [by[k]["metrics"]["main_metric"] for k in ("toy_cls", "toy_shift", "toy_ret", "toy_geo", "toy_bg")]
    assert saved["aggregates"]["Average"] == pytest.approx(sum(mains) / 5)
    # rerun: nothing re-evaluated, same scores; a torn last line is dropped and that task redone
    evaluate(suite["ckpt"], MODEL, suite["data"], out, suite=suite["suite"], progress=False, workers=0)
    assert "done before" in capsys.readouterr().out
    text = (out / "eval_results.jsonl").read_text()
    assert len(text.splitlines()) == 6
    (out / "eval_results.jsonl").write_text(text[: text.rindex('{"key": "toy_face"') + 20])
    again = evaluate(suite["ckpt"], MODEL, suite["data"], out, suite=suite["suite"], progress=False, workers=0)
    assert again["evaluated"] == list(by) and len((out / "eval_results.jsonl").read_text().splitlines()) == 6
    assert list(again["timing"]) == ["toy_face"]


def test_datacomp_partial_run_reports_missing(suite, tmp_path):
    scores = evaluate(suite["ckpt"], MODEL, suite["data"], tmp_path, tasks=["cifar10", "imagenet1k", "fairness/geode"],
                      suite="datacomp", progress=False, workers=0)
    assert scores["evaluated"] == ["cifar10"]
    assert "wds_imagenet1k_test" in scores["unavailable"]["imagenet1k"]
    assert scores["aggregates"] == {k: None for k in scores["aggregates"]}
    assert scores["missing"]["ImageNet"] == ["imagenet1k"] and len(scores["missing"]["Average"]) == 37
    assert len(scores["missing"]["VTAB"]) == 13


def test_bad_task_data_is_named(suite, tmp_path, monkeypatch):
    import shutil

    from evals import tasks_eval

    monkeypatch.setattr(tasks_eval, "MIN_BYTES_FOR_WORKERS", 0)   # errors raised inside decode workers

    data = tmp_path / "data"
    shutil.copytree(suite["data"] / "toy_cls", data / "toy_cls")
    (data / "toy_cls" / "test" / "2.tar").unlink()
    with pytest.raises(HarnessError, match=r"toy_cls/test holds 2 shard\(s\).*nshards.txt says 3"):
        evaluate(suite["ckpt"], MODEL, data, tmp_path / "o1", suite=suite["suite"], tasks=["toy_cls"], progress=False, workers=0)
    shutil.rmtree(data / "toy_cls")
    shutil.copytree(suite["data"] / "toy_cls", data / "toy_cls")
    (data / "toy_cls" / "zeroshot_classification_templates.txt").write_text("\n")
    with pytest.raises(HarnessError, match="zeroshot_classification_templates.txt is empty"):
        evaluate(suite["ckpt"], MODEL, data, tmp_path / "o2", suite=suite["suite"], tasks=["toy_cls"], progress=False, workers=0)
    (data / "toy_cls" / "classnames.txt").unlink()
    with pytest.raises(HarnessError, match="classnames.txt is missing"):
        evaluate(suite["ckpt"], MODEL, data, tmp_path / "o3", suite=suite["suite"], tasks=["toy_cls"], progress=False, workers=0)
    shutil.rmtree(data / "toy_cls")
    shutil.copytree(suite["data"] / "toy_cls", data / "toy_cls")
    (data / "toy_cls" / "test" / "1.tar").write_bytes(b"\x00garbage" * 300)
    with pytest.raises(HarnessError, match=r"^\S*toy_cls/test/1.tar: not a readable tar shard \(ReadError") as err:
        evaluate(suite["ckpt"], MODEL, data, tmp_path / "o4", suite=suite["suite"], tasks=["toy_cls"], progress=False, workers=2)
    assert "\n" not in str(err.value)
    write_wds_task(data / "toy_shift", [{"png": image((1, 2, 3), "PNG"), "cls": "three"}], list(COLORS), TEMPLATES)
    with pytest.raises(HarnessError, match="toy_shift/test/0.tar: sample s0000000: bad or missing metadata"):
        evaluate(suite["ckpt"], MODEL, data, tmp_path / "o5", suite=suite["suite"], tasks=["toy_shift"], progress=False, workers=0)
    assert not (tmp_path / "o5" / "eval_results.jsonl").exists()


def test_cli_eval(suite, tmp_path, cli):
    out = tmp_path / "e"
    ok = cli("eval", f"checkpoint={suite['ckpt']}", "scale=tiny", f"data_dir={suite['data']}", f"out_dir={out}",
             f"suite={suite['suite']}", "tasks=[toy_cls,toy_ret]", "progress=false", "workers=0")
    assert ok.returncode == 0, ok.stderr
    assert "n/a, missing 1: toy_shift" in ok.stdout
    assert json.loads((out / "scores.json").read_text())["evaluated"] == ["toy_cls", "toy_ret"]


def test_wrong_architecture_and_other_checkpoint_refused(suite, tmp_path):
    import torch

    from evals.run import resolve_checkpoint

    with pytest.raises(HarnessError, match="is not a ViT-B-32 checkpoint"):
        evaluate(suite["ckpt"], "ViT-B-32", suite["data"], tmp_path / "w", suite=suite["suite"], progress=False, workers=0)
    with pytest.raises(HarnessError, match="scale tiny uses harness-tiny-32"):
        resolve_checkpoint(str(suite["ckpt"]), "ViT-B-32", "tiny")
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.json").write_text(json.dumps({"model": MODEL, "checkpoint": str(suite["ckpt"])}))
    assert resolve_checkpoint(str(run), None, "tiny") == (str(suite["ckpt"]), MODEL, "tiny")
    with pytest.raises(HarnessError, match="scale small uses ViT-B-32"):
        resolve_checkpoint(str(run), None, "small")
    # a run trained off-recipe at that scale (allow_off_recipe=true, another model) is evaluated
    (run / "train.json").write_text(json.dumps({"model": MODEL, "checkpoint": str(suite["ckpt"]),
                                                "off_recipe": True, "scale": "small"}))
    assert resolve_checkpoint(str(run), None, "small") == (str(suite["ckpt"]), MODEL, "datacomp")
    with pytest.raises(HarnessError, match="scale medium uses ViT-B-32"):
        resolve_checkpoint(str(run), None, "medium")
    out = tmp_path / "o"
    evaluate(suite["ckpt"], MODEL, suite["data"], out, suite=suite["suite"], tasks=["toy_shift"], progress=False, workers=0)
    other = tmp_path / "other.pt"
    sd = torch.load(suite["ckpt"], weights_only=True)
    sd["epoch"] = 2
    torch.save(sd, other)
    with pytest.raises(HarnessError, match="holds results of another checkpoint"):
        evaluate(other, MODEL, suite["data"], out, suite=suite["suite"], tasks=["toy_shift"], progress=False, workers=0)
    again = evaluate(other, MODEL, suite["data"], out, suite=suite["suite"], tasks=["toy_shift"], progress=False,
                     overwrite=True)
    assert again["evaluated"] == ["toy_shift"] and list(again["timing"]) == ["toy_shift"]
