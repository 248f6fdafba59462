"""The training process: ``python -m harness.train.entry RUN.json`` (its ``args``) or ``ARGS...``.

It is open_clip's own ``open_clip_train.main`` with these things done first, none of which
touches its training loop (plus :func:`_cpu_ddp`, so that DDP starts on CPU/gloo):
- the harness's model configs are registered (otherwise "Model config ... not found");
- the process dies with its parent (so a SIGKILLed ``harness train`` leaves no orphan trainer
  holding the run directory), and CPU threads are fixed (reproducible CPU runs);
- the sample shuffle buffer is seeded. open_clip's webdataset pipeline seeds its shard sampler
  from the dataloader worker seed (hence from ``--seed``), but its ``wds.shuffle`` stage draws
  from ``time()`` and the pid, so two runs with one seed would see different sample orders.
  :class:`SeededShuffle` seeds that same stage from ``torch.initial_seed()``, which open_clip
  and the DataLoader derive from ``--seed``, the rank and the worker id. (With ``workers=0``
  open_clip's shard sampler falls back to a rank-only seed: still reproducible, but the shard
  order then does not change with ``--seed``; the tiny recipes use one worker.)
"""

from __future__ import annotations

import os
import random
import sys

THREADS_ENV = "HARNESS_TRAIN_THREADS"
PARENT_ENV = "HARNESS_TRAIN_PARENT"


class SeededShuffle:
    """Drop-in for ``webdataset.shuffle(bufsize, initial)`` whose rng comes from the torch seed."""

    def __init__(self, bufsize: int = 1000, initial: int = 100, **_: object):
        self.bufsize, self.initial, self.calls = bufsize, initial, 0

    def __call__(self, src):
        import torch
        from webdataset import filters

        self.calls += 1  # one call per pass (epoch) of this worker over its shards
        rng = random.Random(torch.initial_seed() * 1_000_003 + self.calls)
        return filters.shuffle(bufsize=self.bufsize, initial=self.initial, rng=rng)(src)


def _cpu_ddp():
    """DDP that accepts open_clip's ``device_ids=[cpu]``: open_clip_train 3.3.0 always passes the
    device, and torch refuses device_ids for CPU modules, so gloo/CPU training could not start."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    class CpuTolerantDDP(DistributedDataParallel):
        def __init__(self, module, device_ids=None, *args, **kwargs):
            if device_ids and all(torch.device(d).type == "cpu" for d in device_ids):
                device_ids = None
            super().__init__(module, device_ids, *args, **kwargs)

    return CpuTolerantDDP


def _die_with_parent() -> None:
    """Linux: ask for SIGKILL when the parent dies; exit if it is already gone."""
    expected = os.environ.get(PARENT_ENV)
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if expected and os.getppid() == 1:
        sys.exit(1)


def prepare_process() -> None:
    """Everything done before open_clip_train.main runs (see the module docstring)."""
    import torch
    import webdataset

    from harness.core.models import register_model_configs

    threads = os.environ.get(THREADS_ENV)
    if threads:
        torch.set_num_threads(int(threads))
    if not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
    webdataset.shuffle = SeededShuffle
    torch.nn.parallel.DistributedDataParallel = _cpu_ddp()
    register_model_configs()


def read_argv(argv: list[str]) -> list[str]:
    """A single ``*.json`` argument is a run file holding ``args``: torchrun's own parser would
    otherwise claim open_clip options that prefix-match its own (``--logs`` vs ``--logs-specs``)."""
    if len(argv) == 1 and argv[0].endswith(".json"):
        import json

        with open(argv[0]) as fh:
            return list(json.load(fh)["args"])
    return argv


def main(argv: list[str]) -> int:
    argv = read_argv(argv)
    _die_with_parent()
    prepare_process()
    from open_clip_train.main import main as open_clip_main

    status = open_clip_main(argv)
    return 1 if status == -1 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
