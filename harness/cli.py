"""``harness <command> key=value ...``: Hydra-composed configs from ``conf/``, one entry point.

Group choices (``scale=``, ``track=``, ``filter=``, ``eval=``) are checked before composing so
that a typo gives one clear line with close matches. ``filter=<anything else>`` (a plugin name
or ``file.py:func``) becomes ``filter=plugin filter.name=<it>``; ``filter.<param>=v`` may add
keys a filter's YAML does not list.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from pathlib import Path
from typing import Sequence

from harness.commands import COMMANDS, Command
from harness.core.errors import HarnessError
from harness.core.paths import conf_dir, group_options

GROUPS = ("scale", "track", "filter", "eval")
ADDABLE_PREFIXES = ("filter.", "train.", "world.")
OUTPUT_KEYS = ("out_dir", "out", "work_dir")  # folders (or files) a command writes


def _close(word: str, options: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, options, n=3)
    return f"; did you mean {', '.join(near)}?" if near else ""


def rewrite_overrides(overrides: Sequence[str]) -> list[str]:
    """Validate group choices and turn free-form filter specs into Hydra overrides."""
    out: list[str] = []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if not sep:
            raise HarnessError(f"argument {ov!r} is not key=value")
        if key in GROUPS:
            options = group_options(key)
            if value in options:
                out.append(ov)
            elif key == "filter":
                out += ["filter=plugin", f"++filter.name={value}"]
            else:
                raise HarnessError(f"unknown {key} {value!r} (choose from: {', '.join(options)}){_close(value, options)}")
        elif key.startswith(ADDABLE_PREFIXES):
            out.append(f"++{ov}")
        else:
            out.append(ov)
    return out


# the shared keys' other spellings (DESIGN: `eval_dir`/`data_dir`, `out`/`out_dir`), offered first
KEY_ALIASES = {"data_dir": "eval_dir", "eval_dir": "data_dir", "out": "out_dir", "out_dir": "out"}


def compose(config_name: str, overrides: Sequence[str], command: str = ""):
    """Compose a command's config with Hydra's compose API (no working-dir change, no outputs/)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            try:
                return hydra_compose(config_name=config_name, overrides=rewrite_overrides(overrides))
            except HydraException as exc:
                unknown = re.match(r"Could not override '([^'.]+)'", str(exc))
                if unknown is None:
                    raise
                keys = list(hydra_compose(config_name=config_name))
                raise HarnessError(_unknown_key(unknown.group(1), keys, command or config_name)) from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise HarnessError(str(exc).splitlines()[0]) from None


def _unknown_key(key: str, keys: list[str], command: str) -> str:
    alias = KEY_ALIASES.get(key)
    near = [alias] if alias in keys else difflib.get_close_matches(key, keys, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return f"harness {command} has no key {key!r}{hint} (harness {command} --help lists its keys)"


def _usage() -> str:
    width = max(len(" ".join(k)) for k in COMMANDS)
    lines = ["usage: harness <command> [key=value ...] [--help] [--cfg job]", "", "commands:"]
    lines += [f"  {' '.join(k):<{width}}  {c.help}" for k, c in COMMANDS.items()]
    lines += ["", "Keys are Hydra overrides composed from conf/; `harness <command> --help` lists them."]
    return "\n".join(lines)


def _find(argv: list[str]) -> tuple[tuple[str, ...], Command, list[str]]:
    words = [a for a in argv if "=" not in a and not a.startswith("-")]
    for n in (2, 1):
        key = tuple(words[:n])
        if len(key) == n and key in COMMANDS:
            rest = list(argv)
            for w in key:
                rest.remove(w)
            return key, COMMANDS[key], rest
    known = sorted({" ".join(k) for k in COMMANDS})
    raise HarnessError(f"unknown command {' '.join(words[:2])!r}{_close(' '.join(words[:2]), known)} (see harness --help)")


def _to_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(cfg)


def run_command(argv: Sequence[str]) -> int:
    """Parse, compose and dispatch; returns the exit status."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    key, cmd, rest = _find(argv)
    want_help = any(a in ("-h", "--help") for a in rest)
    show_cfg = "--cfg" in rest
    overrides = [a for a in rest if a not in ("-h", "--help", "--cfg", "job")]
    cfg = compose(cmd.config, overrides, " ".join(key))
    if want_help or show_cfg:
        if want_help:
            print(f"harness {' '.join(key)}: {cmd.help}\n\nkeys (??? = required):")
        print(_to_yaml(cfg))
        return 0
    missing = _missing_keys(cfg)
    if missing:
        raise HarnessError(f"harness {' '.join(key)}: missing required key(s) {', '.join(missing)} "
                           f"(e.g. {missing[0]}=...; see harness {' '.join(key)} --help)")
    module, func = cmd.target.split(":")
    new = new_output_paths(cfg)
    try:
        status = getattr(importlib.import_module(module), func)(cfg)
    except HarnessError:
        remove_empty(new)
        raise
    return int(status or 0)


def new_output_paths(cfg) -> list[Path]:
    """The output paths (``OUTPUT_KEYS``) and their parents that do not exist yet, deepest first."""
    new: set[Path] = set()
    for key in OUTPUT_KEYS:
        value = cfg.get(key) if key in cfg else None
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser().absolute()
        while not path.exists() and path != path.parent:
            new.add(path)
            path = path.parent
    return sorted(new, key=lambda p: (-len(p.parts), str(p)))


def remove_empty(paths: Sequence[Path]) -> None:
    """A refused command leaves no empty folder behind where there was none (files are kept)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()


def _missing_keys(cfg, prefix: str = "") -> list[str]:
    """Dotted names of ``???`` values, so a missing key is one line, not an OmegaConf traceback."""
    from omegaconf import DictConfig, OmegaConf

    out = []
    for k in cfg:
        name = f"{prefix}{k}"
        if OmegaConf.is_missing(cfg, k):
            out.append(name)
        elif isinstance(cfg[k], DictConfig):
            out += _missing_keys(cfg[k], f"{name}.")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: user errors print one ``error:`` line and exit 2."""
    try:
        code = run_command(sys.argv[1:] if argv is None else argv)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        code = 130
    sys.exit(code)
