"""An autoscaling local Ray cluster for tests: Ray's fake multi-node node provider, which
launches real raylets on this machine as "nodes" when the autoscaler asks for them.

``ray start --head --autoscaling-config=...`` with ``RAY_FAKE_CLUSTER=1`` and a provider
section of type ``fake_multinode``, on free ports with its own temp dir, started here rather
than with ``ray.cluster_utils.AutoscalingCluster`` (whose shutdown force-stops every Ray on
the machine by process name, and which reads an example YAML the wheel does not ship). It runs Ray's
v1 autoscaler: v2 fills its config from that missing YAML. ``stop()`` ends only this
cluster's processes: the launched raylets are the monitor's children and their command lines
name the head's temp dir, so ``LocalCluster.stop`` finds them.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from pathlib import Path
from typing import Any

from ray_cluster import BIN, LocalCluster, _node_env, free_ports

FAKE_HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"


def autoscaling_config(
    gcs_address: str, worker_types: dict[str, dict[str, Any]], max_workers: int
) -> dict[str, Any]:
    """A complete launcher config for the fake provider (nothing left for Ray to fill in
    from its defaults file); ``worker_types`` maps a node type to its ``resources``,
    ``min_workers`` and ``max_workers``."""
    types = {
        "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
        **{name: {"node_config": {}, **spec} for name, spec in worker_types.items()},
    }
    return {
        "cluster_name": "fake-autoscaling",
        "max_workers": max_workers,
        "upscaling_speed": 1.0,
        # Idle fake nodes go away after ~6 s, so each test starts from the head alone.
        "idle_timeout_minutes": 0.1,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            # Without these, every launch counts as failed (no SSH updater) and nodes churn.
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "auth": {},
        "docker": {},
        "available_node_types": types,
        "head_node_type": "ray.head.default",
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def start_autoscaling_head(
    worker_types: dict[str, dict[str, Any]], *, max_workers: int = 4
) -> LocalCluster:
    """A head with no CPUs whose autoscaler launches ``worker_types`` nodes on demand.

    Started a second time (fresh ports and temp dir, the first one's processes ended) when
    ``ray start`` fails the first: on a loaded machine Ray's fixed 30 s wait for the new
    raylet to register runs out now and then."""
    try:
        return _start_autoscaling_head(worker_types, max_workers)
    except RuntimeError:
        return _start_autoscaling_head(worker_types, max_workers)


def _start_autoscaling_head(
    worker_types: dict[str, dict[str, Any]], max_workers: int
) -> LocalCluster:
    temp_dir = Path(f"/tmp/prt_{uuid.uuid4().hex[:8]}")
    temp_dir.mkdir(parents=True)
    gcs, dashboard, client, node, objects, agent, agent_grpc, env_agent = free_ports(8)
    config_path = temp_dir / "autoscaling.yaml"
    config = autoscaling_config(f"127.0.0.1:{gcs}", worker_types, max_workers)
    config_path.write_text(json.dumps(config, indent=1))
    env = _node_env(
        {
            "RAY_FAKE_CLUSTER": "1",
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            # The driver, the CLI and every launched raylet get the cluster's token here.
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
        },
        isolated=False,
    )
    env.pop("RAY_enable_autoscaler_v2", None)
    cmd = [
        str(BIN / "ray"), "start", "--head", "--num-cpus=0", "--num-gpus=0",
        f"--autoscaling-config={config_path}",
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
        # A driver joins by the GCS address (ray.init), not the job server's URL.
        env={**env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"},
    )
    if proc.returncode != 0:
        cluster.stop()
        raise RuntimeError(f"ray start failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return cluster
