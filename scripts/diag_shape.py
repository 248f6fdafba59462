"""Does a tiny checkpoint know *shape*? Zero-shot shape accuracy on freshly rendered single-object
scenes over balanced backgrounds, with prompts that name more and more of the true scene.

    python scripts/diag_shape.py <harness train run dir> [--n 600]

Prints accuracy (chance 0.10) for: "a photo of a {shape}.", the object phrase with its true
colour/count, and the full caption with every other attribute true (see evals/NOTES.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def shape_accuracy(net, pre, tok, n: int, seed: int = 5) -> dict[str, float]:
    import torch
    from PIL import Image

    from harness.pool.world import render, scenes, vocab

    sc = scenes.sample_scenes(np.random.default_rng(seed), n, 32, style=0, bg_bias=0.0)
    images = render.render_scenes(render.build_banks(32, 0), sc)

    def full(i: int, s: int) -> str:
        alt = {k: v.copy() for k, v in sc.items()}
        alt["shape"][i] = s
        return scenes.full_caption(alt, i)

    prompts = {
        "generic": lambda i, s: f"a photo of a {vocab.SHAPES[s]}.",
        "colour+count": lambda i, s: scenes.object_phrase(s, int(sc["color"][i]), int(sc["count"][i]), None),
        "full caption": full,
    }
    out = {}
    with torch.no_grad():
        img = torch.nn.functional.normalize(net.encode_image(torch.stack([pre(Image.fromarray(x)) for x in images])), dim=-1)
        for name, make in prompts.items():
            texts = [make(i, s) for i in range(n) for s in range(len(vocab.SHAPES))]
            txt = torch.nn.functional.normalize(net.encode_text(tok(texts)), dim=-1).view(n, len(vocab.SHAPES), -1)
            pred = torch.einsum("nd,nkd->nk", img, txt).argmax(1).numpy()
            out[name] = float((pred == sc["shape"]).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=600)
    args = ap.parse_args()
    from harness.core.models import load_checkpoint

    info = json.loads((args.run_dir / "train.json").read_text())
    net, pre, tok = load_checkpoint(info["checkpoint"], info["model"], device="cpu")
    net.eval()
    print(json.dumps(shape_accuracy(net, pre, tok, args.n), indent=2))


if __name__ == "__main__":
    main()
