"""WinoGAViL: rows in nlphuji/winogavil's fields -> the harness's WebDataset layout -> DataComp's
Jaccard metric, checked against a direct computation with the same open_clip model."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from evals.run import evaluate
from evals.winogavil import export_winogavil
from harness.core.errors import HarnessError

MODEL = "harness-tiny-32"
SUITE = """
suite: toy
defaults: {hub: null}
tasks:
  - {key: misc/winogavil, name: WinoGAViL, kind: winogavil, main_metric: jaccard_score_10-12, groups: [retrieval], dir: winogavil}
"""
CUES = ("sun", "ocean", "forest", "fire", "snow")


def _png(rng) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _rows(tmp_path, rng):
    """Five instances with 5, 6, 10, 12 and 6 candidates, images as files, bytes and PIL images."""
    from PIL import Image

    rows = []
    for i, n in enumerate((5, 6, 10, 12, 6)):
        cands = [f"c{i}_{j}" for j in range(n)]
        images = []
        for j, name in enumerate(cands):
            data = _png(rng)
            if j % 3 == 0:
                path = tmp_path / "img" / f"{name}.png"
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(data)
                images.append(str(path))
            else:
                images.append(data if j % 3 == 1 else Image.open(io.BytesIO(data)))
        rows.append({"cue": CUES[i], "candidates": cands, "candidates_images": images,
                     "associations": cands[:2 + i % 3]})
    return rows


@pytest.fixture(scope="module")
def model_ckpt(tmp_path_factory):
    import open_clip
    import torch

    from harness.core.models import register_model_configs

    register_model_configs()
    torch.manual_seed(1)
    model, _, _ = open_clip.create_model_and_transforms(MODEL)
    ckpt = tmp_path_factory.mktemp("wino") / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    return ckpt


def _expected(rows, ckpt) -> list[float]:
    """Jaccard per instance, computed directly: top-k candidates by cosine similarity to the cue."""
    import torch
    from PIL import Image

    from evals.metrics import jaccard
    from evals.winogavil import _image_bytes
    from harness.core.models import load_checkpoint

    net, pre, tok = load_checkpoint(str(ckpt), MODEL, device="cpu")
    out = []
    with torch.no_grad():
        for row in rows:
            ims = torch.stack([pre(Image.open(io.BytesIO(_image_bytes(im)[1])).convert("RGB"))
                               for im in row["candidates_images"]])
            fi = torch.nn.functional.normalize(net.encode_image(ims), dim=-1)
            ft = torch.nn.functional.normalize(net.encode_text(tok([row["cue"]])), dim=-1)[0]
            k = len(row["associations"])
            chosen = np.zeros(len(ims), bool)
            chosen[np.argsort(-(fi @ ft).numpy(), kind="stable")[:k]] = True
            truth = np.isin(row["candidates"], row["associations"])
            out.append(jaccard(truth, chosen))
    return out


def test_winogavil_matches_a_direct_computation(tmp_path, model_ckpt):
    rng = np.random.default_rng(0)
    rows = _rows(tmp_path, rng)
    data = tmp_path / "data"
    assert export_winogavil(rows, data / "winogavil", shard_size=7) == 5 + 6 + 10 + 12 + 6
    assert (data / "winogavil" / "test" / "nshards.txt").read_text() == "6\n"
    (tmp_path / "suite.yaml").write_text(SUITE)
    out = tmp_path / "eval"
    scores = evaluate(model_ckpt, MODEL, data, out, suite=str(tmp_path / "suite.yaml"), progress=False, workers=0)
    m = json.loads((out / "eval_results.jsonl").read_text())["metrics"]
    want = _expected(rows, model_ckpt)
    assert m["avg_jaccard_score"] == pytest.approx(np.mean(want))
    assert m["jaccard_score_5"] == pytest.approx(want[0]) and m["jaccard_score_12"] == pytest.approx(want[3])
    assert m["jaccard_score_5-6"] == pytest.approx(np.mean([want[0], want[1], want[4]]))
    assert m["main_metric"] == m["jaccard_score_10-12"] == pytest.approx(np.mean(want[2:4]))
    assert m["n_instances"] == 5 and m["n_examples"] == 39 and scores["missing"] == {}
    from evals.metrics import n_units, recompute

    arrays = dict(np.load(out / "per_example" / "misc" / "winogavil.npz"))
    assert recompute("jaccard_score_10-12", arrays, np.arange(n_units(arrays))) == pytest.approx(m["main_metric"])


def test_undecodable_candidate_skips_its_instance(tmp_path, model_ckpt):
    rng = np.random.default_rng(1)
    rows = _rows(tmp_path, rng)
    rows[3]["candidates_images"][4] = b"\xff\xd8 not a jpeg"
    export_winogavil(rows, tmp_path / "data" / "winogavil")
    (tmp_path / "suite.yaml").write_text(SUITE)
    evaluate(model_ckpt, MODEL, tmp_path / "data", tmp_path / "eval", suite=str(tmp_path / "suite.yaml"),
             progress=False, workers=0)
    m = json.loads((tmp_path / "eval" / "eval_results.jsonl").read_text())["metrics"]
    assert m["n_undecodable"] == 1 and m["n_instances"] == 4 and m["n_instances_skipped"] == 1
    assert m["jaccard_score_12"] is None and m["main_metric"] == pytest.approx(_expected(rows[2:3], model_ckpt)[0])


@pytest.mark.parametrize("change, message", [
    ({"associations": ["nope"]}, "associations"),
    ({"associations": []}, "associations"),
    ({"candidates_images": []}, "0 images"),
])
def test_malformed_rows_are_refused(tmp_path, change, message):
    row = {"cue": "sun", "candidates": ["a", "b"], "candidates_images": [b"x", b"y"], "associations": ["a"]} | change
    with pytest.raises(HarnessError, match=message):
        export_winogavil([row], tmp_path / "w")
    with pytest.raises(HarnessError, match="image not found"):
        export_winogavil([{**row, "candidates_images": ["/nonexistent.png"] * 2, "associations": ["a"]}], tmp_path / "w2")
    assert list(tmp_path.iterdir()) == []   # nothing half-written


def test_export_never_overwrites(tmp_path):
    (tmp_path / "w").mkdir()
    with pytest.raises(HarnessError, match="exists"):
        export_winogavil([], tmp_path / "w")
