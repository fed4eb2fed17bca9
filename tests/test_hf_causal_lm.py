"""HuggingFaceTrainer with task="causal-lm": whole-model (2 workers) and LoRA (1 worker)
fine-tuning on a text column, registered, loaded, and generated text written back by
pr.predict.

The rows count on from a random number word ("four five six seven"), so the next word is a
function of the last one: a tiny model (built here from a config, nothing downloaded)
learns it in a few steps, and a prompt's greedy continuation is checked word by word. Two
Ray Train fits (a GPT-2 fine-tuned whole, a Llama with a LoRA adapter), shared by the tests
through module-scoped fixtures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lm_data
import numpy as np
import pytest
from ray.train import ScalingConfig

import pinnacle_ray as pr
from pinnacle_ray.registry.huggingface_lm import CausalLMModel

PROMPTS = [f"{a} {b}" for a, b in zip(lm_data.NUMBERS, [*lm_data.NUMBERS[1:], "one"], strict=True)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-causal")


@pytest.fixture(scope="module")
def gpt2(folder):
    return str(lm_data.tiny_causal_lm(folder / "tiny-gpt2", "gpt2"))


@pytest.fixture(scope="module")
def llama(folder):
    return str(lm_data.tiny_causal_lm(folder / "tiny-llama", "llama"))


@pytest.fixture(scope="module")
def store(folder):
    store = pr.connect(folder / "lm.db")
    store.write("texts", lm_data.counting_rows(400), key="id")
    return store


def _train(store):
    return store.table("texts", where={"split": "train"}, key="id")


def _valid(store):
    return store.table("texts", columns=["id", "text"], where={"split": "valid"}, key="id")


@pytest.fixture(scope="module")
def full(store, gpt2):
    """The GPT-2 fine-tuned whole, its training arguments given as a TrainingArguments."""
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir="ignored",
        learning_rate=5e-3,
        num_train_epochs=3,
        per_device_train_batch_size=16,
        warmup_steps=0,
    )
    trainer = pr.HuggingFaceTrainer(
        model=gpt2,
        task="causal-lm",
        text_column="text",
        training_args=args,
        max_length=16,
        max_new_tokens=4,
        scaling_config=ScalingConfig(num_workers=2),
        name="counting-lm",
    )
    return trainer.fit(train=_train(store), valid=_valid(store))


@pytest.fixture(scope="module")
def lora(store, llama):
    """The Llama with a LoRA adapter (r=8 on every linear layer): only the adapter trains
    and is registered."""
    trainer = pr.HuggingFaceTrainer(
        model=llama,
        task="causal-lm",
        text_column="text",
        peft={"r": 8, "lora_alpha": 32, "target_modules": "all-linear"},
        training_args={
            "learning_rate": 3e-2,
            "num_train_epochs": 3,
            "per_device_train_batch_size": 16,
            "warmup_steps": 0,
        },
        max_length=16,
        max_new_tokens=4,
        scaling_config=ScalingConfig(num_workers=1),  # ~10 s less than two; `full` has two
        name="counting-lora",
    )
    return trainer.fit(train=_train(store), valid=_valid(store))


def _base(path: str) -> CausalLMModel:
    """The untrained model, as a predictor (what fine-tuning is compared with)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return CausalLMModel(model, tokenizer, {"generation": {"max_new_tokens": 4}})


def _right(model, prompts=PROMPTS) -> int:
    """How many prompts get their next two number words as the start of the continuation."""
    out = model.predict(prompts)
    return sum(
        str(o).split()[:2] == lm_data.next_words(p, 2).split()
        for p, o in zip(prompts, out, strict=True)
    )


def _valid_texts(store) -> list[str]:
    return _valid(store).to_dataset().to_pandas()["text"].tolist()


# -- whole-model fine-tuning -----------------------------------------------------------------


@pytest.mark.timeout(900)
def test_a_causal_lm_fine_tuned_on_a_text_column_continues_the_texts(full, store, gpt2):
    model = store.models.load("counting-lm")
    assert isinstance(model, CausalLMModel)
    base = _base(gpt2)
    assert _right(base) <= 2, "the untrained model should not count"
    assert _right(model) >= 10, model.predict(PROMPTS)
    texts = _valid_texts(store)
    tuned = model.predict_scores(texts)["perplexity"].mean()
    untrained = base.predict_scores(texts)["perplexity"].mean()
    assert tuned < untrained / 3, (tuned, untrained)
    assert result_has(full, "valid/perplexity")
    assert full.metrics["valid/perplexity"] == pytest.approx(np.exp(full.metrics["valid/loss"]))


def result_has(result, metric: str) -> bool:
    return isinstance(result.metrics.get(metric), float)


def test_training_args_given_as_a_transformers_training_arguments_are_used(full, store):
    version = store.models.get("counting-lm", version=full.version)
    args = version.config["training_args"]
    assert args["learning_rate"] == 5e-3
    assert args["per_device_train_batch_size"] == 16
    assert "output_dir" not in args  # Ray Train's storage holds the checkpoints


def test_pr_predict_writes_each_rows_generated_continuation(full, store):
    query = _valid(store)
    written = pr.predict("counting-lm", query, output="continuations")
    rows = store.table("continuations").to_dataset().to_pandas().sort_values("id")
    texts = query.to_dataset().to_pandas().sort_values("id")
    assert written.rows == len(texts) == len(rows) == 80
    model = store.models.load("counting-lm")
    assert rows["prediction"].tolist() == model.predict(texts["text"].tolist()).tolist()
    # The rows end where counting text ends (5-8 words), so a continuation is the next words
    # or nothing (the end-of-text token); the words it has are the right ones.
    for text, continuation in zip(texts["text"], rows["prediction"], strict=True):
        words = continuation.split()
        assert words == lm_data.next_words(text, len(words)).split()[: len(words)], (text, words)
    assert not any(c.startswith("proba_") for c in rows.columns)


# -- LoRA -------------------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_a_lora_version_stores_the_adapter_only_with_a_reference_to_its_base(lora, store, llama):
    files = sorted(p.name for p in Path(store.models.checkpoint_dir("counting-lora")).iterdir())
    assert "adapter_model.safetensors" in files and "adapter_config.json" in files
    assert "model.safetensors" not in files
    meta = json.loads(
        (Path(store.models.checkpoint_dir("counting-lora")) / "pinnacle.json").read_text()
    )
    assert meta["task"] == "causal-lm" and meta["peft"] == {
        "r": 8,
        "lora_alpha": 32,
        "target_modules": "all-linear",
    }
    assert meta["base_model"] == str(Path(llama).resolve())
    assert len(meta["base_sha256"]) == 64
    adapter = Path(store.models.checkpoint_dir("counting-lora")) / "adapter_model.safetensors"
    base = Path(llama) / "model.safetensors"
    assert adapter.stat().st_size < base.stat().st_size / 2


def test_a_loaded_lora_version_generates_better_than_its_base(lora, store, llama):
    model = store.models.load("counting-lora")
    base = _base(llama)
    texts = _valid_texts(store)
    tuned = model.predict_scores(texts)["perplexity"].mean()
    untrained = base.predict_scores(texts)["perplexity"].mean()
    assert tuned < untrained / 3, (tuned, untrained)
    assert _right(base) <= 2, "the untrained model should not count"
    assert _right(model) >= 10, model.predict(PROMPTS)


def test_pr_predict_writes_a_lora_versions_generated_text(lora, store):
    written = pr.predict("counting-lora", _valid(store), output="lora_continuations")
    rows = store.table("lora_continuations").to_dataset().to_pandas()
    assert written.rows == len(rows) == 80
    assert set(rows["version"]) == {lora.version}
    assert rows["prediction"].map(lambda v: isinstance(v, str)).all()


def test_a_lora_version_loads_onto_a_base_given_when_the_recorded_one_moved(lora, store, llama):
    moved = Path(llama).with_name("moved-llama")
    shutil.move(llama, moved)
    try:
        with pytest.raises(pr.PretrainedNotFound, match="base_model="):
            store.models.load("counting-lora")
        model = store.models.load("counting-lora", base_model=str(moved))
        assert isinstance(model, CausalLMModel)
    finally:
        shutil.move(moved, llama)


def test_a_lora_version_refuses_a_base_with_other_weights(lora, store, folder):
    other = lm_data.tiny_causal_lm(folder / "other-llama", "llama", seed=1)
    with pytest.raises(pr.IncompatibleCheckpoint, match="not the base this adapter"):
        store.models.load("counting-lora", base_model=str(other))


@pytest.mark.timeout(900)
def test_a_lora_version_resumes_from_its_registered_adapter(lora, store, llama):
    # One step past the registered run: a fresh adapter (B = 0) would be the untrained
    # base again (valid/loss about ln(15) = 2.7); the restored one is where the run ended.
    trainer = pr.HuggingFaceTrainer(
        model=llama,
        task="causal-lm",
        text_column="text",
        peft={"r": 8, "lora_alpha": 32, "target_modules": "all-linear"},
        training_args={"max_steps": lora.metrics["step"] + 1, "per_device_train_batch_size": 16},
        max_length=16,
        name="counting-lora",
    )
    result = trainer.fit(train=_train(store), valid=_valid(store), resume_from="counting-lora")
    assert result.metrics["step"] == lora.metrics["step"] + 1
    assert result.metrics["valid/loss"] < 1.0 < 2.0 < _base_loss(llama, store)
    version = store.models.get("counting-lora", version=result.version)
    assert version.parent_version == lora.version
    files = {p.name for p in Path(store.models.checkpoint_dir("counting-lora")).iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files


def _base_loss(path: str, store) -> float:
    return float(np.log(_base(path).predict_scores(_valid_texts(store))["perplexity"]).mean())


# -- refused before any worker starts ---------------------------------------------------------


def test_lora_settings_that_are_not_loraconfig_fields_are_refused(gpt2):
    with pytest.raises(pr.ConfigError, match=r"\['rank'\].*not peft.LoraConfig fields"):
        pr.HuggingFaceTrainer(model=gpt2, task="causal-lm", peft={"rank": 8})


def test_lora_for_a_task_other_than_causal_lm_is_refused(gpt2):
    with pytest.raises(pr.ConfigError, match="task='causal-lm'"):
        pr.HuggingFaceTrainer(model=gpt2, task="sequence-classification", peft={"r": 8})


def test_a_peft_method_other_than_lora_is_refused(gpt2):
    from peft import IA3Config

    with pytest.raises(pr.ConfigError, match="IA3Config"):
        pr.HuggingFaceTrainer(model=gpt2, task="causal-lm", peft=IA3Config())


def test_a_loraconfig_object_is_taken_as_its_changed_fields(gpt2):
    from peft import LoraConfig

    trainer = pr.HuggingFaceTrainer(
        model=gpt2, task="causal-lm", peft=LoraConfig(r=4, target_modules=["c_attn"])
    )
    assert trainer.setup.peft == {"r": 4, "target_modules": ["c_attn"]}


def test_a_training_argument_the_trainer_sets_is_refused_in_a_training_arguments(gpt2):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="x", eval_strategy="steps", eval_steps=3)
    with pytest.raises(pr.ConfigError, match=r"eval_strategy.*set by the trainer"):
        pr.HuggingFaceTrainer(model=gpt2, task="causal-lm", training_args=args)


def test_causal_lm_reads_one_text_column(gpt2):
    with pytest.raises(pr.ConfigError, match="one text column"):
        pr.HuggingFaceTrainer(model=gpt2, task="causal-lm", text_column=("a", "b"))


def test_a_causal_lm_cannot_listen_to_accuracy(store, gpt2):
    trainer = pr.HuggingFaceTrainer(model=gpt2, task="causal-lm", listen="valid/accuracy")
    with pytest.raises(pr.ConfigError, match="valid/perplexity"):
        trainer.fit(train=_train(store), valid=_valid(store))
