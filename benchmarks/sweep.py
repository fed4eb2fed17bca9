"""Sweep overhead benchmark: ``pr.sweep`` against a raw ``ray.tune.Tuner`` over the same
trainable, in one run.

What it measures
----------------
The table ``bench`` of ``train_overhead.py`` (``id`` 1..N, ``f0..f15``, ``label``), built
once in ``benchmarks/.data/sweep_<N>.db``. Both sides sweep ``Ridge(alpha)`` over the same
``--trials`` grid values with ``pr.SklearnTrainer`` as the trainable, and pick the best
trial by ``valid/rmse``:

(a) ours   ``pr.sweep(trainer, {"estimator__alpha": grid}, train=q, metric="valid/rmse")``:
           checks the paths and the metric, plans resources, reads the query once for all
           trials, runs the Tuner, registers the best trial and stores every trial's row
           in ``pinnacle_sweeps``;
(b) raw    a ``ray.tune.Tuner`` over a function that connects to the database and runs the
           same trainer's ``fit(register=False)`` on the query (each trial reads the
           table), with the resources that work on 2 CPUs (a CPU-less trial process and a
           1-CPU bundle for the fit task: Tune places the fit task in the trial's own
           bundle, so that bundle needs a CPU besides the trial's).

Both run ``--concurrent`` trials at a time (default 1, so per-trial times compare like
for like), and once more with ``pr.sweep``'s own plan. The figure is wall time per trial
and (a) - (b) per trial: what ``pr.sweep`` costs (or saves) on top of Tune. Ray is started
first; one untimed 2-trial sweep of each kind warms worker processes. The machine may be
shared: the figures are from one run each. ``--json PATH`` writes the contract rows (see
``_contract.py``): the per-trial overhead, (a) - (b), against issue 24's <= +1 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import ray
from _common import banner, ensure_data_dir, keep_idle_workers, quiet_ray, write_json_rows
from ray import tune
from sklearn.linear_model import Ridge
from train_overhead import FEATURES, LABEL, TABLE, build_sqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pinnacle_ray as pr
from pinnacle_ray._internal.runtime import ensure_ray

METRIC = "valid/rmse"
# Issue 24 item 6: pr.sweep may cost at most this much per trial over the raw Tuner.
OVERHEAD_TARGET_S = 1.0


def alphas(trials: int) -> list[float]:
    return [round(10 ** (-3 + 5 * i / max(1, trials - 1)), 6) for i in range(trials)]


def trainer() -> pr.SklearnTrainer:
    return pr.SklearnTrainer(Ridge(), features=FEATURES, label=LABEL, name="bench-ridge")


def ours(url: str, grid: list[float], concurrent: int | None, tag: str) -> tuple[float, float]:
    store = pr.connect(url)
    started = time.perf_counter()
    result = pr.sweep(
        trainer(),
        {"estimator__alpha": tune.grid_search(grid)},
        train=store.table(TABLE, key="id"),
        metric=METRIC,
        mode="min",
        max_concurrent_trials=concurrent,
        name=f"bench-{tag}-{time.time_ns()}",
    )
    return time.perf_counter() - started, result.params["estimator__alpha"]


def raw_trial(config: dict, url: str) -> None:
    """What a user writes for a Tuner over the trainer: connect, fit, report."""
    store = pr.connect(url)
    result = pr.SklearnTrainer(
        Ridge(alpha=config["alpha"]), features=FEATURES, label=LABEL, name="raw"
    ).fit(train=store.table(TABLE, key="id"), register=False)
    tune.report({METRIC: result.metrics[METRIC]})


def raw(url: str, grid: list[float], concurrent: int) -> tuple[float, float]:
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(raw_trial, url=url),
            tune.PlacementGroupFactory([{}, {"CPU": 1}]),
        ),
        param_space={"alpha": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(metric=METRIC, mode="min", max_concurrent_trials=concurrent),
        run_config=tune.RunConfig(verbose=0),
    )
    best = tuner.fit().get_best_result()
    return time.perf_counter() - started, best.config["alpha"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write contract rows here")
    args = parser.parse_args()

    path = ensure_data_dir() / f"sweep_{args.rows}.db"
    build_sqlite(path, args.rows, rebuild=False)
    url = f"sqlite:///{path}"
    keep_idle_workers()
    quiet_ray()
    ensure_ray()
    grid = alphas(args.trials)
    print(banner(f"sweep overhead: {args.trials} Ridge trials on {args.rows:,} rows"))
    ours(url, grid[:2], args.concurrent, "warmup")
    raw(url, grid[:2], args.concurrent)

    a, best_a = ours(url, grid, args.concurrent, "timed")
    b, best_b = raw(url, grid, args.concurrent)
    planned, _ = ours(url, grid, None, "planned")
    n = args.trials
    print(f"{'method':<52} {'total s':>8} {'s/trial':>8}")
    print(f"{'(a) pr.sweep, ' + str(args.concurrent) + ' at a time':<52} {a:8.2f} {a / n:8.2f}")
    print(f"{'(b) raw Tuner, ' + str(args.concurrent) + ' at a time':<52} {b:8.2f} {b / n:8.2f}")
    print(f"{'(a) pr.sweep, its own plan (as many as fit)':<52} {planned:8.2f} {planned / n:8.2f}")
    print(f"\noverhead of pr.sweep per trial: {(a - b) / n:+.2f} s ((a) - (b), same concurrency)")
    print(f"best alpha: ours {best_a}, raw {best_b} (same: {best_a == best_b})")
    ray.shutdown()
    if args.json is not None:
        per_trial = (a - b) / n
        load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        write_json_rows(
            args.json,
            [
                {
                    "benchmark": f"sweep: {n} Ridge trials, {args.rows:,} rows, per trial",
                    "ours_s": a / n,
                    "baseline": "raw ray.tune.Tuner, same fits",
                    "baseline_s": b / n,
                    "ratio": (a / n) / (b / n),
                    "ratio_kind": "time",
                    "target": f"(a)-(b) <= +{OVERHEAD_TARGET_S:g} s/trial",
                    "met": per_trial <= OVERHEAD_TARGET_S,
                    "note": (
                        f"overhead {per_trial:+.2f} s/trial; {args.concurrent} at a time; "
                        f"own plan {planned / n:.2f} s/trial; same best alpha: "
                        f"{best_a == best_b}; {load}"
                    ),
                }
            ],
        )


if __name__ == "__main__":
    main()
