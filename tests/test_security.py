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
import os
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
    monkeypatch.setenv("PINNACLE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("PINNACLE_CACHE_DIR", str(tmp_path / "cache"))
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
            predicted = pr.predict("canary-lr", query, output="house_predictions", concurrency=1)
            texts["predict result"] = repr(predicted)

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

        # What a Ray job would get: the entrypoint and working dir carry no password; the
        # variable the spec names is passed through (the job needs it to connect).
        (tmp_path / "work").mkdir()
        runtime_env = build_runtime_env(load_spec(spec), working_dir=tmp_path / "work")
        env_vars = runtime_env.pop("env_vars")
        assert env_vars == {"PR_CANARY_PASSWORD": CANARY}
        texts["runtime_env (but the variable named)"] = json.dumps(runtime_env, default=str)
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
