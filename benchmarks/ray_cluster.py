"""A throwaway one-node Ray cluster for the Ray benchmark and tests: `ray start --head --block` in processes of
its own, stopped without touching any other Ray on the machine.

`ray stop` kills every Ray process of the machine's users, whichever cluster it belongs to, so a test run would
take down a benchmark's cluster (or a user's). Instead the head runs with `--block`: GCS, raylet and the rest
stay its descendants, and the raylet forks the worker processes, so the process tree under the `ray start`
process is exactly this cluster. Stopping freezes the whole tree (SIGSTOP: no process can fork a new one or be
orphaned while it is collected), then kills it.

The temp dir is a short path under /tmp: Ray's unix sockets live in it and a socket path is limited to ~107 bytes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

READY = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children() -> dict[int, list[int]]:
    """parent pid → child pids, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        out.setdefault(ppid, []).append(int(entry))
    return out


def tree(root: int) -> set[int]:
    """`root` and every process descended from it."""
    kids = children()
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += kids.get(pid, [])
    return found


def cmdline(pid: int) -> str:
    """The process's title as `ps` shows it (Ray workers rename themselves `ray::<actor class>…`)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class LocalRay:
    """`with LocalRay(cpus=2) as ray_cluster:` a head node on 127.0.0.1; `address` is what `ray.init` takes."""

    def __init__(self, cpus: int, start_timeout: float = 90.0) -> None:
        self.cpus = cpus
        self.start_timeout = start_timeout
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.log = self.temp_dir / "start.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalRay:
        ray = Path(sys.executable).parent / "ray"
        command = [
            str(ray),
            "start",
            "--head",
            "--block",
            f"--port={self.port}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.start_timeout
        while READY not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = self.log.read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"ray start failed or timed out:\n{text[-3000:]}")
            time.sleep(0.2)
        return self

    def pids(self, title: str = "") -> list[int]:
        """The cluster's processes whose title contains `title` (all of them for "")."""
        if self.process is None:
            return []
        return sorted(p for p in tree(self.process.pid) if title in cmdline(p))

    def stop(self) -> None:
        """Freeze the cluster's process tree, kill it, remove the temp dir."""
        if self.process is not None:
            frozen: set[int] = set()
            while pids := tree(self.process.pid) - frozen:  # until no frozen process has an unfrozen child
                for pid in pids:
                    _signal(pid, signal.SIGSTOP)
                frozen |= pids
            for pid in frozen:
                _signal(pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            deadline = time.monotonic() + 30
            while any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in frozen):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Ray processes outlived SIGKILL: {sorted(frozen)}")
                time.sleep(0.1)
            self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """Not exited (a zombie, dead but not yet reaped by its new parent, counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
