"""``train.json``: the record of a finished training run, written last (so it means finished),
by the local launcher and by the SLURM task alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.core.errors import HarnessError
from harness.train.config import TrainOptions

TRAIN_JSON = "train.json"


def _tail(output: str, log: Path, n: int = 15) -> str:
    """The child's last lines (its traceback), without torch's glog-style INFO chatter; else out.log's."""
    lines = [ln for ln in output.splitlines() if not re.match(r"(\[rank\d+\]:)?I\d{4} ", ln)]
    if not lines and log.is_file():
        lines = log.read_text().splitlines()
    return "\n".join(lines[-n:])



def record(out_dir: Path, ident: dict, plan: dict, run: TrainOptions, first_epoch: int, wall: float, returncode: int,
           output: str = "") -> dict:
    """Check that open_clip finished and write ``train.json`` atomically (written last = finished)."""
    from harness.core.manifest import versions

    name = f"{plan['recipe']}_scale"
    final = out_dir / name / "checkpoints" / f"epoch_{run.num_checkpoints}.pt"
    if returncode != 0 or not final.is_file():
        tail = _tail(output, out_dir / name / "out.log")
        raise HarnessError(f"open_clip_train failed (exit {returncode}) in {out_dir}; rerun the same command "
                           f"to resume. Last log lines:\n{tail}")
    total = plan["samples_seen"]
    trained_now = total * (run.num_checkpoints - first_epoch) // run.num_checkpoints
    doc = {**ident, "scale": plan["recipe"], "checkpoint": str(final), "samples_seen": total,
           "samples_per_s": round(trained_now / wall, 2), "wall_s": round(wall, 2),
           "resumed_from_epoch": first_epoch, "per_process_batch": plan["per_process_batch"],
           "precision": run.precision, "device": run.device, "threads": run.threads,
           "args": plan["args"], "versions": versions()}
    tmp = out_dir / f".{TRAIN_JSON}.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(out_dir / TRAIN_JSON)
    return doc
