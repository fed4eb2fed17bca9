"""cluster_configs/ are valid for the tools that read them: the launcher YAMLs pass Ray's own
cluster-config schema validation, the KubeRay manifests have the fields KubeRay requires,
and every Ray version/image pin agrees with pyproject's Ray range and the installed Ray."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "cluster_configs"
LAUNCHER = [CONFIGS / "aws.yaml", CONFIGS / "gcp.yaml"]
KUBERAY = [CONFIGS / "kuberay" / "raycluster.yaml", CONFIGS / "kuberay" / "rayjob.yaml"]
PINS = re.compile(r"rayproject/ray:(\d+\.\d+\.\d+)|ray\[[a-z,]+\]==(\d+\.\d+\.\d+)")


def pyproject_ray() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == "ray")


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_config_passes_rays_own_validation(path):
    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert {"cpu_worker", "gpu_worker"} <= set(types)
    for name in ("cpu_worker", "gpu_worker"):
        assert (
            0 <= types[name]["min_workers"] <= types[name]["max_workers"] <= config["max_workers"]
        )
    assert any(
        "pip install" in c and "/home/ray/pinnacle_ray" in c for c in config["setup_commands"]
    )
    assert "/home/ray/pinnacle_ray" in config["file_mounts"]


def test_rays_validation_rejects_a_broken_launcher_config():
    config = yaml.safe_load(LAUNCHER[0].read_text())
    config["available_node_types"]["cpu_worker"]["max_worker"] = 3  # misspelled
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def _pods(manifest: dict) -> list[tuple[str, dict]]:
    spec = manifest["spec"]
    cluster = spec["rayClusterSpec"] if manifest["kind"] == "RayJob" else spec
    groups = [("head", cluster["headGroupSpec"])]
    groups += [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]
    return groups


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_manifest_has_the_fields_kuberay_requires(path):
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] in ("RayCluster", "RayJob")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", manifest["metadata"]["name"])
    if manifest["kind"] == "RayJob":
        assert "pinnacle-ray train examples/specs/" in manifest["spec"]["entrypoint"]
        spec_file = manifest["spec"]["entrypoint"].split()[-1]
        assert (ROOT / spec_file).is_file()
    for name, group in _pods(manifest):
        assert isinstance(group["rayStartParams"], dict), name
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c.get("name") and c.get("image") for c in containers), name
        if name != "head":
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name


def test_ray_version_pins_agree_with_pyproject_and_the_installed_ray():
    wanted = pyproject_ray().specifier
    pins = set()
    for path in [*LAUNCHER, CONFIGS / "kuberay" / "Dockerfile"]:
        pins |= {a or b for a, b in PINS.findall(path.read_text())}
    for path in KUBERAY:
        spec = yaml.safe_load(path.read_text())["spec"]
        pins.add(spec.get("rayVersion") or spec["rayClusterSpec"]["rayVersion"])
    assert pins == {ray.__version__}
    assert Version(ray.__version__) in wanted


def test_kuberay_images_are_the_packages_own_build():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for path in KUBERAY:
        for _, group in _pods(yaml.safe_load(path.read_text())):
            for container in group["template"]["spec"]["containers"]:
                assert container["image"].startswith(f"pinnacle-ray:{project['version']}")


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_pods_get_the_store_and_an_optional_artifact_root_and_no_disk(path):
    """Every pod reads the store (and, when the secret has one, the artifact root) from the
    secret, and none mounts a node's disk: models and checkpoints live in the database or
    under the artifact root, so pods can come and go."""
    for name, group in _pods(yaml.safe_load(path.read_text())):
        pod = group["template"]["spec"]
        assert not any("hostPath" in v for v in pod.get("volumes", [])), name
        for container in pod["containers"]:
            env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            assert env["PINNACLE_RAY_STORE"] == {"name": "pinnacle-store", "key": "url"}, name
            assert env["PINNACLE_RAY_ARTIFACT_ROOT"] == {
                "name": "pinnacle-store",
                "key": "artifact_root",
                "optional": True,
            }, name


# -- the resource planner on each config's node types --------------------------------------
from ray.train import ScalingConfig  # noqa: E402

import pinnacle_ray as pr  # noqa: E402
from pinnacle_ray.trainers.cluster_shape import ClusterShape, node_types_from_config  # noqa: E402
from pinnacle_ray.trainers.resources import plan_resources  # noqa: E402


def _as_launcher(manifest: dict) -> dict:
    """A KubeRay manifest's groups as launcher node types: Ray resources from rayStartParams
    (num-cpus / num-gpus), max count from maxReplicas."""
    types = {}
    for name, group in _pods(manifest):
        params = group["rayStartParams"]
        resources = {"CPU": float(params["num-cpus"])}
        if "num-gpus" in params:
            resources["GPU"] = float(params["num-gpus"])
        types[name] = {"resources": resources, "max_workers": group.get("maxReplicas", 0)}
    return {"head_node_type": "head", "available_node_types": types}


def _shape(path: Path) -> ClusterShape:
    """The shape a freshly started cluster from ``path`` has: its head alone, every worker
    type at its minimum of 0, and what the autoscaler can add."""
    config = yaml.safe_load(path.read_text())
    config = _as_launcher(config) if path in KUBERAY else config
    head = config["available_node_types"][config["head_node_type"]]
    types, max_new = node_types_from_config(config, {config["head_node_type"]: 1})
    assert all(t.resources.get("CPU", 0) > 0 for t in types), "declare every type's CPUs"
    return ClusterShape(
        nodes=({k: float(v) for k, v in head["resources"].items()},),
        node_types=types,
        autoscaling=True,
        max_new_nodes=max_new,
    )


@pytest.mark.parametrize("path", [*LAUNCHER, *KUBERAY], ids=lambda p: p.name)
def test_planner_sends_cpu_and_gpu_fits_to_the_autoscaler_when_given_each_config(path):
    shape = _shape(path)
    assert shape.nodes[0]["CPU"] == 0  # the head takes no training work
    cpu = plan_resources(ScalingConfig(num_workers=2), shape)
    assert cpu.scaling_config.resources_per_worker is None  # not squeezed onto the head
    assert cpu.note and "waits for the autoscaler" in cpu.note
    gpu = plan_resources(ScalingConfig(num_workers=1, use_gpu=True), shape)
    gpu_types = [t.name for t in shape.node_types if t.resources.get("GPU")]
    assert gpu_types and all(name in gpu.note for name in gpu_types)


@pytest.mark.parametrize("path", [*LAUNCHER, *KUBERAY], ids=lambda p: p.name)
def test_planner_refuses_a_worker_no_node_type_holds_when_given_each_config(path):
    shape = _shape(path)
    with pytest.raises(pr.ResourceError, match="no node can hold it") as caught:
        plan_resources(ScalingConfig(num_workers=1, resources_per_worker={"CPU": 16}), shape)
    assert all(t.name in str(caught.value) for t in shape.node_types)
