"""``pinnacle-ray`` on the session's local Ray: the example specs train through the CLI
(one per trainer kind), models are listed, shown and removed, output is JSON for scripts,
and bad input exits non-zero with a one-line reason.

``examples/specs/torch_managed.yaml`` is not trained here: ``quickstart`` trains a spec of
the same shape (the managed loop, a model by import path, two workers) through the same
``train`` code, test_specs.py builds that example's trainer, and the torch_loop spec has the
workers import ``examples.models``; its own fit was one more Ray Train start (~10-15 s)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ray_cluster import free_ports

import pinnacle_ray as pr
from pinnacle_ray.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str):
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``pinnacle-ray quickstart`` (data + a torch run), then each example spec by the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    db = folder / "quickstart.db"
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)  # the specs name examples.models:... as run from the repository root
    mp.setenv("PINNACLE_RAY_STORE", f"sqlite:///{db}")
    mp.setenv("EPOCHS", "1")
    mp.setenv("ROUNDS", "10")
    results: dict = {}
    try:
        capture = _Capture()
        results["quickstart"] = capture(["quickstart", "--dir", str(folder), "--epochs", "1"])
        for spec in ("torch_loop", "sklearn", "xgboost"):
            results[spec] = capture(["train", f"examples/specs/{spec}.yaml", "--json"])
    finally:
        mp.undo()
    results["store"] = f"sqlite:///{db}"
    return results


class _Capture:
    """Run main() with stdout/stderr captured (module fixtures cannot use capsys)."""

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("spec", "name", "metric"),
    [
        ("torch_loop", "diabetes-loop", "mse"),
        ("sklearn", "diabetes-forest", "valid/r2"),
        ("xgboost", "diabetes-xgb", "valid/rmse"),
    ],
)
def test_each_example_spec_trains_and_registers_through_the_cli(trained, spec, name, metric):
    code, out, err = trained[spec]
    assert code == 0, err[-3000:]
    result = last_json(out)
    assert (result["name"], result["version"]) == (name, 1)
    assert metric in result["metrics"]
    model = pr.connect(trained["store"]).models.get(name)
    assert model.version == 1


def test_quickstart_writes_data_and_a_spec_then_trains_it(trained):
    code, out, err = trained["quickstart"]
    assert code == 0, err[-3000:]
    assert "wrote 442 rows into table 'patients'" in out
    assert "registered as quickstart-mlp version 1" in out
    assert "[progress] quickstart-mlp: step " in out  # from Ray Train's controller
    assert "valid/loss" in out  # the metrics table


def test_models_list_shows_every_registered_model_as_a_table_or_json(trained, capsys):
    code, out, _ = run(capsys, "models", "list", "--store", trained["store"])
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["name", "version", "framework"]
    code, out, _ = run(capsys, "models", "list", "--store", trained["store"], "--json")
    names = {m["name"] for m in json.loads(out)}
    assert names == {
        "quickstart-mlp",
        "diabetes-loop",
        "diabetes-forest",
        "diabetes-xgb",
    }


def test_models_show_gives_metrics_config_and_lineage(trained, capsys):
    code, out, _ = run(
        capsys, "models", "show", "diabetes-xgb", "--store", trained["store"], "--json"
    )
    shown = json.loads(out)
    assert code == 0 and shown["framework"] == "xgboost" and "valid/rmse" in shown["metrics"]
    assert shown["lineage"]["train"]


def test_models_rm_needs_yes_then_removes_the_version(trained, capsys):
    code, _, err = run(capsys, "models", "rm", "diabetes-forest", "--store", trained["store"])
    assert code == 1 and "add --yes to confirm" in err
    files = Path(pr.connect(trained["store"]).models.get("diabetes-forest").artifact_uri).parent
    assert files.is_dir()
    code, out, _ = run(
        capsys,
        "models",
        "rm",
        "diabetes-forest",
        "--version",
        "1",
        "--yes",
        "--store",
        trained["store"],
    )
    assert code == 0 and "removed diabetes-forest version(s) 1" in out
    with pytest.raises(pr.ModelNotFound):
        pr.connect(trained["store"]).models.get("diabetes-forest")
    assert not files.exists()


def test_bad_spec_exits_1_with_a_one_line_reason(capsys, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text((ROOT / "examples/specs/xgboost.yaml").read_text().replace("label:", "lable:"))
    code, out, err = run(capsys, "train", str(spec))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "trainer.lable: unknown field; did you mean 'label'?" in err


def test_address_with_no_cluster_fails_within_seconds_naming_it(capsys):
    (port,) = free_ports(1)
    started = time.monotonic()
    code, _, err = run(
        capsys, "submit", "examples/specs/sklearn.yaml", "--address", f"http://127.0.0.1:{port}"
    )
    assert time.monotonic() - started < 10
    assert code == 1 and f"no Ray cluster answers at http://127.0.0.1:{port}" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["train"], ["sweep"], ["predict"], ["submit"], ["quickstart"],
        ["models", "list"], ["models", "show"], ["models", "rm"], ["models", "promote"],
        ["models", "rollback"],
        ["jobs", "list"], ["jobs", "status"], ["jobs", "logs"], ["jobs", "stop"],
    ],
)  # fmt: skip
def test_every_command_has_help_with_an_example(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "example:\n  pinnacle-ray " + argv[0] in capsys.readouterr().out
