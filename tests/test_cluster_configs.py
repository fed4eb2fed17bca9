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
