"""Child processes the fault tests kill with SIGKILL at a chosen point.

``python fault_child.py register URL ROOT PREFIX NAME SRC``: registers SRC as the next
version of NAME, but stops right after the version row is claimed (status pending, files
uploaded), prints ``claimed <n>`` and waits to be killed.

``python fault_child.py predict RAY_ADDRESS URL MODEL TABLE OUTPUT``: ``pr.predict`` as its
own Ray driver (connected to the test session's Ray), slow enough to be killed halfway.
"""

from __future__ import annotations

import sys
import time


def register_then_hang(url: str, root: str, prefix: str, name: str, src: str) -> None:
    import pinnacle_ray as pr
    from pinnacle_ray.registry.registry import ModelRegistry

    claim = ModelRegistry._claim

    def claim_then_hang(self: ModelRegistry, row: dict) -> int:
        version = claim(self, row)
        print(f"claimed {version}", flush=True)
        time.sleep(600)  # killed here: files written, version pending, never made ready
        return version

    ModelRegistry._claim = claim_then_hang  # type: ignore[method-assign]
    ModelRegistry(pr.connect(url), artifact_root=root, prefix=prefix).register(name, "torch", src)


def predict(ray_address: str, url: str, model: str, table: str, output: str) -> None:
    """``pr.predict`` from its own driver on the test session's Ray (killed halfway)."""
    from pathlib import Path

    import ray

    import pinnacle_ray as pr

    here = str(Path(__file__).parent)
    ray.init(address=ray_address, runtime_env={"env_vars": {"PYTHONPATH": here}})
    store = pr.connect(url)
    print("predicting", flush=True)
    pr.predict(
        model,
        store.table(table, key="id"),
        output=output,
        batch_size=50,
        concurrency=1,
        trusted_modules=["fault_loops"],  # Sluggish's module, this suite's own
    )
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "register":
        register_then_hang(*sys.argv[2:7])
    elif sys.argv[1] == "predict":
        predict(*sys.argv[2:7])
