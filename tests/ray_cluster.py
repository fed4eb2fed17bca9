"""A real local Ray cluster for end-to-end tests: ``ray start --head`` on free ports with its
own temp dir, and a precise stop that ends only this cluster's processes.

Other Ray instances may run on the same machine (other test sessions), so a bare
``ray stop`` (which stops every local cluster) is never used: the processes to end are the
ones whose command line names this cluster's temp dir, with all their descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports nothing listens on right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LocalCluster:
    """A head node started by a test; ``address`` is its job server (dashboard) URL."""

    temp_dir: Path
    address: str
    gcs_address: str
    env: dict[str, str]

    def stop(self) -> None:
        """End this cluster's processes (and their children) only."""
        pids = _cluster_pids(str(self.temp_dir))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.2)
            pids = [p for p in pids if _alive(p)]
            if not pids:
                return


def start_head(num_cpus: int = 2) -> LocalCluster:
    """``ray start --head`` on free ports and a unique temp dir; returns once it answers."""
    temp_dir = Path(f"/tmp/prt_{uuid.uuid4().hex[:8]}")
    gcs, dashboard, client, node, objects, agent, agent_grpc, env_agent = free_ports(8)
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # This Ray enables token auth when ~/.ray/auth_token exists; its own CLI and SDK
        # then send the token only when told to.
        "RAY_AUTH_MODE": "token",
    }
    cmd = [
        str(BIN / "ray"), "start", "--head", f"--num-cpus={num_cpus}",
        f"--port={gcs}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
        f"--node-manager-port={node}", f"--object-manager-port={objects}",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={env_agent}", "--metrics-export-port=0",
        f"--temp-dir={temp_dir}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
        "--disable-usage-stats",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    cluster = LocalCluster(
        temp_dir=temp_dir,
        address=f"http://127.0.0.1:{dashboard}",
        gcs_address=f"127.0.0.1:{gcs}",
        env={**env, "RAY_ADDRESS": f"http://127.0.0.1:{dashboard}"},
    )
    if proc.returncode != 0:
        cluster.stop()
        raise RuntimeError(f"ray start failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return cluster


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _cluster_pids(marker: str) -> list[int]:
    """Processes whose command line names ``marker``, plus all their descendants."""
    parents: dict[int, int] = {}
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker in cmdline and pid != os.getpid():
            roots.append(pid)
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    return sorted(found)
