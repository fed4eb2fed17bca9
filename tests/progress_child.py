"""A driver the progress tests run in a pseudo-terminal (its stderr is a TTY there).

``python progress_child.py RAY_ADDRESS STORE_URL TABLE``: on the test session's Ray, a
managed torch fit (3 epochs), a scikit-learn fit, a prediction with it and a 2-trial
sweep, all with ``progress`` left at its default; prints ``done`` on stdout at the end.
"""

from __future__ import annotations

import sys


def main(ray_address: str, url: str, table: str) -> None:
    import ray
    import torch
    from sklearn.linear_model import Ridge

    import pinnacle_ray as pr

    ray.init(address=ray_address, logging_level="ERROR")
    store = pr.connect(url)
    query = store.table(table, key="id")
    features = ["a", "b"]
    pr.TorchTrainer(
        model=torch.nn.Linear(2, 1),
        features=features,
        label="y",
        epochs=3,
        batch_size=64,
        name="torchy",
    ).fit(train=query)
    sk = pr.SklearnTrainer(Ridge(), features=features, label="y", name="skl")
    sk.fit(train=query)
    pr.predict("skl", query, output="skl_predictions")
    pr.sweep(
        sk,
        {"estimator__alpha": ray.tune.grid_search([0.1, 10.0])},
        query,
        metric="valid/rmse",
        mode="min",
        name="swp",
        register=False,
    )
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
