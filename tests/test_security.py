"""Security: a password never leaks out of a run; registry loads never run code unasked;
artifact paths never leave the artifact root.

The leak test runs a whole flow (connect, train, register, load, predict, failing queries,
the CLI, job records) on a PostgreSQL role and a MariaDB user whose password is a canary,
in a database of their own, then searches everything the run produced for the canary:
captured output, log records, exception chains, every row of every table, every file under
the test's folders and Ray's session logs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import pickle
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import ray
import sqlalchemy as sa
import torch
from conftest import MYSQL_URL, PG_URL
from registry_helpers import TwoLayer
from sklearn.linear_model import LinearRegression

import pinnacle_ray as pr
from pinnacle_ray.cli import main
from pinnacle_ray.jobs import JobRecord, JobRecords, load_spec
from pinnacle_ray.jobs.submit import build_runtime_env
from pinnacle_ray.registry.sklearn_flavor import save_model as save_sklearn
from pinnacle_ray.registry.torch_flavor import save_model as save_torch

CANARY = "S3cr3t-canary-91"
FEATURES = ["x1", "x2"]
FRAMES = {"sklearn", "xgboost", "torch", "huggingface"}


# -- helpers ---------------------------------------------------------------------------------
def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def exception_texts(exc: BaseException) -> list[str]:
    """str and repr of ``exc`` and of every exception chained to it (cause and context)."""
    texts, seen, todo = [], set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        texts += [str(e), repr(e), *(str(a) for a in e.args)]
        todo += [e.__cause__, e.__context__]
    return texts


def raised(fn) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError(f"{fn} raised nothing")


def rows_of(n: int = 40) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    return [
        {"id": i, "x1": float(a), "x2": float(b), "y": float(2 * a + b)}
        for i, (a, b) in enumerate(x)
    ]


@contextlib.contextmanager
def canary_database(backend: str) -> Iterator[tuple[str, sa.Engine]]:
    """A database of its own and a login whose password is the canary: (URL with the
    password, an admin engine on that database). Both are dropped afterwards."""
    name = f"pr_canary_{uuid.uuid4().hex[:8]}"
    admin_url = sa.engine.make_url(PG_URL if backend == "postgresql" else MYSQL_URL)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD '{CANARY}'")
                conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER {name}")
            else:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
                conn.exec_driver_sql(f"CREATE USER '{name}'@'%%' IDENTIFIED BY '{CANARY}'")
                conn.exec_driver_sql(f"GRANT ALL ON {name}.* TO '{name}'@'%%'")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"!!! {backend} server not reachable, its leak test is SKIPPED: {exc}")
    url = admin_url.set(username=name, password=CANARY, database=name)
    db_admin = sa.create_engine(admin_url.set(database=name))
    try:
        yield url.render_as_string(hide_password=False), db_admin
    finally:
        db_admin.dispose()
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
                conn.exec_driver_sql(f"DROP USER IF EXISTS '{name}'@'%%'")
        admin.dispose()


def table_dumps(engine: sa.Engine) -> dict[str, str]:
    """Every row of every table of ``engine``'s database, as text, by table name."""
    out = {}
    with engine.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            out[f"table {name}"] = "\n".join(repr(tuple(r)) for r in conn.execute(table.select()))
    return out


def files_under(*folders: Path) -> list[Path]:
    return [p for f in folders if f.is_dir() for p in f.rglob("*") if p.is_file()]


# -- 1. credentials never leak --------------------------------------------------------------
@pytest.mark.timeout(400)
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_password_appears_nowhere_when_a_whole_run_uses_it(
    backend, tmp_path, monkeypatch, capfd, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PINNACLE_RAY_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("PINNACLE_RAY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PR_CANARY_PASSWORD", CANARY)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    texts: dict[str, str] = {}  # place -> what it holds

    with canary_database(backend) as (url, admin):
        user = sa.engine.make_url(url).username
        store = pr.connect(url)
        texts["repr(store)"] = repr(store) + store.url
        store.write("houses", rows_of(), key="id")
        query = store.table("houses", columns=["id", *FEATURES, "y"], key="id")
        texts["repr(store.models)"] = repr(store.models)

        if backend == "postgresql":  # Ray runs (fit, pr.predict) once: they cost ~30 s
            result = pr.SklearnTrainer(
                LinearRegression(), features=FEATURES, label="y", name="canary-lr"
            ).fit(train=query)
            texts["fit result"] = repr(result) + json.dumps(result.metrics, default=str)
        else:  # registered by hand, with the store URL in its lineage and config
            folder = tmp_path / "tmp" / "lr"
            save_sklearn(folder, LinearRegression().fit(np.eye(2), [0, 1]), {"features": FEATURES})
            store.models.register(
                "canary-lr", "sklearn", folder, lineage={"store": url}, config={"url": url}
            )
        version = store.models.get("canary-lr")
        texts["registry version"] = repr(version) + version.artifact_uri
        texts["registry lineage"] = json.dumps(version.lineage, default=str)
        texts["registry config"] = json.dumps(version.config, default=str)
        texts["store.models.list"] = repr(store.models.list())
        model = store.models.load("canary-lr")
        texts["loaded model"] = repr(model) + repr(model.predict(pd.DataFrame(rows_of(n=3))))
        if backend == "postgresql":
            # pr.predict through the CLI, on a pickled (joblib) model: the store travels to
            # the actors, and so must --allow-pickle, or they refuse the model.
            frame = pd.DataFrame(rows_of())
            folder = tmp_path / "tmp" / "pickled"
            folder.mkdir()
            joblib.dump(LinearRegression().fit(frame[FEATURES], frame["y"]), folder / "m.joblib")
            _meta(folder, framework="sklearn", features=FEATURES)
            store.models.register("canary-pickled", "sklearn", folder)
            code, out, err = cli(
                "predict", "canary-pickled", "--store", url, "--table", "houses",
                "--output", "house_predictions", "--concurrency", "1", "--allow-pickle",
            )  # fmt: skip
            assert code == 0, err[-2000:]
            texts["cli predict"] = out + err
            written = store.table("house_predictions", columns=["id", "prediction"]).to_arrow()
            predictions = written.to_pandas().sort_values("id")["prediction"]
            np.testing.assert_allclose(predictions, frame["y"], atol=1e-9)

        # Failures: a bad query, a missing table, an unknown database, no server, a bad URL.
        failures = {
            "bad SQL": lambda: store.sql("SELECT nope FROM houses", key="id").count(),
            "missing table": lambda: store.table("no_such_table").count(),
            "unknown database": lambda: pr.connect(url.rsplit("/", 1)[0] + "/no_such_db_x"),
            "no server": lambda: pr.connect(url.replace(":5432/", ":1/").replace(":3306/", ":1/")),
            "bad URL": lambda: pr.connect(url.replace("127.0.0.1:", "127.0.0.1:port")),
            "wrong user": lambda: pr.connect(url.replace(f"//{user}:", "//nobody_x:")),
        }
        for what, fn in failures.items():
            for i, text in enumerate(exception_texts(raised(fn))):
                texts[f"error {what} #{i}"] = text

        # The CLI, a spec whose store URL takes the password from ${PR_CANARY_PASSWORD}, run
        # as a Ray job would run it (so it keeps job records), once good and once failing.
        spec_url = url.replace(CANARY, "${PR_CANARY_PASSWORD}")
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            f"name: canary-cli\nstore: {spec_url}\ntrain: {{table: houses, key: id}}\n"
            "trainer:\n  kind: sklearn\n  estimator: sklearn.linear_model:LinearRegression\n"
            "  features: [x1, x2]\n  label: y\n  num_cpus: 1\n"
        )
        bad_spec = tmp_path / "bad.yaml"
        bad_spec.write_text(spec.read_text().replace("x2]", "no_such_column]"))
        for sid, path in (("pr-canary-good", spec), ("pr-canary-bad", bad_spec)):
            config = json.dumps({"metadata": {"job_submission_id": sid}})
            monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", config)
            code, out, err = cli("train", str(path), "--no-progress")
            assert code == (0 if sid.endswith("good") else 1), err[-2000:]
            texts[f"cli train {sid}"] = out + err
        monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
        for argv in (
            ("models", "list", "--store", url),
            ("models", "list", "--store", url, "--json"),
            ("models", "show", "canary-cli", "--store", url),
            ("jobs", "list", "--store", url),
            ("jobs", "list", "--store", url, "--json"),
            ("jobs", "status", "pr-canary-bad", "--store", url),
            ("models", "show", "no-such-model", "--store", url),
        ):
            code, out, err = cli(*argv)
            texts[f"cli {' '.join(argv[:2])} {argv[2]}"] = out + err
        jobs = JobRecords(store)
        texts["job records"] = repr(jobs.list())
        assert jobs.get("pr-canary-bad").status == "FAILED"
        assert "no_such_column" in (jobs.get("pr-canary-bad").error or "")

        # A record built by hand with a password in every text field is stored masked.
        jobs.create(
            JobRecord(
                submission_id="pr-canary-hand",
                name="canary",
                status="FAILED",
                spec={"store": url, "db_password": CANARY},
                address=f"http://admin:{CANARY}@127.0.0.1:8265",
                error=f"cannot connect to {url}",
            )
        )
        texts["hand-made job record"] = repr(jobs.get("pr-canary-hand"))

        # What Ray would show of a job (its runtime_env): no password; the secret variable
        # the spec names travels apart (tests/test_secrets_jobs.py).
        (tmp_path / "work").mkdir()
        runtime_env = build_runtime_env(load_spec(spec), working_dir=tmp_path / "work")
        assert "env_vars" not in runtime_env
        texts["runtime_env"] = json.dumps(runtime_env, default=str)
        store.close()
        texts.update(table_dumps(admin))

    captured = capfd.readouterr()
    texts["stdout"], texts["stderr"] = captured.out, captured.err
    texts["log records"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    files = files_under(tmp_path, session / "logs")
    assert any(t.startswith("table pinnacle_jobs") for t in texts) and len(files) > 10
    leaks = [place for place, text in texts.items() if CANARY in text]
    leaks += [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    with capfd.disabled():
        print(f"\n{backend}: secret found in {len(leaks)} of {len(texts) + len(files)} places")
    assert leaks == []


def test_mongo_password_is_masked_in_errors_records_and_the_registry(
    mongo_uri, tmp_path, capfd, caplog
):
    caplog.set_level(logging.DEBUG)
    scheme, rest = mongo_uri.split("://", 1)
    with_password = f"{scheme}://bob:{CANARY}@{rest}"  # the stand-in refuses credentials
    texts: dict[str, str] = {}
    failures = {
        "refused": lambda: pr.connect(with_password),
        "no database": lambda: pr.connect(with_password.replace("/pinnacle_test", "/")),
        "no host": lambda: pr.connect(f"mongodb://bob:{CANARY}@/db"),
        "bad option": lambda: pr.connect(with_password + "&serverSelectionTimeoutMS=x"),
    }
    for what, fn in failures.items():
        for i, text in enumerate(exception_texts(raised(fn))):
            texts[f"error {what} #{i}"] = text
    code, out, err = cli("models", "list", "--store", with_password)
    assert code != 0
    texts["cli models list"] = out + err

    store = pr.connect(tmp_path / "local.db")  # records and the registry hold the URL
    folder = tmp_path / "lr"
    save_sklearn(folder, LinearRegression().fit(np.eye(2), [0, 1]), {"features": FEATURES})
    store.models.register(
        "lr", "sklearn", folder, lineage={"source": with_password}, config={"mongo_pw": CANARY}
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: m\nstore: '{with_password}'\ntrain: {{find: reviews}}\n"
        "trainer: {kind: sklearn, estimator: 'sklearn.linear_model:LinearRegression', "
        "features: [a], label: b}\n"
    )
    JobRecords(store).create(
        JobRecord("pr-m", "m", "FAILED", spec=load_spec(spec).masked, error=str(with_password))
    )
    texts["registry"] = repr(store.models.get("lr").lineage) + repr(store.models.get("lr").config)
    texts["job record"] = repr(JobRecords(store).get("pr-m"))
    texts.update(table_dumps(store._engine))
    store.close()
    captured = capfd.readouterr()
    texts["output"] = captured.out + captured.err
    texts["log records"] = "\n".join(r.getMessage() for r in caplog.records)
    assert "bob:***@" in texts["job record"] and "table pinnacle_models" in texts
    leaks = [place for place, text in texts.items() if CANARY in text]
    with capfd.disabled():
        print(f"\nmongodb: secret found in {len(leaks)} of {len(texts)} places")
    assert leaks == []


# -- 2. no code runs on load ----------------------------------------------------------------
class RunsCode:
    """Unpickling this creates ``marker``: what a malicious pickle would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _meta(folder: Path, **meta) -> None:
    (folder / "pinnacle.json").write_text(json.dumps(meta))


def _evil_folder(tmp_path: Path, framework: str, filename: str, marker: Path) -> Path:
    folder = tmp_path / f"evil-{framework}-{filename}"
    folder.mkdir()
    (folder / filename).write_bytes(pickle.dumps(RunsCode(marker)))
    if framework == "torch":
        save_torch(tmp_path / "arch", torch.nn.Linear(2, 1), features=FEATURES)
        (folder / "pinnacle.json").write_bytes((tmp_path / "arch" / "pinnacle.json").read_bytes())
    elif framework == "huggingface":
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
        _meta(folder, framework=framework, task="sequence-classification")
    else:
        _meta(folder, framework=framework, features=FEATURES)
    return folder


@pytest.fixture
def local_registry(tmp_path) -> Iterator[pr.ModelRegistry]:
    store = pr.connect(tmp_path / "local.db")
    yield pr.ModelRegistry(store, artifact_root=tmp_path / "art")
    store.close()


@pytest.mark.parametrize(
    "framework, filename",
    [
        ("sklearn", "model.pkl"),
        ("sklearn", "model.joblib"),
        ("xgboost", "model.pkl"),
        ("torch", "model.pt"),
        ("torch", "model.pth"),
        ("torch", "model.bin"),
        ("huggingface", "pytorch_model.bin"),
    ],
)
def test_load_refuses_a_pickle_and_runs_none_of_it_when_pickles_are_not_allowed(
    local_registry, tmp_path, framework, filename
):
    marker = tmp_path / "code-ran"
    local_registry.register("evil", framework, _evil_folder(tmp_path, framework, filename, marker))
    with pytest.raises(pr.UnsafeArtifact, match=rf"{filename}.*pickle.*allow_pickle=True"):
        local_registry.load("evil")
    assert not marker.exists()


def test_torch_weights_load_only_as_tensors_when_pickles_are_allowed(local_registry, tmp_path):
    marker = tmp_path / "code-ran"
    local_registry.register("evil", "torch", _evil_folder(tmp_path, "torch", "model.pt", marker))
    with pytest.raises(pr.UnsafeArtifact, match="weights_only=True"):
        local_registry.load("evil", allow_pickle=True)
    assert not marker.exists()

    module = TwoLayer(2, hidden=3)
    folder = save_torch(tmp_path / "pt", module, features=FEATURES)
    torch.save(module.state_dict(), folder / "model.pt")
    (folder / "model.safetensors").unlink()
    local_registry.register("pt", "torch", folder)
    frame = pd.DataFrame(rows_of(n=4))
    expected = module(torch.tensor(frame[FEATURES].to_numpy(), dtype=torch.float32))
    got = local_registry.load("pt", allow_pickle=True, trusted_modules=[TwoLayer]).predict(frame)
    np.testing.assert_allclose(got, expected.detach().numpy().ravel(), rtol=1e-6)


def test_pickled_estimators_and_boosters_load_when_pickles_are_allowed(local_registry, tmp_path):
    import xgboost as xgb

    frame = pd.DataFrame(rows_of(n=20))
    x, y = frame[FEATURES].to_numpy(), frame["y"].to_numpy()
    sk = tmp_path / "sk"
    sk.mkdir()
    joblib.dump(LinearRegression().fit(x, y), sk / "model.joblib")
    _meta(sk, framework="sklearn", features=FEATURES)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, y, feature_names=FEATURES), 3)
    xg = tmp_path / "xg"
    xg.mkdir()
    joblib.dump(booster, xg / "model.pkl")
    _meta(xg, framework="xgboost", features=FEATURES, objective="reg:squarederror")
    local_registry.register("sk", "sklearn", sk)
    local_registry.register("xg", "xgboost", xg)
    np.testing.assert_allclose(
        local_registry.load("sk", allow_pickle=True).predict(frame), y, atol=1e-9
    )
    np.testing.assert_allclose(
        local_registry.load("xg", allow_pickle=True).predict(frame),
        booster.predict(xgb.DMatrix(x, feature_names=FEATURES)),
    )


def test_skops_types_that_could_run_code_need_allow_pickle(local_registry, tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    # numpy.load as a transform: a function that reads files, not a class or a ufunc
    folder = tmp_path / "np-load"
    save_sklearn(folder, FunctionTransformer(np.load), {"features": FEATURES})
    local_registry.register("fn", "sklearn", folder)
    with pytest.raises(pr.UnsafeArtifact, match=r"\['numpy.load'\].*allow_pickle=True"):
        local_registry.load("fn")
    assert local_registry.load("fn", allow_pickle=True).estimator.func is np.load


def test_hugging_face_bin_weights_load_only_when_pickles_are_allowed(tmp_path):
    from safetensors.torch import load_file
    from text_data import tiny_bert

    from pinnacle_ray.registry.huggingface_flavor import load_pretrained

    folder = tiny_bert(tmp_path / "bert", with_tokenizer=False)
    state = load_file(folder / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(pr.UnsafeArtifact, match=r"pytorch_model\.bin"):
        load_pretrained(folder)
    model = load_pretrained(folder, allow_pickle=True)
    name = next(iter(k for k in model.state_dict() if k.endswith("word_embeddings.weight")))
    torch.testing.assert_close(model.state_dict()[name], state["embeddings.word_embeddings.weight"])
