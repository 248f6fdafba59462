"""Fault injection for harness subprocesses, loaded by Python at start-up when this folder is on
PYTHONPATH. Nothing here is imported by the harness itself.

FAULT_KILL_AT="<event>:<substring>:<n>": SIGKILL this process group the n-th time (1-based) this
  process is about to do <event> (``open`` for writing, or ``rename`` = os.rename/os.replace) on a
  path containing <substring> (ending with it, when it ends in ``$``). The kill happens before the operation, like a power cut.
FAULT_NET_LOG=<file>: refuse every connect/name lookup that is not loopback or AF_UNIX, and
  append one line per refused attempt to <file>; each guarded process also appends its command
  line to <file>.procs (proof that the guard reached the workers and the trainer).
"""

from __future__ import annotations

import os
import signal
import socket
import sys

_COUNT = [0]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def _kill_now() -> None:
    """The whole process group (the CLI and its workers) if the test started one, else only us."""
    if os.getpgrp() != int(os.environ.get("FAULT_TEST_PGRP", "-1")) and os.getpgrp() == os.getsid(0):
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _paths(event: str, args: tuple) -> tuple:
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        return (path,) if writes and not isinstance(path, int) else ()
    if event in ("os.rename", "os.replace"):
        return (args[0], args[1])
    return ()


def _matches(path: str, needle: str) -> bool:
    """``needle`` anywhere in ``path``; a trailing ``$`` anchors it at the end."""
    return path.endswith(needle[:-1]) if needle.endswith("$") else needle in path


def _kill_hook(spec: str):
    want, needle, n = spec.split(":")
    n = int(n)

    def hook(event: str, args: tuple) -> None:
        name = "rename" if event in ("os.rename", "os.replace") else event
        if name != want:
            return
        if any(_matches(os.fsdecode(p), needle) for p in _paths(event, args)):
            _COUNT[0] += 1
            if _COUNT[0] == n:
                _kill_now()
    return hook


def _is_loopback(family: int, address) -> bool:
    if family == getattr(socket, "AF_UNIX", None) or family == getattr(socket, "AF_NETLINK", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    return host in LOOPBACK_NAMES or str(host).startswith("127.") or host == "::ffff:127.0.0.1"


def _net_hook(log: str):
    def refuse(what: str) -> None:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {sys.argv[:3]} {what}\n")
        raise OSError(f"network blocked by the fault-injection guard: {what}")

    def hook(event: str, args: tuple) -> None:
        if event in ("socket.connect", "socket.sendto") and not _is_loopback(args[0].family, args[1]):
            refuse(f"{event} {args[1]!r}")
        elif event == "socket.getaddrinfo" and args[0] not in LOOPBACK_NAMES and not _is_loopback(0, args[0]):
            refuse(f"{event} {args[0]!r}")
    return hook


if os.environ.get("FAULT_KILL_AT"):
    sys.addaudithook(_kill_hook(os.environ["FAULT_KILL_AT"]))
if os.environ.get("FAULT_NET_LOG"):
    sys.addaudithook(_net_hook(os.environ["FAULT_NET_LOG"]))
    with open(os.environ["FAULT_NET_LOG"] + ".procs", "a") as _fh:
        _fh.write(" ".join(sys.orig_argv) + "\n")
