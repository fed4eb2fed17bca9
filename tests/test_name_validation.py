"""Names a user gives (model, handle, sweep, run, job names; a trainer's ``name=``,
``fit(register=...)``, ``pr.predict``'s ``output=``, ``store.write``'s table) are refused at the
call, in under a second, with one rule and one message, and nothing appears on disk.

Every bad name carries this module's unique marker, so the scan of ``~``, ``/tmp``, Ray's run
folder and the store's roots looks for entries holding it (other engineers' tests run on the
same machine at the same time): before the fix, ``name="../x"`` made Ray Train create
``~/x-<stamp>-...`` and ``/tmp/x-<stamp>-...`` about 10 s into a fit.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ray.train import RunConfig
from sklearn.linear_model import Ridge

import pinnacle_ray as pr
from pinnacle_ray._internal.names import ascii_label, validate_identifier, validate_name
from pinnacle_ray.cli import main

MARK = f"r1mark{uuid.uuid4().hex[:8]}"
# Each refused at every entry point; the marker makes whatever they might create findable.
BAD_NAMES = [
    f"../{MARK}",
    f"../../{MARK}",
    f"/tmp/{MARK}",
    f"{os.path.expanduser('~')}/{MARK}",
    f"{MARK}/b",
    f"a/../../{MARK}",
    f"~{MARK}",
    f"~/{MARK}",
    f"..\\{MARK}",
    f"{MARK}\\x",
    f"C:{MARK}",
    f"{MARK}\x00x",
    f".{MARK}",
    f"-{MARK}",
    f" {MARK}",
    f"{MARK} x",
    f"{MARK}\n",
    MARK * 20,  # 280 characters
    "表" * 70 + MARK,  # 84 characters but 224 bytes in UTF-8: over the byte limit
    f"\uff46{MARK}",  # fullwidth f: not NFKC, would read as another name
    "..",
    ".",
    "",
]
# Fine: letters of any script, digits, '-', '_', '.'.
GOOD_NAMES = ["ü", "表", "größe-表", "mlp_v2", "a.b", "Ωmega-2", "x" * 128, "नमस्ते"]
LIMIT_S = 1.0
# A Ray Train run folder made of an empty or dot name: "-<stamp>-", ".-<stamp>-", "..-<stamp>-".
DOT_RUN = re.compile(r"^\.{0,2}-\d{8}-\d{6}-[0-9a-f]{6}$")


def _listing(roots: list[Path], depth: int) -> set[str]:
    """Paths under ``roots`` (to ``depth`` levels) holding the marker or named like a run of an
    empty or dot name."""
    found: set[str] = set()

    def walk(folder: Path, left: int) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if MARK in entry.name or DOT_RUN.match(entry.name):
                found.add(entry.path)
            if left > 0 and entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), left - 1)

    for root in roots:
        walk(root, depth)
    return found


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A SQLite store with a small table and one registered model, and the folders to scan."""
    folder = tmp_path_factory.mktemp("names")
    store = pr.connect(folder / "names.db")
    rows = [{"id": i, "x": float(i), "y": 2.0 * i} for i in range(30)]
    store.write("rows", rows, key="id")
    q = store.table("rows", key="id")
    trainer = pr.SklearnTrainer(Ridge(), features=["x"], label="y", name="ridge")
    trainer.fit(q)
    # What could be imported lazily on a first call is imported here, not in a timed call.
    _ = pr.sweep, pr.predict
    home = Path(os.path.expanduser("~"))
    roots = [home, Path("/tmp"), home / "ray_results", folder, folder.parent]
    before = _listing(roots, 3)
    yield {"store": store, "query": q, "trainer": trainer, "folder": folder, "roots": roots,
           "before": before}  # fmt: skip
    store.close()


def refused_fast(call: Callable[[], Any], error: type[Exception] = pr.InvalidName) -> str:
    """Run ``call``; it must raise ``error`` within ``LIMIT_S``. The message."""
    started = time.perf_counter()
    with pytest.raises(error) as caught:
        call()
    seconds = time.perf_counter() - started
    assert seconds < LIMIT_S, f"refused after {seconds:.2f} s"
    return str(caught.value)


def _rule_message(bad: str, what: str = "model name") -> str:
    with pytest.raises(pr.InvalidName) as caught:
        validate_name(bad, what)
    return str(caught.value)


# -- the rule itself ---------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_the_rule_refuses_a_name_that_could_leave_a_folder_or_look_like_another(bad):
    message = _rule_message(bad)
    assert "is not allowed" in message and "use letters (any script)" in message
    assert isinstance(pr.InvalidName("x"), pr.ConfigError)


@pytest.mark.unit
@pytest.mark.parametrize("good", GOOD_NAMES)
def test_the_rule_accepts_letters_of_any_script_digits_and_dashes(good):
    assert validate_name(good) == good
    trainer = pr.SklearnTrainer(Ridge(), features=["x"], label="y", name=good)
    assert trainer.name == good


@pytest.mark.unit
def test_a_run_name_for_ray_is_ascii_and_keeps_names_apart():
    assert ascii_label("house-price") == "house-price"
    label = ascii_label("größe-表")
    assert label.isascii() and label.startswith("gro")
    assert ascii_label("表") != ascii_label("本")
    with pytest.raises(pr.InvalidName, match="ASCII"):
        validate_name("表", "run name", ascii_only=True)


@pytest.mark.unit
def test_a_default_name_from_a_function_or_folder_is_made_safe():
    trainer = pr.TorchTrainer(lambda: None, name=None)
    assert validate_name(trainer.name) == "lambda"


# -- every entry point ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_a_trainer_refuses_a_bad_name_when_it_is_built(setup, bad):
    message = refused_fast(lambda: pr.SklearnTrainer(Ridge(), features=["x"], label="y", name=bad))
    assert message == _rule_message(bad)
    refused_fast(lambda: pr.XGBoostTrainer(params={}, features=["x"], label="y", name=bad))
    refused_fast(lambda: pr.TorchTrainer(lambda: None, name=bad))


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_fit_refuses_a_bad_register_name_before_training(setup, bad):
    trainer = setup["trainer"]
    message = refused_fast(lambda: trainer.fit(setup["query"], register=bad))
    assert message == _rule_message(bad)


# RunConfig(name="") is Ray's own "no name" (it makes one up), not a bad name.
@pytest.mark.parametrize("bad", [*BAD_NAMES[:6], "..", "."])
def test_fit_refuses_a_name_set_after_building_or_a_bad_run_name(setup, bad):
    renamed = pr.SklearnTrainer(Ridge(), features=["x"], label="y", name="ridge")
    renamed.name = bad
    refused_fast(lambda: renamed.fit(setup["query"]))
    run = pr.SklearnTrainer(
        Ridge(), features=["x"], label="y", name="ridge", run_config=RunConfig(name=bad)
    )
    assert "run name" in refused_fast(lambda: run.fit(setup["query"]))


@pytest.mark.parametrize("bad", BAD_NAMES[:8])
def test_fit_refuses_a_bad_resume_from_name_or_handle(setup, bad):
    trainer, q = setup["trainer"], setup["query"]
    assert refused_fast(lambda: trainer.fit(q, resume_from=bad)) == _rule_message(bad)
    refused_fast(lambda: trainer.fit(q, resume_from="ridge", handle=bad))


def test_fit_refuses_a_register_that_is_neither_bool_nor_name(setup):
    refused_fast(lambda: setup["trainer"].fit(setup["query"], register=3), pr.ConfigError)


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_sweep_refuses_a_bad_sweep_name_or_trainer_name(setup, bad):
    trainer, q = setup["trainer"], setup["query"]
    space = {"estimator__alpha": [0.1, 1.0]}

    def sweep(t: Any, name: str | None) -> Any:
        return pr.sweep(t, space, train=q, metric="valid/rmse", name=name)

    assert "sweep name" in refused_fast(lambda: sweep(trainer, bad))
    renamed = pr.SklearnTrainer(Ridge(), features=["x"], label="y", name="ridge")
    renamed.name = bad
    refused_fast(lambda: sweep(renamed, None))


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_predict_refuses_a_bad_model_name_or_handle(setup, bad):
    q = setup["query"]
    message = refused_fast(lambda: pr.predict(bad, q, output="preds"))
    assert message == _rule_message(bad)
    refused_fast(lambda: pr.predict("ridge", q, output="preds", handle=bad))


@pytest.mark.parametrize("bad", ["", " ", "a\x00b", "x" * 1025, " lead", "trail "])
def test_predict_and_write_refuse_a_bad_output_table(setup, bad):
    store, q = setup["store"], setup["query"]
    tables = store.tables()
    message = refused_fast(lambda: pr.predict("ridge", q, output=bad), pr.InvalidIdentifier)
    assert "output table name" in message
    refused_fast(lambda: store.write(bad, [{"id": 1}], key="id"), pr.InvalidIdentifier)
    assert store.tables() == tables


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_submit_refuses_a_bad_register_name_before_anything_is_submitted(setup, bad):
    store = setup["store"]
    jobs = store.jobs.list()
    refused_fast(lambda: setup["trainer"].submit(train=setup["query"], register=bad))
    assert store.jobs.list() == jobs


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_the_registry_refuses_a_bad_name_or_handle(setup, bad):
    models = setup["store"].models
    message = refused_fast(lambda: models.get(bad))
    assert message == _rule_message(bad)
    refused_fast(lambda: models.load(bad))
    refused_fast(lambda: models.promote(bad))
    refused_fast(lambda: models.get("ridge", handle=bad))
    refused_fast(lambda: models.load("ridge", handle=bad))
    refused_fast(lambda: models.promote("ridge", handle=bad))


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_the_job_catalog_refuses_a_bad_job_id_or_model_name(setup, bad):
    jobs = setup["store"].jobs
    assert "job id" in refused_fast(lambda: jobs.get(bad))
    assert refused_fast(lambda: jobs.list(bad)) == _rule_message(bad)


def _cli(*argv: str) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - started


@pytest.mark.parametrize("bad", [b for b in BAD_NAMES if b and not b.startswith("-")])
def test_the_cli_refuses_a_bad_name_before_it_connects(setup, bad):
    # A store file that does not exist yet: connecting would create it.
    url = f"sqlite:///{setup['folder'] / (MARK + '.db')}"
    commands = [
        ["models", "show", bad, "--store", url],
        ["models", "promote", bad, "--store", url],
        ["models", "promote", "ridge", "--handle", bad, "--store", url],
        ["models", "rm", bad, "--yes", "--store", url],
        ["predict", bad, "--table", "rows", "--output", "p", "--store", url],
        ["jobs", "status", bad, "--store", url],
    ]
    for argv in commands:
        code, _out, err, seconds = _cli(*argv)
        assert code == 1, (argv, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert "is not allowed" in lines[0]
        assert seconds < LIMIT_S, f"{argv[:2]} refused after {seconds:.2f} s"
    assert not (setup["folder"] / (MARK + ".db")).exists()


def test_a_non_ascii_model_name_is_used_as_given(setup):
    """A unicode name passes every check and reaches the registry as written."""
    q = setup["query"]
    result = pr.SklearnTrainer(Ridge(), features=["x"], label="y", name="größe-表").fit(q)
    assert result.name == "größe-表" and result.version == 1
    assert [v.name for v in setup["store"].models.list("größe-表")] == ["größe-表"]
    assert setup["store"].models.get("größe-表", handle="latest").name == "größe-表"
    assert validate_identifier("größe 表", "table name", "postgresql") == "größe 表"


def test_no_file_or_folder_appeared_anywhere_after_every_refusal(setup):
    """Runs last in the module: ~, /tmp, Ray's run folder and the store's roots hold no entry
    named by a bad name (its marker) or by an empty or dot name's run folder."""
    appeared = _listing(setup["roots"], 3) - setup["before"]
    assert appeared == set(), f"files or folders appeared: {sorted(appeared)}"
