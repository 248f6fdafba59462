"""What typed configs share: a field with its help text, and the help listing built from it.

Every command and config group is a dataclass (in its package's ``config.py``); Hydra validates
overrides against it and ``harness <command> --help`` prints each key with the help written
beside its default, so a default and its meaning are written once.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from omegaconf import MISSING

__all__ = ["MISSING", "opt", "help_lines", "plain"]


def opt(default: Any = MISSING, help: str = "", factory: Any = None) -> Any:
    """A dataclass field with its ``--help`` text (``factory`` for mutable defaults)."""
    meta = {"help": help}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def help_lines(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted key → help text, for every field of ``cls`` and its nested dataclasses."""
    out: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("help"):
            out[prefix + f.name] = f.metadata["help"]
        kind = hints.get(f.name)
        if dataclasses.is_dataclass(kind):
            out.update(help_lines(kind, f"{prefix}{f.name}."))
    return out


def plain(obj: Any) -> Any:
    """A config object as plain JSON-able data (dataclasses → dicts), for records and hashes."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def build(cls: type, values: dict[str, Any], what: str) -> Any:
    """``cls(**values)`` for values that did not come through Hydra (a track's ``download``
    options, a Python caller's dict): an unknown key is one clear line with close matches."""
    import difflib

    from harness.core.errors import HarnessError

    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        near = difflib.get_close_matches(unknown[0], known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise HarnessError(f"unknown {what} option(s) {', '.join(unknown)}{hint} (known: {', '.join(known)})")
    return cls(**values)


def delta(obj: Any, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a config object that differ from its class's defaults (plus ``keep``), as
    plain data: what a user changed, so that records and cache names do not move when a default
    is merely spelled out."""
    base = type(obj)()
    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if f.name in keep or plain(getattr(obj, f.name)) != plain(getattr(base, f.name))}
