"""``pinnacle-ray sweep``, ``predict`` and ``models promote|rollback`` end to end on the
session's local Ray: the example scikit-learn spec swept (its best trial registered),
predictions written back and rewritten without duplicates, handles moved from the terminal;
and a spec whose query is a MongoDB ``find:`` trains through ``pinnacle-ray train``."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import uuid
from pathlib import Path

import pytest

import pinnacle_ray as pr
from pinnacle_ray.cli import main
from pinnacle_ray.jobs.quickstart import FEATURES, write_quickstart

pytestmark = pytest.mark.timeout(600)  # two sweeps share the first test; the machine is shared

ROOT = Path(__file__).resolve().parents[1]
SPEC = "examples/specs/sklearn.yaml"
OUTPUT = "diabetes_forest_predictions"  # the spec's predict.output


def cli(*argv: str) -> tuple[int, str, str]:
    """main() with stdout/stderr captured (module fixtures cannot use capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def last_json(out: str):
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The diabetes table in a fresh SQLite file, then the example spec swept twice through
    the CLI: once with ``--json`` (version 1), once for people (version 2)."""
    folder = tmp_path_factory.mktemp("cli-runs")
    write_quickstart(folder, epochs=1)
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    mp.setenv("PINNACLE_RAY_STORE", f"sqlite:///{folder / 'quickstart.db'}")
    try:
        yield {
            "json": cli("sweep", SPEC, "--json"),
            "human": cli("sweep", SPEC),
            "db": folder / "quickstart.db",
        }
    finally:
        mp.undo()


def output_rows(db: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(f"SELECT id, model, version FROM {OUTPUT} ORDER BY id").fetchall()


def test_sweep_registers_its_best_trial_and_gives_every_trial_as_json(swept):
    code, out, err = swept["json"]
    assert code == 0, err[-3000:]
    result = last_json(out)
    trials = result["trials"]
    assert sorted(t["params"]["estimator__max_depth"] for t in trials) == [2, 6]
    best = trials[0]
    assert best["best"] and best["version"] == result["version"] == 1
    assert best["score"] == max(t["score"] for t in trials)
    assert result["metrics"]["valid/r2"] == best["score"]
    model = pr.connect(swept["db"]).models.get("diabetes-forest", version=1)
    assert model.config["sweep"]["params"] == best["params"]


def test_sweep_prints_a_trial_table_with_the_best_marked(swept):
    code, out, err = swept["human"]
    assert code == 0, err[-3000:]
    lines = out.strip().splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("swept ")) :]
    assert "best trial registered as version 2" in lines[0]
    assert lines[1].split() == ["best", "trial", "status", "valid/r2", "params"]
    rows = lines[3:]
    assert len(rows) == 2 and rows[0].startswith("*") and not rows[1].startswith("*")
    assert {r.split()[-1] for r in rows} == {"estimator__max_depth=2", "estimator__max_depth=6"}


def test_predict_from_the_spec_writes_every_row_once_when_run_twice(swept):
    runs = [cli("predict", "--spec", SPEC, "--json") for _ in range(2)]
    for code, _, err in runs:
        assert code == 0, err[-3000:]
    first, second = (last_json(out) for _, out, _ in runs)
    assert first["rows"] == second["rows"] == 442
    assert (first["name"], first["version"], first["output"]) == ("diabetes-forest", 2, OUTPUT)
    rows = output_rows(swept["db"])
    assert len(rows) == 442 and {(m, v) for _, m, v in rows} == {("diabetes-forest", 2)}


def test_predict_from_the_spec_uses_the_store_given_with_store(swept, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"  # a store where no model is registered
    code, _, err = cli("predict", "--spec", SPEC, "--store", other)
    assert code == 1
    assert err.startswith("error: table 'patients' does not exist in ") and "other.db" in err


def test_predict_a_model_on_a_query_prints_the_count_and_where(swept):
    code, out, err = cli(
        "predict",
        "diabetes-forest",
        "--sql",
        "SELECT * FROM patients WHERE split = 'valid'",
        "--key",
        "id",
        "--version",
        "1",
        "--output",
        "valid_predictions",
        "--store",
        f"sqlite:///{swept['db']}",
    )
    assert code == 0, err[-3000:]
    assert out.startswith(
        "wrote 89 prediction(s) of diabetes-forest version 1 into valid_predictions"
    )


def test_predict_without_a_query_says_what_it_needs():
    code, out, err = cli("predict", "diabetes-forest", "--output", "x")
    assert code == 1 and out == ""
    assert "predict needs MODEL, --output TABLE and a query" in err


def test_promote_and_rollback_move_the_handle_predict_uses(swept):
    store = f"sqlite:///{swept['db']}"
    assert cli("models", "promote", "diabetes-forest", "--version", "1", "--store", store)[1] == (
        "promoted diabetes-forest: production -> version 1\n"
    )
    code, out, _ = cli("models", "promote", "diabetes-forest", "--store", store, "--json")
    assert code == 0 and json.loads(out) == {
        "name": "diabetes-forest",
        "handle": "production",
        "version": 2,
    }
    code, out, _ = cli("models", "rollback", "diabetes-forest", "--store", store)
    assert code == 0 and out == "rolled back diabetes-forest: production -> version 1\n"
    code, out, err = cli("predict", "--spec", SPEC, "--json")
    assert code == 0, err[-3000:]
    assert last_json(out)["version"] == 1


def test_rollback_of_a_handle_never_promoted_is_a_one_line_error(swept):
    code, _, err = cli(
        "models", "rollback", "diabetes-forest", "--handle", "staging", "--store",
        f"sqlite:///{swept['db']}",
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert "has no handle 'staging' to roll back: it was never promoted" in err


MONGO_SPEC = """\
name: {name}
store: {uri}
artifact_root: {artifacts}
train:
  find: {collection}
  filter: {{split: train}}
  projection: [{features}, progression]
trainer:
  kind: sklearn
  estimator: sklearn.linear_model:Ridge
  features: [{features}]
  label: progression
"""


def test_spec_with_a_mongo_find_query_trains_and_registers(mongo_uri, tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    frame["split"] = ["valid" if i % 5 == 0 else "train" for i in range(len(frame))]
    store = pr.connect(mongo_uri, artifact_root=tmp_path / "art")
    suffix = uuid.uuid4().hex[:8]
    name, collection = f"mongo-forest-{suffix}", f"patients_{suffix}"
    store._database()[collection].insert_many(frame.to_dict("records"))
    spec = tmp_path / "mongo.yaml"
    spec.write_text(
        MONGO_SPEC.format(
            name=name,
            uri=mongo_uri,
            artifacts=tmp_path / "art",
            collection=collection,
            features=", ".join(FEATURES),
        )
    )
    try:
        code, out, err = cli("train", str(spec), "--json")
        assert code == 0, err[-3000:]
        result = last_json(out)
        assert (result["name"], result["version"]) == (name, 1)
        assert "valid/r2" not in result["metrics"] and result["metrics"]
        assert store.models.get(name).lineage["train"]
    finally:
        store.drop(collection)
        store.close()
