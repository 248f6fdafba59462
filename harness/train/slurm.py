"""``harness train launcher=slurm``: the same open_clip_train run on a SLURM allocation via submitit.

One SLURM task per GPU (``nproc`` tasks on each of ``nnodes`` nodes), as DataComp's
``slurm_train.sh`` does with srun. submitit exports the torch.distributed variables in each task
and open_clip picks the rank up from SLURM's. ``slurm.submit=false`` writes the sbatch script
submitit would submit (``<folder>/train.sbatch``) and the job spec, and stops: that is what the
tests check, and what to read before spending an allocation.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable

from harness.core.errors import HarnessError
from harness.train.config import TrainOptions


def slurm_parameters(run: TrainOptions, nproc: int, job_name: str) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters (sbatch names) for one task per GPU."""
    s = run.slurm
    params = {"job_name": job_name, "nodes": run.nnodes, "ntasks_per_node": nproc, "gpus_per_node": nproc,
              "cpus_per_task": s.cpus_per_task, "time": s.timeout_min,
              "partition": s.partition, "account": s.account,
              "setup": ["export WANDB_MODE=${WANDB_MODE:-offline}", "export PYTHONFAULTHANDLER=1"]}
    return {k: v for k, v in params.items() if v is not None}


def job_folder(run: TrainOptions, out_dir: Path) -> Path:
    folder = run.slurm.folder
    return Path(folder).resolve() if folder else out_dir / "slurm"


def sbatch_script(run: TrainOptions, out_dir: Path, nproc: int, job_name: str) -> str:
    """The sbatch file submitit submits for this run (its command unpickles and runs :func:`task`)."""
    from submitit.slurm.slurm import _make_sbatch_string

    folder = job_folder(run, out_dir)
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, **slurm_parameters(run, nproc, job_name))


def task(args: list[str], out_dir: str, ident: dict, plan: dict, run: TrainOptions) -> dict | None:
    """One SLURM task: set up torch.distributed from SLURM, train, and (rank 0) write train.json."""
    import os

    from submitit.helpers import TorchDistributedEnvironment

    from harness.train.entry import main as entry_main
    from harness.train.record import record

    env = TorchDistributedEnvironment().export()
    os.environ.setdefault("WANDB_MODE", "offline")
    t0 = time.time()
    code = entry_main(args)
    if env.rank != 0:
        return None
    return record(Path(out_dir), ident, plan, run, 0, time.time() - t0, code)


class TrainTask(Checkpointable):
    """The submitted callable; requeued as is on preemption/timeout, where ``--resume latest`` continues."""

    def __call__(self, *args: Any) -> dict | None:
        return task(*args)


def submit(plan: dict, run: TrainOptions, out_dir: Path, ident: dict, nproc: int) -> dict:
    """Submit (or, with ``slurm.submit=false``, only write) the training job; returns what was done."""
    folder = job_folder(run, out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    job_name = f"harness-{plan['recipe']}"
    script = folder / "train.sbatch"
    script.write_text(sbatch_script(run, out_dir, nproc, job_name))
    spec = {**ident, "args": plan["args"], "sbatch": str(script), "nodes": run.nnodes, "tasks_per_node": nproc}
    (folder / "job.json").write_text(json.dumps(spec, indent=2))
    if not run.slurm.submit:
        return {**spec, "submitted": False}
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    except RuntimeError:
        raise HarnessError("launcher=slurm but no SLURM here (srun not found); slurm.submit=false writes the "
                           f"job to {folder} without submitting, launcher=local trains here") from None
    executor.update_parameters(**_executor_parameters(run, nproc, job_name))
    job = executor.submit(TrainTask(), plan["args"], str(out_dir), ident, plan, run)
    (out_dir / "train_started.json").write_text(json.dumps({**ident, "args": plan["args"], "slurm_job": job.job_id}))
    return {**spec, "submitted": True, "job_id": job.job_id}


def _executor_parameters(run: TrainOptions, nproc: int, job_name: str) -> dict[str, Any]:
    """The same parameters in AutoExecutor's names (timeout_min, tasks_per_node, slurm_*)."""
    p = slurm_parameters(run, nproc, job_name)
    out = {"name": p.pop("job_name"), "nodes": p.pop("nodes"), "tasks_per_node": p.pop("ntasks_per_node"),
           "gpus_per_node": p.pop("gpus_per_node"), "cpus_per_task": p.pop("cpus_per_task"),
           "timeout_min": p.pop("time")}
    out.update({f"slurm_{k}": v for k, v in p.items()})
    return out
