"""HuggingFaceTrainer with task="token-classification": one tag per word, trained, loaded,
predicted and written back.

Words are capitalised names (tag ENTITY) and lowercase words (tag O): the tag is a function
of the word, so a tiny BERT (built here, nothing downloaded) learns it in a few steps. One
Ray Train fit, shared by the tests through a module-scoped fixture.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import ray.data
import text_data
from ray.train import ScalingConfig

import pinnacle_ray as pr
from pinnacle_ray.trainers.huggingface_tokens import TokenizeWords

NAMES = ["Alice", "Bob", "Paris", "London", "Oslo", "Carol", "Dave", "Rome", "Lima", "Erin"]
WORDS = ["the", "went", "to", "with", "and", "saw", "a", "big", "city", "met", "from", "today"]
ARGS = {
    "learning_rate": 5e-3,
    "per_device_train_batch_size": 16,
    "num_train_epochs": 3,
    "logging_steps": 2,
    "warmup_steps": 0,
}


def tag_of(word: str) -> str:
    return "ENTITY" if word[0].isupper() else "O"


def tagged_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows of id, text (5-8 words, about a quarter of them names), tags and split."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [
            rng.choice(NAMES if rng.random() < 0.25 else WORDS) for _ in range(rng.randint(5, 8))
        ]
        rows.append(
            {
                "id": i,
                "text": " ".join(words),
                "tags": " ".join(tag_of(w) for w in words),
                "split": "valid" if i % 5 == 0 else "train",
            }
        )
    return rows


def word_tokenizer():
    """A WordLevel tokenizer over NAMES and WORDS (and '-', so 'Oslo-Rome' is 3 sub-tokens)."""
    return text_data.word_tokenizer(words={*NAMES, *WORDS, "-"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-tokens")


@pytest.fixture(scope="module")
def bert(folder):
    """A 2-layer BERT (hidden size 32) with the tokenizer above, from config."""
    path = text_data.tiny_bert(folder / "tiny-bert", tokenizer=word_tokenizer())
    return str(path)


@pytest.fixture(scope="module")
def sqlite(folder):
    store = pr.connect(folder / "tokens.db")
    store.write("sentences", tagged_rows(300), key="id")
    yield store
    store.close()


def _trainer(bert, **kw):
    args = {
        "model": bert,
        "text_column": "text",
        "label": "tags",
        "task": "token-classification",
        "training_args": ARGS,
        "max_length": 16,
        "scaling_config": ScalingConfig(num_workers=2),
        "name": "tagger",
    }
    return pr.HuggingFaceTrainer(**(args | kw))


@pytest.fixture(scope="module")
def fitted(sqlite, bert):
    return _trainer(bert).fit(
        train=sqlite.table("sentences", where={"split": "train"}),
        valid=sqlite.table("sentences", where={"split": "valid"}),
    )


def _majority_share(rows: list[dict]) -> float:
    tags = [t for r in rows for t in r["tags"].split()]
    return max(tags.count("O"), tags.count("ENTITY")) / len(tags)


def test_token_accuracy_rises_well_above_the_majority_tag_when_tags_follow_the_words(fitted):
    valid = [r for r in tagged_rows(300) if r["split"] == "valid"]
    baseline = _majority_share(valid)
    assert baseline < 0.85
    assert fitted.metrics["valid/accuracy"] > max(0.97, baseline + 0.1)
    assert fitted.version == 1


def test_the_registered_config_holds_the_tags_and_a_token_classification_head(fitted, sqlite):
    folder = Path(sqlite.models.checkpoint_dir("tagger", version=1, handle="latest"))
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "ENTITY", "1": "O"}
    assert config["label2id"] == {"ENTITY": 0, "O": 1}
    assert config["architectures"] == ["BertForTokenClassification"]


def test_loaded_model_predicts_one_tag_per_word_from_raw_text(fitted, sqlite):
    model = sqlite.models.load("tagger", version=1)
    tags = model.predict(["Alice went to Paris today", "the big city"])
    assert [list(t) for t in tags] == [["ENTITY", "O", "O", "ENTITY", "O"], ["O", "O", "O"]]
    # A list column's rows (lists of words), pandas and Arrow give the same tags.
    words = [["Bob", "met", "Carol"], ["a", "city"]]
    expected = [["ENTITY", "O", "ENTITY"], ["O", "O"]]
    assert [list(t) for t in model.predict(words)] == expected
    frame = pd.DataFrame({"text": ["Bob met Carol", "a city"]})
    assert [list(t) for t in model.predict(frame)] == expected
    assert [list(t) for t in model.predict(pa.Table.from_pandas(frame))] == expected


def test_predict_scores_gives_a_score_per_word(fitted, sqlite):
    model = sqlite.models.load("tagger", version=1)
    scores = model.predict_scores({"text": np.array(["Rome and Lima", ""])})
    assert list(scores["tags"][0]) == ["ENTITY", "O", "ENTITY"]
    assert len(scores["scores"][0]) == 3 and all(0.5 < s <= 1.0 for s in scores["scores"][0])
    assert list(scores["tags"][1]) == [] and list(scores["scores"][1]) == []
    with pytest.raises(pr.ConfigError, match="predict_scores"):
        model.predict_proba(["Rome and Lima"])


def test_a_text_longer_than_max_length_still_gets_a_tag_for_every_word(fitted, sqlite):
    model = sqlite.models.load("tagger", version=1)
    words = ["Alice", "saw", "Bob", "and", "Carol"] * 8  # 40 words, max_length=16 tokens
    (tags,) = model.predict([" ".join(words)])
    assert list(tags) == [tag_of(w) for w in words]


def test_predict_writes_the_tags_back_as_one_string_once_when_run_twice(fitted, sqlite):
    query = sqlite.table("sentences", columns=["id", "text", "tags"], where={"split": "valid"})
    expected = query.count()
    for _ in range(2):
        result = pr.predict("tagger", query, output="tagged", version=1, columns=["tags"])
        assert (result.version, result.rows) == (1, expected)
    out = sqlite.table("tagged").to_arrow().to_pandas()
    assert len(out) == expected and out["id"].is_unique
    assert all(isinstance(p, str) for p in out["prediction"])
    assert (out["prediction"].str.split().str.len() == out["tags"].str.split().str.len()).all()
    assert (out["prediction"] == out["tags"]).mean() > 0.9


def test_tags_go_to_the_first_sub_token_of_each_word_when_aligned():
    tokenize = TokenizeWords(word_tokenizer(), "text", "tags", ["ENTITY", "O"], max_length=16)
    table = pa.table({"text": [["Oslo-Rome", "saw", "Bob"]], "tags": [["ENTITY", "O", "ENTITY"]]})
    out = tokenize(table).to_pylist()[0]
    # [CLS] Oslo - Rome saw Bob [SEP]: one tag per word, at its first sub-token
    assert out["labels"] == [-100, 0, -100, -100, 1, 0, -100]
    assert len(out["input_ids"]) == 7 and not out["_pinnacle_truncated"]


def test_a_row_with_more_tags_than_words_is_refused_naming_its_key(folder, bert):
    store = pr.connect(folder / "mismatch.db")
    rows = tagged_rows(40, seed=1)
    rows[7]["tags"] += " O"
    store.write("sentences", rows, key="id")
    words = len(rows[7]["text"].split())
    with pytest.raises(pr.DataError, match=rf"id=7.* {words} word\(s\).* {words + 1} tag\(s\)"):
        _trainer(bert).fit(train=store.table("sentences"))


def test_list_columns_of_unequal_length_are_refused_with_both_counts(bert):
    rows = {
        "text": [["Alice", "went", "home"], ["Bob", "saw", "a", "city"]],
        "tags": [["ENTITY", "O", "O"], ["ENTITY", "O"]],
    }
    with pytest.raises(pr.DataError, match=r"4 word\(s\).* 2 tag\(s\)"):
        _trainer(bert).fit(train=ray.data.from_arrow(pa.table(rows)), register=False)


@pytest.mark.with_mongo
def test_a_valid_tag_the_training_rows_lack_is_refused_on_every_backend(
    backend, store, tables, bert
):
    table = tables("sentences")
    rows = tagged_rows(40, seed=2)
    rows[0]["tags"] = " ".join(["PLACE"] * len(rows[0]["text"].split()))
    if backend == "mongo":  # MongoDB has lists: words and tags as arrays
        rows = [r | {"text": r["text"].split(), "tags": r["tags"].split()} for r in rows]
    store.write(table, rows, key="id")
    with pytest.raises(pr.LabelMismatch, match="PLACE"):
        _trainer(bert).fit(
            train=store.table(table, where={"split": "train"}),
            valid=store.table(table, where={"split": "valid"}),
        )


def test_a_text_pair_is_refused_for_token_classification(bert):
    with pytest.raises(pr.ConfigError, match="one text column"):
        _trainer(bert, text_column=("text", "tags"))
