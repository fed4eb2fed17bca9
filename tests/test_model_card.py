"""Model cards: each registered version carries a short card (framework, features and label,
metrics with the listened one first, data lineage with the password masked, created_at, how
to load and predict), stored with the version and shown by ``pinnacle-ray models show``.

The card's storage runs on every backend without Ray; one managed torch fit on PostgreSQL,
through a URL that carries a password, checks the card a real fit writes.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
import torch
from conftest import PG_URL
from ray.train import ScalingConfig

import pinnacle_ray as pr
from pinnacle_ray.cli import main as cli_main
from pinnacle_ray.registry.cards import card_text

FEATURES = ["x0", "x1", "x2"]
SECRET = "card-s3cret"
ROWS = 300


def _artifact(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "weights.bin").write_bytes(b"w" * 32)
    return folder


def _drop(store: pr.SqlDatastore, table: str) -> None:
    with store._engine.begin() as conn:
        conn.execute(sa.schema.DropTable(sa.Table(table, sa.MetaData()), if_exists=True))


# -- stored with the version, on every backend ----------------------------------------------
@pytest.mark.with_mongo
def test_a_registered_version_keeps_its_card_with_the_password_masked(store, tables, tmp_path):
    for name in ("pinnacle_models", "pinnacle_checkpoints", "pinnacle_registry_meta",
                 "pinnacle_model_cards"):  # fmt: skip
        tables(name)
    registry = pr.ModelRegistry(store, prefix=f"{tables.prefix}_pinnacle", artifact_root=tmp_path)
    lineage = {
        "train": {
            "store": f"postgresql://ml:{SECRET}@db.example/shop",
            "table": "houses",
            "where": {"split": "train"},
            "key": "id",
            "rows": 120,
            "key_max": 119,
        }
    }
    v = registry.register(
        "card", "xgboost", _artifact(tmp_path),
        metrics={"train/rmse": 2.0, "valid/rmse": 3.0, "timing/s": 1.0},
        lineage=lineage, card={"features": ["a", "b"], "label": "y", "listen": "valid/rmse"},
    )  # fmt: skip

    card = registry.card("card")
    assert card["version"] == v.version and card["framework"] == "xgboost"
    assert card["features"] == ["a", "b"] and card["label"] == "y"
    assert [m["name"] for m in card["metrics"]] == ["valid/rmse", "train/rmse"]  # listened first
    train = card["data"]["train"]
    assert train["rows"] == 120 and train["watermark"] == {"key": "id", "value": 119}
    assert train["store"] == "postgresql://ml:***@db.example/shop"
    assert card["created_at"] == v.created_at.isoformat(timespec="seconds")
    assert "store.models.load('card', version=1)" in card["usage"]["load"]
    stored = store.table(registry.tables.cards).to_arrow().to_pylist()
    assert len(stored) == 1 and SECRET not in json.dumps(stored, default=str)

    registry.delete("card")
    assert store.table(registry.tables.cards).to_arrow().num_rows == 0


def test_a_version_registered_without_a_card_gets_one_built_from_its_record(tmp_path):
    store = pr.connect(tmp_path / "old.db")
    store.models.register("old", "sklearn", _artifact(tmp_path), metrics={"r2": 0.5})
    _drop(store, store.models.tables.cards)  # as a registry from before cards would be
    card = store.models.card("old")
    assert card["name"] == "old" and card["metrics"] == [{"name": "r2", "value": 0.5}]


def test_a_bad_card_entry_is_refused_before_anything_is_stored(tmp_path):
    store = pr.connect(tmp_path / "bad.db")
    with pytest.raises(pr.ConfigError, match=r"card has unknown entries \['colour'\]"):
        store.models.register("bad", "torch", _artifact(tmp_path), card={"colour": "red"})
    assert store.models.list() == []


# -- what a real fit writes, and what the CLI shows -----------------------------------------
@pytest.fixture(scope="module")
def fitted():
    """One managed torch fit on PostgreSQL, connected with a password in the URL."""
    url = sa.engine.make_url(PG_URL).set(password=SECRET)  # trust auth: accepted, unused
    url_text = url.render_as_string(hide_password=False)
    try:
        store = pr.connect(url_text)
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! postgresql server not reachable, its tests are SKIPPED: {exc}")
    table = f"card_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 3))
    data = {"id": np.arange(ROWS)} | {f: x[:, i] for i, f in enumerate(FEATURES)}
    store.write(table, pa.table(data | {"y": x.sum(axis=1)}), key="id")
    name = f"card-mlp-{uuid.uuid4().hex[:6]}"
    torch.manual_seed(0)
    result = pr.TorchTrainer(
        model=torch.nn.Linear(3, 1), features=FEATURES, label="y", batch_size=64, epochs=2,
        scaling_config=ScalingConfig(num_workers=1), name=name,
    ).fit(train=store.table(table, key="id"))  # fmt: skip
    yield store, url_text, name, result
    store.models.delete(name)
    _drop(store, table)
    store.close()


@pytest.mark.timeout(600)
def test_a_fit_writes_a_card_with_its_features_listened_metric_and_data(fitted):
    store, _, name, result = fitted
    card = store.models.card(name, version=result.version)
    assert card["features"] == FEATURES and card["label"] == "y"
    assert card["listen"] == "valid/loss" and card["metrics"][0]["name"] == "valid/loss"
    assert card["metrics"][0]["value"] == pytest.approx(result.record.main_metrics()["valid/loss"])
    train = card["data"]["train"]
    assert train["rows"] == ROWS and train["watermark"] == {"key": "id", "value": ROWS - 1}
    assert "***" in train["store"] and SECRET not in json.dumps(card)
    assert "valid" in card["data"]  # the key's holdout rule, as the version's lineage has it


def test_models_show_prints_the_card_readably_and_json_keeps_the_machine_form(fitted, capsys):
    store, url, name, result = fitted
    assert cli_main(["models", "show", name, "--store", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith(card_text(store.models.card(name)))
    lines = out.splitlines()
    assert f"  features  {', '.join(FEATURES)}" in lines and "  label     y" in lines
    metric_lines = [line.split()[0] for line in lines if line.startswith("    ") and "/" in line]
    assert metric_lines[0] == "valid/loss" and "train/loss" in metric_lines
    assert f"    rows    {ROWS}" in lines and SECRET not in out

    assert cli_main(["models", "show", name, "--store", url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["card"] == store.models.card(name) and shown["version"] == result.version
