"""A registered torch architecture is imported only from modules the loading user trusts.

The registry record names ``trust_helpers:Marked``, as anyone who can write the registry
table could; importing ``trust_helpers`` leaves a marker file. Untrusted, the load is refused
before the import (no marker); trusted by ``trusted_modules=`` (a name, the class or the
module) or ``PINNACLE_RAY_TRUSTED_MODULES``, it loads.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pinnacle_ray as pr
from pinnacle_ray.registry.torch_flavor import save_model
from pinnacle_ray.registry.trust import TRUSTED_MODULES_ENV

FEATURES = ["a", "b", "c"]
MODULE = "trust_helpers"


class _Stub(nn.Module):
    """Same weights layout as trust_helpers.Marked, defined here so nothing imports it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def _frame(n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    frame.insert(0, "id", np.arange(n, dtype=np.int64))
    return frame


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    """Where an import of trust_helpers in this process would leave its mark; the module is
    dropped from sys.modules first so that an import would really run it."""
    path = tmp_path / "imported"
    monkeypatch.setenv("PINNACLE_TEST_IMPORT_MARKER", str(path))
    monkeypatch.delenv(TRUSTED_MODULES_ENV, raising=False)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return path


@pytest.fixture
def registered(tmp_path):
    """A store whose model 'marked' names trust_helpers:Marked in its registry record, and
    the predictions the stored weights give."""
    torch.manual_seed(0)
    stub = _Stub()
    folder = save_model(tmp_path / "marked", stub, features=FEATURES)
    meta_path = folder / "pinnacle.json"
    meta = json.loads(meta_path.read_text())
    meta["architecture"] = {"kind": "class", "class": f"{MODULE}:Marked", "args": {"n_in": 3}}
    meta_path.write_text(json.dumps(meta))
    store = pr.connect(tmp_path / "shop.db")
    store.models.register("marked", "torch", folder)
    frame = _frame()
    with torch.no_grad():
        expected = stub(torch.tensor(frame[FEATURES].to_numpy(), dtype=torch.float32))
    yield store, expected.numpy().ravel()
    store.close()


def test_load_refuses_an_untrusted_module_before_importing_it(registered, marker):
    store, _ = registered
    started = time.perf_counter()
    with pytest.raises(pr.UnsafeArtifact) as info:
        store.models.load("marked")
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "trust_helpers:Marked" in message
    assert "trusted_modules=['trust_helpers']" in message and TRUSTED_MODULES_ENV in message
    assert not marker.exists() and MODULE not in sys.modules


def test_load_refuses_when_only_another_module_is_trusted(registered, marker):
    store, _ = registered
    with pytest.raises(pr.UnsafeArtifact, match="trust_helpers"):
        store.models.load("marked", trusted_modules=["trust", "trust_helpers_x", "other"])
    assert not marker.exists() and MODULE not in sys.modules


@pytest.mark.parametrize("how", ["name", "class path", "module object", "environment"])
def test_load_imports_the_module_when_it_is_trusted(registered, marker, monkeypatch, how):
    store, expected = registered
    kwargs = {}
    if how == "name":
        kwargs["trusted_modules"] = [MODULE]
    elif how == "class path":
        kwargs["trusted_modules"] = f"{MODULE}:Marked"
    elif how == "module object":
        import importlib

        kwargs["trusted_modules"] = [importlib.import_module(MODULE)]
    else:
        monkeypatch.setenv(TRUSTED_MODULES_ENV, f"somepkg, {MODULE}")
    model = store.models.load("marked", **kwargs)
    assert type(model.module).__module__ == MODULE and type(model.module).__name__ == "Marked"
    assert marker.exists()
    np.testing.assert_allclose(model.predict(_frame()), expected, rtol=1e-6)


def test_a_template_model_needs_no_trust(registered, marker):
    store, expected = registered
    model = store.models.load("marked", model=_Stub())
    np.testing.assert_allclose(model.predict(_frame()), expected, rtol=1e-6)
    assert not marker.exists() and MODULE not in sys.modules


def test_trusted_modules_refuses_a_value_that_names_no_module(registered):
    store, _ = registered
    with pytest.raises(pr.ConfigError, match=r"trusted_modules holds 3"):
        store.models.load("marked", trusted_modules=[3])


@pytest.mark.timeout(300)
def test_predict_refuses_an_untrusted_module_before_any_actor_and_loads_a_trusted_one(
    registered, marker
):
    store, expected = registered
    store.write("pts", _frame(), key="id")
    started = time.perf_counter()
    with pytest.raises(pr.UnsafeArtifact, match="trusted_modules"):
        pr.predict("marked", store.table("pts"), output="preds")
    assert time.perf_counter() - started < 10
    assert not marker.exists() and MODULE not in sys.modules
    assert "preds" not in store.tables()

    from trust_helpers import Marked

    result = pr.predict("marked", store.table("pts"), output="preds", trusted_modules=[Marked])
    assert result.rows == 8
    got = store.table("preds").to_arrow().to_pandas().sort_values("id")["prediction"]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-5)
