"""Trust properties that can be checked on the source tree itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ("harness", "tracks", "evals", "leaderboard")

# patterns that would let a harness-written file run code when loaded, or load one that could
UNSAFE = {
    r"\bimport pickle\b|\bpickle\.dump": "pickle",
    r"allow_pickle\s*=\s*True": "np.load/np.save with allow_pickle=True",
    r"weights_only\s*=\s*False": "torch.load with weights_only=False",
    r"(?<![.\w])(exec|eval)\(": "exec/eval of text",
}
CREDENTIALS = {
    r"AKIA[0-9A-Z]{16}": "AWS access key id",
    r"\bhf_[A-Za-z0-9]{30,}\b": "Hugging Face token",
    r"\bghp_[A-Za-z0-9]{36}\b": "GitHub token",
    r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----": "private key",
    r"(?i)wandb_api_key\s*=\s*['\"][0-9a-f]{40}": "wandb API key",
    r"https://hooks\.slack\.com/services/": "Slack webhook",
}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.splitlines() if (REPO / p).is_file()]


def _scan(files: list[Path], patterns: dict[str, str]) -> list[str]:
    hits = []
    for path in files:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for pat, what in patterns.items():
            for m in re.finditer(pat, text):
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{path}:{line}: {what}")
    return hits


def test_harness_code_never_writes_or_loads_pickles():
    files = [p for p in tracked_files() if p.suffix == ".py" and p.relative_to(REPO).parts[0] in CODE_DIRS]
    assert files, "no harness source found"
    assert _scan(files, UNSAFE) == []


def test_no_credential_like_string_in_repo():
    files = [p for p in tracked_files() if "tests/faults/test_trust_static.py" not in str(p)]
    assert len(files) > 10
    assert _scan(files, CREDENTIALS) == []


def test_scanner_finds_planted_credentials(tmp_path):
    planted = tmp_path / "x.py"
    planted.write_text("key = 'AKIA" + "ABCDEFGHIJKLMNOP'\nimport pic" + "kle\n")
    assert len(_scan([planted], CREDENTIALS)) == 1
    assert len(_scan([planted], UNSAFE)) == 1


def _calls(files: list[Path], name: str) -> list[tuple[str, str]]:
    """(file:line, argument text) of every ``name(...)`` call, arguments up to the matching ')'."""
    out = []
    for path in files:
        text = path.read_text()
        for m in re.finditer(re.escape(name) + r"\(", text):
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            out.append((f"{path}:{text.count(chr(10), 0, m.start()) + 1}", text[m.end():i - 1]))
    return out


def test_every_torch_load_says_weights_only_true():
    """Explicit, so a torch downgrade (default False before 2.6) cannot turn loads into code execution."""
    files = [p for p in tracked_files() if p.suffix == ".py" and p.relative_to(REPO).parts[0] in CODE_DIRS]
    loads = _calls(files, "torch.load")
    assert loads, "no torch.load found: the scan is looking in the wrong place"
    assert [where for where, args in loads if not re.search(r"weights_only\s*=\s*True", args)] == []


def test_checkpoints_the_harness_writes_load_with_weights_only(tiny_world):
    """The one file the harness itself torch.saves (the tiny world's reference CLIP) holds only
    tensors and plain data: it loads with weights_only=True."""
    import torch

    ref = tiny_world["pool_dir"] / "reference"
    (ckpt,) = ref.glob("*.pt")
    doc = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert set(doc) == {"state_dict", "model_name"} and all(torch.is_tensor(v) for v in doc["state_dict"].values())
    others = [p for p in tiny_world["pool_dir"].rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    assert others == []
