"""HuggingFaceTrainer(model="org/name"): a model not on this machine is downloaded once, on
the driver, from the Hub (here a local server in the Hub's file layout, reached through
HF_ENDPOINT set only for each test), safetensors, config and tokenizer files only; with
offline=True or HF_HUB_OFFLINE=1 nothing touches the network and the error says how to
provide the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import text_data
from hub_server import HubServer
from ray.train import ScalingConfig

import pinnacle_ray as pr

NAME = "acme/tiny-bert"


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """Two repos: a tiny BERT with safetensors (plus a pickle and code the download must
    leave behind), and one with pickled weights only."""
    root = tmp_path_factory.mktemp("hub")
    bert = text_data.tiny_bert(root / "tiny-bert")
    (bert / "pytorch_model.bin").write_bytes(b"a pickle that must never be fetched")
    (bert / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    (bert / "README.md").write_text("# tiny bert\n")
    pickled = root / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((bert / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"pickle")
    return {NAME: bert, "acme/pickled-only": pickled}


@pytest.fixture
def hub(repos, tmp_path, monkeypatch):
    """The local Hub, HF_ENDPOINT pointing at it and an empty HF_HUB_CACHE, for this test."""
    with HubServer(repos) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def test_a_model_name_not_on_this_machine_is_downloaded_once_without_pickles_or_code(
    hub, repos, tmp_path
):
    trainer = pr.HuggingFaceTrainer(model=NAME, label="label")
    assert trainer.model == NAME  # kept as given; the folder is what a fit loads
    folder = Path(trainer.setup.model_path)
    assert folder.is_relative_to(tmp_path / "hf-cache")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    served = {p.name for p in repos[NAME].iterdir()}
    left = {"pytorch_model.bin", "modeling_custom.py", "README.md"}
    assert set(hub.fetched()) == served - left
    assert trainer.name == "tiny-bert"
    seen = len(hub.requests)
    again = pr.HuggingFaceTrainer(model=NAME, label="label")
    assert again.setup.model_path == trainer.setup.model_path
    assert len(hub.requests) == seen, hub.requests[seen:]  # fetched once: the cache is used


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_offline_never_touches_the_network_and_says_how_to_provide_the_model(hub, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    kwargs = {"offline": True} if how == "argument" else {}
    with pytest.raises(pr.PretrainedNotFound, match="not available locally") as info:
        pr.HuggingFaceTrainer(model=NAME, label="label", **kwargs)
    assert "save_pretrained" in str(info.value) and "offline" in str(info.value)
    assert hub.requests == []


def test_a_hub_model_with_pickled_weights_only_is_refused_and_its_pickle_not_fetched(hub):
    with pytest.raises(pr.PretrainedNotFound, match="no safetensors weights"):
        pr.HuggingFaceTrainer(model="acme/pickled-only", label="label")
    assert "pytorch_model.bin" not in hub.fetched()


def test_a_name_the_hub_does_not_have_is_refused_naming_the_endpoint(hub):
    with pytest.raises(pr.PretrainedNotFound, match="could not be downloaded from") as info:
        pr.HuggingFaceTrainer(model="acme/missing", label="label")
    assert hub.url in str(info.value)


def test_a_missing_folder_path_is_not_looked_up_on_the_hub(hub, tmp_path):
    with pytest.raises(pr.PretrainedNotFound, match="not a Hugging Face model name"):
        pr.HuggingFaceTrainer(model=str(tmp_path / "no" / "such" / "model"), label="label")
    assert hub.requests == []


@pytest.mark.timeout(900)
def test_a_downloaded_model_fine_tunes_on_the_workers_and_registers(hub, tmp_path):
    store = pr.connect(tmp_path / "reviews.db")
    store.write("reviews", text_data.sentiment_rows(60), key="id")
    trainer = pr.HuggingFaceTrainer(
        model=NAME,
        label="label",
        training_args={"max_steps": 2, "per_device_train_batch_size": 8},
        scaling_config=ScalingConfig(num_workers=1),
    )
    result = trainer.fit(train=store.table("reviews", key="id"))
    assert result.version == 1
    model = store.models.load("tiny-bert")
    assert set(model.predict(["great product", "awful service"])) <= {"pos", "neg"}
