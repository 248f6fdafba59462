"""``harness <command> key=value ...``: Hydra-composed configs from ``conf/``, one entry point.

Each command's config is a dataclass (its schema, named in :data:`harness.commands.COMMANDS`)
registered in Hydra's ConfigStore; ``conf/cmd_*.yaml`` only choose group members. Hydra refuses a
key the schema lacks (reworded here with close matches) and the command receives the schema's
instance. Group choices (``scale=``, ``track=``, ``filter=``, ``eval=``) are checked before
composing so that a typo gives one clear line with close matches. ``filter=<anything else>`` (a
plugin name or ``file.py:func``) becomes ``filter=plugin filter.name=<it>``; ``filter.<param>=v``
may add keys a filter's YAML does not list (the filter's signature checks them).
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
from harness.core.schema import help_lines

GROUPS = ("scale", "track", "filter", "eval")
ADDABLE_PREFIXES = ("filter.",)  # open mappings: a filter's parameters are its function's
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


def register_schema(config_name: str) -> type:
    """Store the command's dataclass in Hydra's ConfigStore as ``schema_<config>`` (the name its
    YAML's defaults list starts with); returns the class."""
    from hydra.core.config_store import ConfigStore

    cmd = next(c for c in COMMANDS.values() if c.config == config_name)
    module, name = cmd.schema.split(":")
    cls = getattr(importlib.import_module(module), name)
    ConfigStore.instance().store(name=f"schema_{config_name}", node=cls)
    return cls


def load_config(config_name: str, overrides: Sequence[str] = ()) -> object:
    """The command's typed config object, composed as the CLI does (for Python callers and tests)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(compose(config_name, overrides))


def compose(config_name: str, overrides: Sequence[str], command: str = ""):
    """Compose a command's config with Hydra's compose API (no working-dir change, no outputs/)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_schema(config_name)
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            try:
                return hydra_compose(config_name=config_name, overrides=rewrite_overrides(overrides))
            except HydraException as exc:
                unknown = re.match(r"Could not (?:override|append to config\. An item is already at) '([^']+)'",
                                   str(exc))
                if unknown is None:
                    raise
                key = unknown.group(1)
                raise HarnessError(_unknown_key(key, _sibling_keys(hydra_compose(config_name=config_name), key),
                                                command or config_name)) from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise HarnessError(_override_error(exc)) from None


def _override_error(exc: BaseException) -> str:
    """One line: a value the schema's type refuses names the key and the type (Hydra's own
    message says only 'Error merging override')."""
    first = str(exc).splitlines()[0]
    cause = exc.__cause__
    if first.startswith("Error merging override") and cause is not None:
        lines = str(cause).splitlines()
        key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("full_key:")), "")
        return f"{first.removeprefix('Error merging override ')}: {lines[0]}" + (f" (key {key})" if key else "")
    return first


def _sibling_keys(cfg, key: str) -> list[str]:
    """The dotted keys beside ``key`` in the composed config (``train.threds`` → train.*)."""
    parent, _, _ = key.rpartition(".")
    node = cfg
    for part in parent.split(".") if parent else []:
        node = node.get(part) if hasattr(node, "get") else None
    return [f"{parent}.{k}" if parent else str(k) for k in node] if hasattr(node, "keys") else []


def _unknown_key(key: str, keys: list[str], command: str) -> str:
    alias = KEY_ALIASES.get(key)
    parent, _, leaf = key.rpartition(".")
    leaves = [k.rpartition(".")[2] for k in keys]  # siblings share the parent: match on the last part
    near = [alias] if alias in keys else [f"{parent}.{m}" if parent else m
                                          for m in difflib.get_close_matches(leaf, leaves, n=3)]
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
    schema = register_schema(cmd.config)
    cfg = compose(cmd.config, overrides, " ".join(key))
    if want_help or show_cfg:
        if want_help:
            print(f"harness {' '.join(key)}: {cmd.help}\n\nkeys (??? = required):")
        print(annotate(_to_yaml(cfg), help_lines(schema)) if want_help else _to_yaml(cfg))
        return 0
    missing = _missing_keys(cfg)
    if missing:
        raise HarnessError(f"harness {' '.join(key)}: missing required key(s) {', '.join(missing)} "
                           f"(e.g. {missing[0]}=...; see harness {' '.join(key)} --help)")
    module, func = cmd.target.split(":")
    new = new_output_paths(cfg)
    from omegaconf import OmegaConf

    try:
        status = getattr(importlib.import_module(module), func)(OmegaConf.to_object(cfg))
    except HarnessError:
        remove_empty(new)
        raise
    return int(status or 0)


def annotate(text: str, helps: dict[str, str]) -> str:
    """The composed YAML with each key's help (from its schema field) as a trailing comment."""
    out, path = [], []
    for line in text.splitlines():
        m = re.match(r"^( *)([\w.-]+):", line)
        if m:
            depth = len(m.group(1)) // 2
            path = path[:depth] + [m.group(2)]
            note = helps.get(".".join(path))
            line = f"{line:<40} # {note}" if note else line
        out.append(line)
    return "\n".join(out)


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
