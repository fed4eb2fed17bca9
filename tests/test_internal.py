"""The package's private helpers: the one secret masker, the one UTC helper, and the one
module that names every environment variable (with the old names still read for a release)."""

from __future__ import annotations

import ast
import datetime as dt
import re
import warnings
from pathlib import Path

import pytest
import sqlalchemy as sa

import pinnacle_ray
from pinnacle_ray._internal import constants
from pinnacle_ray._internal.clock import as_utc, utc_now
from pinnacle_ray._internal.secrets import is_secret_name, is_secret_variable, mask

pytestmark = pytest.mark.unit

PACKAGE = Path(pinnacle_ray.__file__).parent


# --- the masker ---------------------------------------------------------------------------


def test_mask_hides_url_password_when_given_text_or_a_sqlalchemy_url():
    text = "cannot reach postgresql+psycopg://ann:s3cr%40t@db:5432/shop (timeout)"
    assert mask(text) == "cannot reach postgresql+psycopg://ann:***@db:5432/shop (timeout)"
    url = sa.engine.make_url("mysql+pymysql://bob:hunter2@db/shop")
    assert mask(url) == "mysql+pymysql://bob:***@db/shop"
    assert mask("mongodb://db:27017/shop") == "mongodb://db:27017/shop"  # nothing to hide


def test_mask_hides_password_settings_of_connection_strings():
    assert mask("host=db password='a b' user=x") == "host=db password=*** user=x"
    assert mask("Server=db;PWD=hunter2;UID=x") == "Server=db;PWD=***;UID=x"


def test_mask_replaces_given_literal_secrets_as_written_and_percent_encoded():
    text = "auth failed for p@ss w0rd; url had p%40ss%20w0rd and p%40ss+w0rd"
    assert mask(text, ["p@ss w0rd", None, ""]) == "auth failed for ***; url had *** and ***"


def test_mask_hides_secret_named_keys_in_nested_mappings_and_lists():
    config = {
        "db_password": "hunter2",
        "hf_token": "hf_abc",
        "clientSecret": "xyz",
        "tokenizer": "bert",  # a part of a word, not a secret
        "max_tokens": 128,
        "nested": [{"api_key": "k", "url": "postgresql://u:pw@h/d"}, ("a", 1)],
        "empty_password": "",
    }
    assert mask(config) == {
        "db_password": "***",
        "hf_token": "***",
        "clientSecret": "***",
        "tokenizer": "bert",
        "max_tokens": 128,
        "nested": [{"api_key": "***", "url": "postgresql://u:***@h/d"}, ["a", 1]],
        "empty_password": "",
    }
    assert mask(3.5) == 3.5 and mask(None) is None


def test_secret_names_of_keys_are_whole_words_and_of_variables_any_part():
    assert is_secret_name("mongo_pw") and is_secret_name("dbPassword")
    assert not is_secret_name("tokenizer") and not is_secret_name("max_tokens")
    assert is_secret_variable("AWS_SECRET_ACCESS_KEY") and is_secret_variable("GITHUBTOKEN")
    assert is_secret_variable("SSH_PRIVATE_KEY") and not is_secret_variable("PINNACLE_RAY_STORE")


# --- the clock ----------------------------------------------------------------------------


def test_as_utc_gives_naive_database_times_the_utc_zone_and_keeps_aware_ones():
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    assert as_utc(naive) == naive.replace(tzinfo=dt.timezone.utc)
    cet = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert as_utc(cet) is cet
    assert as_utc(None) is None
    assert utc_now().tzinfo is dt.timezone.utc


# --- the environment ----------------------------------------------------------------------


def test_env_text_reads_the_new_name_without_warning(monkeypatch):
    monkeypatch.setenv("PINNACLE_RAY_STORE", " sqlite:///a.db ")
    monkeypatch.setenv("PINNACLE_STORE", "sqlite:///old.db")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert constants.env_text(constants.STORE_ENV) == "sqlite:///a.db"


@pytest.mark.parametrize("old, new", sorted(constants.RENAMED.items()))
def test_env_text_reads_an_old_name_with_a_future_warning_naming_the_new_one(monkeypatch, old, new):
    monkeypatch.delenv(new, raising=False)
    monkeypatch.setenv(old, "postgresql://u:hunter2@db/x")
    with pytest.warns(FutureWarning, match=f"{old} is renamed {new}; set {new}") as seen:
        assert constants.env_text(new) == "postgresql://u:hunter2@db/x"
    assert "hunter2" not in str(seen[0].message)


def test_env_getters_give_their_defaults_when_nothing_is_set(monkeypatch):
    for name in (*constants.RENAMED, *constants.RENAMED.values(), constants.VERBOSE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(constants.TRUSTED_MODULES_ENV, raising=False)
    assert constants.run_storage_mode() == "auto"
    assert constants.sql_reader() == "" and constants.cache_dir() == ""
    assert constants.verbose() is False and constants.trusted_module_names() == []
    monkeypatch.setenv(constants.VERBOSE_ENV, "0")
    assert constants.verbose() is False
    monkeypatch.setenv(constants.TRUSTED_MODULES_ENV, " a.b, ,c ")
    assert constants.trusted_module_names() == ["a.b", "c"]


def test_our_variables_share_one_prefix():
    ours = [v for k, v in vars(constants).items() if k.endswith("_ENV") and "PINNACLE" in v]
    assert ours and all(v.startswith("PINNACLE_RAY_") for v in ours)


_ENV_NAME = re.compile(r"(PINNACLE|RAY|HF)_[A-Za-z_]+")


def test_no_module_but_constants_spells_an_environment_variable_name():
    """Every variable the package reads or sets is named in _internal/constants.py: a name
    spelled as a string anywhere else (docstrings aside) is a setting read behind its back."""
    named = {v for k, v in vars(constants).items() if k.endswith("_ENV")}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "constants.py" and path.parent.name == "_internal":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and _ENV_NAME.fullmatch(node.value)
                and node.value not in named
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value}")
    assert found == [], "name these in pinnacle_ray/_internal/constants.py: " + ", ".join(found)
