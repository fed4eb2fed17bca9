"""Product reviews in MongoDB: nested documents in, a trained model registered in the same
database, and its predictions written back into a collection.

Run it with ``.venv/bin/python examples/mongo_reviews.py --uri mongodb://host:27017/shop``
against a MongoDB server. Without ``--uri`` (or ``PINNACLE_RAY_MONGO_URI``) it starts the test
stand-in (a MongoDB wire-protocol server over ``mongomock`` on a localhost port, from the
``dev`` extra that ``./dev test`` installs), so it runs on a machine with no server at all;
Ray's read tasks reach either one over the network exactly the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import pinnacle_ray as pr

FEATURES = ["product.price", "user.age", "user.reviews_written", "text_length", "helpful_votes"]


@contextlib.contextmanager
def mongo_url(uri: str | None) -> Iterator[str]:
    """``uri``, or the URL of a stand-in server that lives as long as the block."""
    if uri:
        yield uri
        return
    from pinnacle_ray.testing.mongo import MongoStandIn

    with MongoStandIn() as server:
        print(f"no --uri given: using the MongoDB stand-in at {server.host}:{server.port}")
        yield server.uri("shop")


def reviews(n: int, seed: int = 0) -> list[dict]:
    """``n`` review documents with nested product and user fields; 'recommended' follows
    from them (plus noise), so there is something to learn."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    docs = []
    for i in range(n):
        price = float(np.round(rng.lognormal(3.0, 0.8), 2))
        age = int(rng.integers(18, 80))
        written = int(rng.poisson(5))
        length = int(rng.integers(20, 2000))
        votes = int(rng.poisson(3))
        score = 0.002 * length - 0.02 * price + 0.3 * votes - 0.03 * abs(age - 40) + rng.normal()
        docs.append(
            {
                "review_id": i,
                "product": {"price": price, "category": ["books", "garden", "toys"][i % 3]},
                "user": {"age": age, "reviews_written": written},
                "text_length": length,
                "helpful_votes": votes,
                "tags": ["verified"] if i % 4 else [],
                "created": start + dt.timedelta(minutes=17 * i),
                "split": "valid" if i % 5 == 0 else "train",
                "recommended": int(score > 0.5),
            }
        )
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=os.environ.get("PINNACLE_RAY_MONGO_URI"))
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()

    with mongo_url(args.uri) as url:
        store = pr.connect(url)
        for name in ("reviews", "review_predictions"):
            store.drop(name)
        store.write("reviews", reviews(args.rows), key="review_id")

        # Dotted paths read nested fields as columns; the filter is any MongoDB query.
        columns = ["review_id", *FEATURES, "recommended"]
        train = store.find("reviews", filter={"split": "train"}, projection=columns)
        valid = store.find("reviews", filter={"split": "valid"}, projection=columns)
        print(f"collection 'reviews' in {store.url}: {train.count()} train / {valid.count()} valid")
        print(train.plan())

        started = time.perf_counter()
        result = pr.SklearnTrainer(
            make_pipeline(StandardScaler(), LogisticRegression()),
            features=FEATURES,
            label="recommended",
            name="review-recommended",
            num_cpus=2,
        ).fit(train=train, valid=valid)
        print(
            f"\n{result.name} v{result.version} in {time.perf_counter() - started:.1f} s: "
            f"accuracy {result.metrics['valid/accuracy']:.3f}, "
            f"ROC-AUC {result.metrics['valid/roc_auc']:.3f}"
        )
        print(f"registered in MongoDB: {store.models.get('review-recommended')}")

        # Predict on the validation reviews in Ray (shards streamed, never loaded whole) and
        # write the predictions back, keyed by review, model and version: a re-run
        # overwrites them instead of adding copies.
        model = store.models.load("review-recommended")
        version = result.version

        def predict(batch: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "review_id": batch["review_id"],
                    "model": "review-recommended",
                    "version": version,
                    "p_recommended": model.predict_proba(batch[FEATURES])[:, 1],
                }
            )

        predictions = valid.to_dataset().map_batches(predict, batch_format="pandas")
        for _ in range(2):  # twice, to show that writing back is idempotent
            written = store.write(
                "review_predictions", predictions, key=["review_id", "model", "version"]
            )
        stored = store.find("review_predictions", projection=["review_id", "p_recommended"])
        print(f"\nwrote {written} predictions (twice); 'review_predictions' holds {stored.count()}")
        head = stored.to_arrow().to_pandas().sort_values("review_id").head(5)
        print(head.to_string(index=False))
        store.close()


if __name__ == "__main__":
    main()
