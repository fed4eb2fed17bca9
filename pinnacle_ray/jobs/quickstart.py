"""``pinnacle-ray quickstart``: a demo table in an SQLite file and a spec that trains on it.

The data is scikit-learn's bundled diabetes data set (no network); the spec is the same kind
of file a user writes, so the quickstart runs the same code path as ``pinnacle-ray train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SPEC", "mlp", "write_quickstart"]

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]

SPEC = """\
# A run spec: what `pinnacle-ray train quickstart.yaml` (or `submit`) runs.
name: quickstart-mlp
store: ${{PINNACLE_RAY_QUICKSTART_DB:-sqlite:///{db}}}
train:
  table: patients
  where: {{split: train}}
valid:
  table: patients
  where: {{split: valid}}
trainer:
  kind: torch                 # the managed loop: no training code to write
  model: pinnacle_ray.jobs.quickstart:mlp
  model_args: {{in_features: 10, hidden: 32}}
  objective: mse
  features: [{features}]
  label: progression
  optimizer_kwargs: {{lr: 0.5}}
  batch_size: 32
  epochs: {epochs}
  no_improve_then_stop: 5
  listen: valid/loss
scaling:
  num_workers: 2
"""


def mlp(in_features: int, hidden: int = 32, out_features: int = 1) -> Any:
    """A two-layer perceptron (``nn.Sequential``, rebuilt by the registry without code)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, out_features)
    )


def write_quickstart(folder: Path, epochs: int = 30) -> tuple[Path, int]:
    """Write table ``patients`` into ``folder/quickstart.db`` and ``folder/quickstart.yaml``;
    the spec's path and the rows written."""
    import numpy as np

    import pinnacle_ray as pr

    from .._internal.extras import needs_extra

    # The demo trains a torch model on scikit-learn's bundled data: both extras, named at once.
    with needs_extra("torch,sklearn", "pinnacle-ray quickstart"):
        import torch  # noqa: F401
        from sklearn.datasets import load_diabetes

    folder.mkdir(parents=True, exist_ok=True)
    db = (folder / "quickstart.db").resolve()
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    frame["split"] = np.where(frame["id"] % 5 == 0, "valid", "train")
    store = pr.connect(db)
    try:
        rows = store.write("patients", frame, key="id")
    finally:
        store.close()
    spec = folder / "quickstart.yaml"
    spec.write_text(SPEC.format(db=db, features=", ".join(FEATURES), epochs=epochs))
    return spec, rows
