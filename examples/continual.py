"""Continued training on new rows: train a booster, insert rows, continue on the new rows only.

``q.since("demand-xgb")`` reads only the rows whose key is past what the latest version was
trained on (its lineage records the key range), and ``fit(resume_from="demand-xgb")`` adds
boosting rounds to that version. The new version records its parent and its own key range,
so the next call continues from there.

Run it with ``.venv/bin/python examples/continual.py`` (after ``./dev quickstart`` or ``./dev
test`` set up ``.venv``). No server, no network: the rows are generated, Ray starts locally.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import pinnacle_ray as pr
from pinnacle_ray.datastore import SqlDatastore

FEATURES = ["price", "promo", "temperature"]


def new_rows(start: int, count: int, drift: float = 0.0) -> pd.DataFrame:
    """``count`` days of demand with ids from ``start`` (an increasing key: new rows get
    larger ids, which is what since() relies on); ``drift`` shifts the promotion effect."""
    rng = np.random.default_rng(start)
    price = rng.uniform(1, 10, count)
    promo = rng.integers(0, 2, count).astype(np.float64)
    temperature = rng.normal(15, 8, count)
    demand = 100 - 6 * price + (20 + drift) * promo + 0.8 * temperature + rng.normal(0, 3, count)
    return pd.DataFrame(
        {
            "id": np.arange(start, start + count, dtype=np.int64),
            "price": price,
            "promo": promo,
            "temperature": temperature,
            "demand": demand,
        }
    )


def describe(store: SqlDatastore, name: str, version: int) -> str:
    v = store.models.get(name, version=version)
    train = v.lineage["train"]
    parent = f", parent v{v.parent_version}" if v.parent_version else ""
    return (
        f"v{v.version}: trained on ids {train['key_min']}..{train['key_max']} "
        f"({train['rows']} rows){parent}, {v.config['total_rounds']} rounds, "
        f"valid RMSE {v.metrics['valid/rmse']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="continual.db", help="SQLite file to create")
    args = parser.parse_args()

    path = Path(args.db)
    path.unlink(missing_ok=True)
    store = pr.connect(path)
    store.write("demand", new_rows(0, 5_000), key="id")
    query = store.table("demand", key="id")

    trainer = pr.XGBoostTrainer(
        params={"objective": "reg:squarederror", "eta": 0.2, "max_depth": 4},
        features=FEATURES,
        label="demand",
        num_boost_round=40,
        name="demand-xgb",
    )
    started = time.perf_counter()
    first = trainer.fit(train=query)
    print(f"trained in {time.perf_counter() - started:.1f} s")
    print(" ", describe(store, "demand-xgb", first.version))

    # A week later: new rows arrive, and promotions now lift demand a little more.
    store.write("demand", new_rows(5_000, 2_000, drift=5.0), key="id")
    new = query.since("demand-xgb")
    print(f"\n{query.count():,} rows in the table, {new.count():,} past the watermark: {new!r}")

    started = time.perf_counter()
    second = trainer.fit(train=new, resume_from="demand-xgb")
    print(f"continued on the new rows only in {time.perf_counter() - started:.1f} s")

    print("\nversions of demand-xgb (both stay loadable):")
    for version in (first.version, second.version):
        print(" ", describe(store, "demand-xgb", version))

    latest = new_rows(7_000, 500, drift=5.0)  # what comes next, seen by neither version
    truth = latest["demand"].to_numpy()
    print("\nRMSE on the next 500 rows:")
    for version in (first.version, second.version):
        model = store.models.load("demand-xgb", version=version)
        rmse = float(np.sqrt(np.mean((model.predict(latest[FEATURES]) - truth) ** 2)))
        print(f"  v{version}: {rmse:.2f}")


if __name__ == "__main__":
    main()
