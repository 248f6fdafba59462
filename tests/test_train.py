"""`harness train`: argument lists per scale, refusals, and real open_clip_train runs on CPU.

Runs use the tiny recipe with a test budget (batch 32, a few hundred samples) set through
``allow_off_recipe=true``, so each is a real open_clip_train process of ~10-15 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.train.config import RecipeFields, SlurmOptions, TrainConfig, TrainOptions
from harness.train.launch import train
from tracks.config import ScaleConfig
from tracks.recipes import RECIPES, get_recipe, recipe_hash

# a test budget (off-recipe), one CPU thread per run: the suite shares 2 cores with other tests
SMALL = {"recipe": RecipeFields(batch_size=32, train_num_samples=512), "allow_off_recipe": True, "threads": 1}
COLOURS = ("red", "green", "blue", "yellow")


def make_shards(root: Path, n_shards: int = 4, per_shard: int = 64, seed: int = 0) -> Path:
    """Real WebDataset shards (png + txt + json) of coloured squares, with the shards manifest."""
    from harness.core.manifest import sha256_file, write_manifest
    from harness.pool.world.tario import encode_image, write_tar

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rgbs = np.array([[200, 0, 0], [0, 200, 0], [0, 0, 200], [200, 200, 0]], np.int64)
    shards = []
    for s in range(n_shards):
        name, samples = f"{s:08d}.tar", []
        for i in range(per_shard):
            c = int(rng.integers(len(COLOURS)))
            img = np.clip(rgbs[c] + rng.integers(0, 50, (32, 32, 3)), 0, 255).astype(np.uint8)
            key = f"{s:04d}{i:04d}"
            samples.append((key, {"png": encode_image(img, "png"), "txt": f"a {COLOURS[c]} square".encode(),
                                  "json": json.dumps({"uid": f"{key:0>32}"}).encode()}))
        write_tar(root / name, samples)
        shards.append({"name": name, "n_samples": per_shard, "sha256": sha256_file(root / name)})
    write_manifest(root, "reshard", f"test-shards-{n_shards}-{per_shard}-{seed}", {}, {},
                   n_samples=n_shards * per_shard, shards=shards, subset_sha256=None)
    return root


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("train") / "shards")


@pytest.fixture(scope="module")
def tiny_run(shards, tmp_path_factory) -> dict:
    """One real tiny training run, shared by the tests that only read its outputs."""
    return train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=tmp_path_factory.mktemp("train") / "run", seed=0, **SMALL))


def _weights(doc: dict) -> dict:
    import torch

    return torch.load(doc["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


# --- argument lists and refusals (no training) ---------------------------------------------------

@pytest.mark.parametrize("scale", sorted(RECIPES))
def test_dry_run_argument_list_for_each_scale(scale, shards, tmp_path):
    r = get_recipe(scale)
    plan = train(TrainConfig(scale=ScaleConfig(scale), data=shards, out_dir=tmp_path / "run", seed=3, nproc=2, dry_run=True, workers=1))
    args = plan["args"]
    value = {a: b for a, b in zip(args, args[1:]) if a.startswith("--")}
    assert plan["recipe_hash"] == recipe_hash(r) and not plan["off_recipe"]
    assert value["--model"] == r.model and float(value["--lr"]) == r.lr and int(value["--warmup"]) == r.warmup
    assert int(value["--batch-size"]) * 2 == r.batch_size and plan["per_process_batch"] == r.batch_size // 2
    assert int(value["--train-num-samples"]) * int(value["--epochs"]) == r.train_num_samples
    assert value["--seed"] == "3" and value["--train-data"].endswith("/{00000000..00000003}.tar")
    assert ("--beta2" in args) == (r.beta2 is not None)
    for flag in ("--dataset-resampled", "--local-loss", "--gather-with-grad", "--save-most-recent"):
        assert flag in args
    assert ("--grad-checkpointing" in args) == (value["--device"] != "cpu")  # memory, not math: dropped on CPU
    assert value["--resume"] == "latest" and value["--wd"] == "0.2" and value["--dataset-type"] == "webdataset"
    assert not (tmp_path / "run").exists()
    if scale.startswith("tiny"):
        assert value["--precision"] == "fp32" and value["--device"] == "cpu" and plan["problems"] == []
    else:  # the shards fixture is far smaller than a DataComp batch: reported, not hidden
        assert any("fewer than one global batch" in p for p in plan["problems"])


def test_cli_dry_run_prints_recipe_hash_and_args(cli, shards, tmp_path):
    res = cli("train", f"data={shards}", f"out_dir={tmp_path / 'r'}", "dry_run=true")
    assert res.returncode == 0, res.stderr
    assert f"recipe tiny hash {recipe_hash(get_recipe('tiny'))}" in res.stdout
    assert "open_clip_train.main --save-frequency 0 --train-data" in res.stdout
    assert not (tmp_path / "r").exists()


def test_cli_refuses_recipe_override(cli, shards, tmp_path):
    res = cli("train", f"data={shards}", f"out_dir={tmp_path / 'r'}", "recipe.lr=0.01")
    assert res.returncode == 2
    assert "error: lr is fixed by the tiny recipe" in res.stderr and "allow_off_recipe=true" in res.stderr


def test_cli_refuses_an_unknown_key_by_the_schema(cli, shards, tmp_path):
    res = cli("train", f"data={shards}", f"out_dir={tmp_path / 'r'}", "grad_clip_norm=1.0", "recipe.lrr=0.1")
    assert res.returncode == 2 and "harness train has no key 'grad_clip_norm'" in res.stderr, res.stderr
    res = cli("train", f"data={shards}", f"out_dir={tmp_path / 'r'}", "recipe.lrr=0.1")
    assert "has no key 'recipe.lrr'; did you mean recipe.lr?" in res.stderr, res.stderr


def test_off_recipe_is_marked_and_hashed_differently(shards, tmp_path):
    plan = train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=tmp_path, dry_run=True, allow_off_recipe=True, recipe=RecipeFields(lr=0.01)))
    assert plan["off_recipe"] and plan["recipe_hash"] != recipe_hash(get_recipe("tiny"))
    assert "0.01" in plan["args"]
    same = train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=tmp_path, dry_run=True, recipe=RecipeFields(lr=get_recipe("tiny").lr)))
    assert not same["off_recipe"]


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": "huge"}, "unknown scale 'huge'"),
    ({"nproc": 3}, "global batch 128 does not divide over 3 process"),
    ({"workers": 3, "nproc": 2}, "4 shard\\(s\\) for 3 worker\\(s\\) × 2 process\\(es\\) = 6 readers"),
    ({"recipe": RecipeFields(batch_size=512), "allow_off_recipe": True},
     "holds 256 samples, fewer than one global batch \\(512\\)"),
    ({"precision": "amp"}, "precision 'amp' is not allowed at scale tiny"),
    ({"logger": "mlflow"}, "unknown logger 'mlflow'"),
])
def test_bad_requests_are_refused_before_training(shards, tmp_path, kwargs, message):
    kwargs = {"scale": "tiny", **kwargs}
    with pytest.raises(HarnessError, match=message):
        train(TrainConfig(scale=ScaleConfig(kwargs.pop("scale")), data=shards, out_dir=tmp_path / "run", **kwargs))
    assert not (tmp_path / "run").exists()


def test_bad_data_dirs_are_refused(tmp_path, shards):
    with pytest.raises(HarnessError, match="no manifest.json"):
        train(TrainConfig(scale=ScaleConfig("tiny"), data=tmp_path, out_dir=tmp_path / "run"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"n_samples": 0, "shards": []}))
    with pytest.raises(HarnessError, match="holds no shards"):
        train(TrainConfig(scale=ScaleConfig("tiny"), data=empty, out_dir=tmp_path / "run"))
    (empty / "manifest.json").write_text(json.dumps({"n_samples": 64, "shards": [{"name": "00000000.tar"}]}))
    with pytest.raises(HarnessError, match="shard 00000000.tar listed in manifest.json is missing"):
        train(TrainConfig(scale=ScaleConfig("tiny"), data=empty, out_dir=tmp_path / "run"))


def test_slurm_job_is_generated_without_submitting(shards, tmp_path):
    done = train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=tmp_path / "run", nproc=2, nnodes=2, workers=1, launcher="slurm", slurm=SlurmOptions(submit=False, partition="gpu", cpus_per_task=4)))
    script = Path(done["sbatch"]).read_text()
    assert not done["submitted"] and done["world_size"] == 4
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=4", "-m submitit.core._submit"):
        assert line in script
    assert "--batch-size" in done["args"] and done["args"][done["args"].index("--batch-size") + 1] == "32"


# --- real training ------------------------------------------------------------------------------

def test_tiny_training_runs_and_records_train_json(tiny_run):
    from harness.core.models import load_checkpoint, model_name_of

    run_dir = Path(tiny_run["checkpoint"]).parents[2]
    on_disk = json.loads((run_dir / "train.json").read_text())
    assert on_disk == tiny_run
    assert tiny_run["recipe"] == "tiny" and tiny_run["off_recipe"] and tiny_run["world_size"] == 1
    assert tiny_run["samples_seen"] == 512 and tiny_run["samples_per_s"] > 0 and tiny_run["wall_s"] > 0
    assert tiny_run["data_manifest_hash"] == "test-shards-4-64-0"
    assert "torch" in tiny_run["versions"] and "open_clip_torch" in tiny_run["versions"]
    log = (run_dir / "tiny_scale" / "out.log").read_text()
    assert "Train Epoch: 3 [128/128 (100%)]" in log and "Train Epoch: 4" not in log  # 4 epochs × 128 samples
    model, _, _ = load_checkpoint(tiny_run["checkpoint"], model_name_of(run_dir))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_finished_run_is_not_retrained(tiny_run, shards):
    run_dir = Path(tiny_run["checkpoint"]).parents[2]
    mtime = os.path.getmtime(tiny_run["checkpoint"])
    t0 = time.time()
    again = train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=run_dir, seed=0, **SMALL))
    assert again == tiny_run and os.path.getmtime(tiny_run["checkpoint"]) == mtime and time.time() - t0 < 5


def test_run_dir_of_another_recipe_is_refused_naming_both_hashes(tiny_run, shards):
    run_dir = Path(tiny_run["checkpoint"]).parents[2]
    with pytest.raises(HarnessError) as err:
        train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=run_dir, seed=0, **{**SMALL, "recipe": RecipeFields(batch_size=32, train_num_samples=512, lr=2e-3)}))
    msg = str(err.value)
    assert tiny_run["recipe_hash"] in msg and "hash" in msg.split(tiny_run["recipe_hash"])[1]
    with pytest.raises(HarnessError, match="another seed"):
        train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=run_dir, seed=1, **SMALL))


def test_same_seed_gives_identical_weights_with_or_without_grad_checkpointing(tiny_run, shards, tmp_path,
                                                                             monkeypatch):
    """Same seed, same weights; the rerun also passes DataComp's --grad-checkpointing, which CPU
    runs drop (harness.train.launch.SKIPPED_FLAGS): it must not change a single bit."""
    import torch

    from harness.train import launch as train_mod

    monkeypatch.setattr(train_mod, "SKIPPED_FLAGS", set())
    again = train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=tmp_path / "again", seed=0, **SMALL))
    assert "--grad-checkpointing" in again["args"] and "--grad-checkpointing" not in tiny_run["args"]
    a, b = _weights(tiny_run), _weights(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # long end-to-end check; `pytest -m slow` runs it
def test_resume_after_sigkill_reaches_the_same_sample_count(shards, tmp_path):
    """SIGKILL `harness train` after its first checkpoint; the same command finishes the run."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness", "train", f"data={shards}", f"out_dir={run_dir}",
           "recipe.batch_size=32", "recipe.train_num_samples=512", "allow_off_recipe=true", "num_checkpoints=4",
           "threads=1"]
    latest = run_dir / "tiny_scale" / "checkpoints" / "epoch_latest.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.exists(), "no checkpoint appeared before the deadline"
    # the trainer dies with its parent (PR_SET_PDEATHSIG); its dataloader worker follows when
    # torch's worker watchdog notices (a few seconds)
    deadline = time.time() + 60
    while _processes_mentioning(str(run_dir)) and time.time() < deadline:
        time.sleep(0.5)
    assert not _processes_mentioning(str(run_dir)), "an orphaned trainer survived its parent"
    assert not (run_dir / "train.json").exists()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((run_dir / "train.json").read_text())
    assert 1 <= doc["resumed_from_epoch"] < 4 and doc["samples_seen"] == 512
    assert "=> resuming checkpoint" in (run_dir / "tiny_scale" / "out.log").read_text()


def test_torchrun_two_gloo_processes(shards, tmp_path):
    doc = train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=tmp_path / "run", seed=0, nproc=2, **SMALL))
    assert doc["world_size"] == 2 and doc["per_process_batch"] == 16 and doc["samples_seen"] == 512
    log = (tmp_path / "run" / "tiny_scale" / "out.log").read_text()
    assert "Running in distributed mode with multiple processes" in log and "total 2" in log
    assert sum(t.numel() for t in _weights(doc).values()) > 0


def test_wandb_logger_is_offline_by_default(shards, tmp_path, monkeypatch):
    from harness.train.launch import _child_env, resolve

    plan = train(TrainConfig(scale=ScaleConfig("tiny"), data=shards, out_dir=tmp_path, dry_run=True, logger="wandb"))
    assert plan["args"][-4:] == ["--report-to", "wandb", "--wandb-project-name", "datacomp-harness"]
    monkeypatch.delenv("WANDB_MODE", raising=False)
    _, run, _ = resolve("tiny", TrainOptions(logger="wandb"))
    env = _child_env(run, tmp_path, nproc=2)
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(tmp_path) and env["OMP_NUM_THREADS"] == "1"
    assert env.get("OMP_WAIT_POLICY", "PASSIVE") == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert _child_env(run, tmp_path, nproc=1)["WANDB_MODE"] == "online"
