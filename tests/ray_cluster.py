"""A real local Ray cluster for end-to-end tests: ``ray start --head`` on free ports with its
own temp dir, and a precise stop that ends only this cluster's processes.

Other Ray instances may run on the same machine (other test sessions), so Ray's own stop
command (which stops every local cluster) is never used: the processes to end are the
ones whose command line names this cluster's temp dir, with all their descendants.

A simulated multi-node cluster: ``start_head(isolated=True)`` and ``start_worker_node`` start
each node inside its own mount namespace (``unshare --mount --propagation private``) with
empty tmpfs folders over the home folder (``~/ray_results``, caches) and ``/tmp`` (Python's
temp files, checkpoints staged on the way out), so a file one node writes is invisible to the
others, as on separate machines. Only what a node needs is bound back: the Python
installation (it lives under ``/root/.pyenv`` here) and the node's own Ray temp dir (its
session files and logs; the driver reaches the head's raylet through them). The network,
``/dev/shm`` and the project checkout stay shared, as the database and the code image are on
a real cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

BIN = Path(sys.executable).parent
TESTS = Path(__file__).parent
_Node = TypeVar("_Node")


# For a cluster whose test kills a node: the GCS checks each raylet every second instead of
# every 3 s, so a SIGKILLed raylet (its checks fail at once) is marked dead after 5 failed
# checks in ~5 s instead of ~15 s. The timeout of one check (10 s) is Ray's default, so a
# live but busy raylet is not given up any sooner.
FAST_NODE_DEATH = {"RAY_health_check_period_ms": "1000"}


def code_image_env() -> dict[str, str]:
    """What a test cluster's nodes get in their environment, as a real cluster's code image
    would hold it: this folder on PYTHONPATH (train loops defined under tests/ import in the
    workers) and pinnacle_ray's quiet worker logging. Pass it as ``start_head(env=...)``; a
    driver then joins with a plain ``ray.init(address=...)``. Through the raylets'
    environment, as the session Ray of conftest.py does, not a job ``runtime_env``: with
    one, every worker process starts through Ray's ``setup_worker.py`` (one more Python
    process importing Ray) after a runtime-env agent round trip."""
    from pinnacle_ray._internal.quiet_logging import worker_env
    from pinnacle_ray._internal.runtime import _joined

    paths = [str(TESTS), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p), **_joined(worker_env())}


def files_holding(folder: Path, needle: str) -> list[str]:
    """The files under ``folder`` (a node's Ray temp dir, say) whose bytes contain
    ``needle``: where a secret would have leaked to logs or unpacked packages."""
    found = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue  # sockets, files removed meanwhile
    return found


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
    isolated: bool = False

    def stop(self) -> None:
        """End this cluster's processes (and their children) only; worker nodes started
        with ``start_worker_node`` name this temp dir too, so they end with it."""
        _end(_cluster_pids(str(self.temp_dir)))
        if self.isolated:
            for folder in (self.temp_dir, *self.temp_dir.parent.glob(f"{self.temp_dir.name}_*")):
                shutil.rmtree(folder, ignore_errors=True)  # the head's, its worker nodes'

    def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``args`` as a process on this node: inside its mount namespace when isolated
        (it sees the node's private home and /tmp), else as a plain child of the test."""
        return _run_on(self.temp_dir if self.isolated else None, args, self.env, **kwargs)


@dataclass
class WorkerNode:
    """A worker node that joined a ``LocalCluster``: its own raylet, object store and
    workers, in its own mount namespace when ``isolated``; ``label`` is a custom resource
    (one unit) that only this node offers, so a test can pin work to it."""

    label: str
    temp_dir: Path
    env: dict[str, str]
    isolated: bool

    def pids(self) -> list[int]:
        """This node's processes: those naming its temp dir, and their descendants."""
        return _cluster_pids(str(self.temp_dir))

    def raylet_pid(self) -> int:
        """The pid of this node's raylet; ``LookupError`` once it is gone."""
        for pid in self.pids():
            if _is_raylet_of(pid, self.temp_dir):
                return pid
        raise LookupError(f"no raylet runs for the node with temp dir {self.temp_dir}")

    def kill_raylet(self) -> None:
        """SIGKILL this node's raylet, as when a machine drops off the network: its workers
        lose their raylet and exit, and the GCS marks the node dead once health checks fail."""
        os.kill(self.raylet_pid(), signal.SIGKILL)

    def stop(self) -> None:
        """End this node's processes (and their children) only."""
        _end(self.pids())
        if self.isolated:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``args`` as a process on this node (inside its mount namespace)."""
        return _run_on(self.temp_dir if self.isolated else None, args, self.env, **kwargs)


def start_head(
    num_cpus: int = 2,
    *,
    isolated: bool = False,
    resources: dict[str, float] | None = None,
    env: dict[str, str] | None = None,
) -> LocalCluster:
    """``ray start --head`` on free ports and a unique temp dir; returns once it answers.

    ``isolated`` starts it in its own mount namespace (private home and /tmp; see the module
    docstring) with a token of its own in the environment (``RAY_AUTH_TOKEN``: a private home
    hides ``~/.ray/auth_token`` from the driver); ``env`` is added to every node's
    environment, as a real cluster's nodes would have it (e.g. S3 credentials).
    """
    return _retried(lambda: _start_head_once(num_cpus, isolated, resources, env))


def _start_head_once(
    num_cpus: int, isolated: bool, resources: dict[str, float] | None, env: dict[str, str] | None
) -> LocalCluster:
    temp_dir = Path(f"/tmp/prt_{uuid.uuid4().hex[:8]}")
    gcs, dashboard, client, node, objects, agent, agent_grpc, env_agent = free_ports(8)
    node_env = _node_env(env or {}, isolated)
    if isolated:
        # Every cluster on this machine shows in the one /proc: processes that look for
        # "the local cluster" (Ray Train's placement-group cleaner uses the State API with no
        # address) would find several. On a real machine there is one; here, name it.
        node_env["RAY_ADDRESS"] = f"127.0.0.1:{gcs}"
    cmd = [
        str(BIN / "ray"), "start", "--head", f"--num-cpus={num_cpus}",
        f"--port={gcs}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
        f"--node-manager-port={node}", f"--object-manager-port={objects}",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={env_agent}", "--metrics-export-port=0",
        f"--temp-dir={temp_dir}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
        "--disable-usage-stats",
    ]  # fmt: skip
    if resources:
        cmd.append(f"--resources={json.dumps(resources)}")
    proc = _start(cmd, node_env, temp_dir, isolated)
    cluster = LocalCluster(
        temp_dir=temp_dir,
        address=f"http://127.0.0.1:{dashboard}",
        gcs_address=f"127.0.0.1:{gcs}",
        env={**node_env, "RAY_ADDRESS": f"http://127.0.0.1:{dashboard}"},
        isolated=isolated,
    )
    if proc.returncode != 0:
        cluster.stop()
        raise RuntimeError(f"ray start failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return cluster


def start_worker_node(
    cluster: LocalCluster, num_cpus: int = 1, isolated: bool = True, label: str = "node_b"
) -> WorkerNode:
    """``ray start --address=<head>`` for one more node of ``cluster``, with ``num_cpus``
    CPUs and the custom resource ``{label: 1}``; in its own mount namespace when
    ``isolated``. Returns once ``ray start`` has started the node's processes (the GCS lists
    the node a moment later: wait for its label in ``ray.cluster_resources()``)."""
    return _retried(lambda: _start_worker_node_once(cluster, num_cpus, isolated, label))


def _start_worker_node_once(
    cluster: LocalCluster, num_cpus: int, isolated: bool, label: str
) -> WorkerNode:
    # Named after the head's (its stop() ends this node too), unique for a node that
    # replaces a killed one under the same label.
    temp_dir = Path(f"{cluster.temp_dir}_{label}_{uuid.uuid4().hex[:4]}")
    node, objects, agent, agent_grpc, env_agent = free_ports(5)
    env = {**cluster.env, "RAY_ADDRESS": cluster.gcs_address}
    if not isolated:
        del env["RAY_ADDRESS"]
    cmd = [
        str(BIN / "ray"), "start", f"--address={cluster.gcs_address}", f"--num-cpus={num_cpus}",
        f"--resources={json.dumps({label: 1})}",
        f"--node-manager-port={node}", f"--object-manager-port={objects}",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={env_agent}", "--metrics-export-port=0",
        f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    proc = _start(cmd, env, temp_dir, isolated)
    worker = WorkerNode(label=label, temp_dir=temp_dir, env=env, isolated=isolated)
    if proc.returncode != 0:
        worker.stop()
        raise RuntimeError(
            f"ray start of worker node {label} failed:\n{proc.stdout[-2000:]}\n"
            f"{proc.stderr[-2000:]}"
        )
    return worker


def _retried(start: Callable[[], _Node], attempts: int = 3) -> _Node:
    """``start()``, again (fresh ports and temp dir) when Ray gave up waiting for its own
    raylet to register: a fixed 30 s in ``ray start`` that a machine shared by many test
    sessions can exceed. Any other failure is raised at once."""
    for attempt in range(attempts):
        try:
            return start()
        except RuntimeError as exc:
            if "timed out during startup" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# Runs inside the new mount namespace, as root: every path in PRT_KEEP is bind-mounted aside
# (onto a tmpfs over /mnt, private to this namespace), every path in PRT_MASK gets an empty
# tmpfs, then the kept paths are moved back in place, and the command runs. ``set -e``: any
# mount that fails ends the node's start with the failing command in stderr (never a silent,
# unisolated node).
_ISOLATE = """\
set -eu
IFS=: read -r -a keep <<< "$PRT_KEEP"
IFS=: read -r -a mask <<< "$PRT_MASK"
mount -t tmpfs -o size=64m prt_stage /mnt
for i in "${!keep[@]}"; do
  mkdir -p "/mnt/$i"
  mount --bind "${keep[$i]}" "/mnt/$i"
done
for m in "${mask[@]}"; do
  mount -t tmpfs -o mode=1777 prt_private "$m"
done
for i in "${!keep[@]}"; do
  mkdir -p "${keep[$i]}"
  mount --move "/mnt/$i" "${keep[$i]}"
done
umount /mnt
exec "$@"
"""

# What a private node still needs from the host: the Python installation behind the venv
# (under /root/.pyenv here, masked with the home folder otherwise).
_PYTHON_HOME = Path(os.path.realpath(sys.executable)).parent.parent


def _node_env(extra: dict[str, str], isolated: bool) -> dict[str, str]:
    dropped = ("RAY_ADDRESS", "TMPDIR") if isolated else ("RAY_ADDRESS",)
    env = {
        **{k: v for k, v in os.environ.items() if k not in dropped},
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # This Ray enables token auth when ~/.ray/auth_token exists; its own CLI and SDK
        # then send the token only when told to.
        "RAY_AUTH_MODE": "token",
        **extra,
    }
    if isolated:
        # Every node's home is private: the token travels in the environment instead.
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return env


def _start(
    cmd: list[str], env: dict[str, str], temp_dir: Path, isolated: bool
) -> subprocess.CompletedProcess:
    """Run ``ray start``, inside a fresh mount namespace with a private home and /tmp when
    ``isolated`` (``temp_dir`` kept: it holds the node's sockets, session and logs)."""
    if not isolated:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    home = Path(env.get("HOME", "/root"))
    temp_dir.mkdir(parents=True)
    keep = [str(_PYTHON_HOME), str(temp_dir)]
    masked = [str(home), "/tmp"]
    if any(Path(k).is_relative_to(m) for k in (str(BIN), os.getcwd()) for m in masked):
        keep.append(os.getcwd())  # the checkout, when it sits under a masked folder
    wrapped = [
        "unshare", "--mount", "--propagation", "private", "--",
        "bash", "-c", _ISOLATE, "isolate", *cmd,
    ]  # fmt: skip
    env = {**env, "PRT_KEEP": ":".join(keep), "PRT_MASK": ":".join(masked), "HOME": str(home)}
    return subprocess.run(wrapped, env=env, capture_output=True, text=True, timeout=120)


def _run_on(
    temp_dir: Path | None, args: list[str], env: dict[str, str], **kwargs
) -> subprocess.CompletedProcess:
    """Run ``args`` in the mount namespace of the node whose processes name ``temp_dir``
    (``nsenter`` into its raylet's namespace), or plainly when ``temp_dir`` is None."""
    kwargs = {"capture_output": True, "text": True, "timeout": 300, **kwargs}
    kwargs["env"] = {k: v for k, v in {**env, **kwargs.get("env", {})}.items() if k != "TMPDIR"}
    if temp_dir is None:
        return subprocess.run(args, **kwargs)
    raylet = next(
        (p for p in _cluster_pids(str(temp_dir)) if _is_raylet_of(p, temp_dir)),
        None,
    )
    if raylet is None:
        raise LookupError(f"no raylet runs for the node with temp dir {temp_dir}")
    return subprocess.run(["nsenter", f"--target={raylet}", "--mount", "--", *args], **kwargs)


def _end(pids: list[int]) -> None:
    """SIGKILL exactly ``pids`` (nothing by name) and wait until they are gone.

    At once, not SIGTERM first: a test's cluster holds nothing that needs a graceful
    shutdown, and on SIGTERM Ray's GCS, raylet, runtime-env agent and autoscaler monitor
    each took over 10 s to end (measured on the 2-core machine), so every stop waited out
    the grace period."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)


def _is_raylet_of(pid: int, temp_dir: Path) -> bool:
    """Whether ``pid`` is the raylet of the node with ``temp_dir`` (its sockets live under
    it; the head's temp dir is a prefix of its worker nodes' dirs, hence the slash)."""
    cmdline = _cmdline(pid)
    return cmdline.split(" ", 1)[0].endswith("/raylet") and f"={temp_dir}/" in cmdline


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


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
