"""``pinnacle-ray train examples/specs/huggingface.yaml``: the packaged MiniLM (a local
folder, nothing downloaded) fine-tuned for a few steps through the CLI, then loaded back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import pinnacle_ray as pr
from pinnacle_ray.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(900)  # one Ray Train start with MiniLM; a shared machine can take minutes
def test_the_huggingface_spec_fine_tunes_a_local_model_folder_through_the_cli(
    tmp_path, monkeypatch, capsys
):
    finetune = _example("finetune_text")
    db = tmp_path / "reviews.db"
    store = pr.connect(db)
    store.write("reviews", finetune.reviews(160), key="id")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PINNACLE_RAY_STORE", f"sqlite:///{db}")
    monkeypatch.setenv("HF_MODEL", finetune.minilm_path())
    monkeypatch.setenv("HF_STEPS", "4")
    monkeypatch.setenv("HF_EVAL_STEPS", "2")

    code = main(["train", "examples/specs/huggingface.yaml", "--json"])

    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["name"], result["version"]) == ("review-sentiment", 1)
    assert "valid/accuracy" in result["metrics"]
    version = store.models.get("review-sentiment")
    assert version.framework == "huggingface" and version.config["max_steps"] == 4
    assert {"latest", "best"} <= set(version.handles)
    model = store.models.load("review-sentiment")
    assert set(model.predict(["a great kettle", "an awful charger"])) <= {"positive", "negative"}
    store.close()


@pytest.mark.unit
def test_the_huggingface_spec_names_the_model_variable_when_it_is_unset(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("HF_MODEL", raising=False)

    code = main(["train", "examples/specs/huggingface.yaml"])

    _, err = capsys.readouterr()
    assert code != 0 and "HF_MODEL is not set" in err
