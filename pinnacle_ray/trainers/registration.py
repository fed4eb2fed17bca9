"""Turn a finished Ray Train run into a registered model version with checkpoint handles.

Handles, as in hosted trainable models: ``latest`` (the last checkpoint), ``best`` (by the
listened metric and its mode) and ``epoch_<n>`` (the end of epoch n, the last ``keep``
epochs; chosen by :mod:`.retention`). The version's own artifact is the best checkpoint
(else the latest) plus the model's meta (features, label, objective, architecture).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import ray.train

from ..registry import CheckpointSpec
from ..registry.flavors import META_FILE
from ..registry.history import history_frame, history_rows
from .retention import check_listened, choose_handles

__all__ = ["RunRecord", "check_listened", "choose_handles", "json_safe", "register_run"]

logger = logging.getLogger("pinnacle_ray.trainers")

Reported = tuple[ray.train.Checkpoint, dict[str, Any]]


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot hold (NaN, objects) made readable instead of failing."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return getattr(value, "__name__", None) or repr(value)


@dataclass
class RunRecord:
    """A finished run, ready to register: its reported checkpoints with their metrics, and
    what the version stores with them. A trainer registers it as soon as its run ends; a
    sweep keeps one per trial and registers only the best trial's.

    ``parent`` is the registered model the run resumed from: recorded in the lineage, and
    as the parent version when it has the same name (a version number only means
    something under its own name). ``history`` is every report of the run, in order
    (report-stream ``Report``s, or ``HistoryRow`` dicts after :meth:`from_json`).
    """

    name: str
    framework: str
    reported: list[Reported]
    meta: dict[str, Any]
    listen: str | None
    mode: str
    keep_epochs: int
    config: dict[str, Any]
    lineage: dict[str, Any]
    parent: dict[str, Any] | None = None
    history: list[Any] = field(default_factory=list)

    def handles(self) -> dict[str, Reported]:
        """Each handle and the reported checkpoint it names."""
        return choose_handles(self.reported, self.listen, self.mode, self.keep_epochs)

    def main_metrics(self) -> dict[str, Any]:
        """The metrics of the checkpoint the version's artifact is (``best``, else ``latest``)."""
        handles = self.handles()
        main = handles.get("best") or handles.get("latest")
        return _public(main[1]) if main is not None else {}

    def history_frame(self) -> Any:
        """Every report of the run as a pandas DataFrame (see ``store.models.metrics``)."""
        return history_frame(self.history)

    def card_facts(self) -> dict[str, Any]:
        """What the version's model card takes from the trainer: features, label, listen."""
        features = self.meta.get("features") or self.meta.get("text_columns") or []
        return json_safe(
            {
                "features": list(features) if isinstance(features, (list, tuple)) else [features],
                "label": self.meta.get("label"),
                "listen": self.listen,
                "mode": self.mode if self.listen else None,
            }
        )

    def register(
        self,
        store: Any,
        *,
        config: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> Any:
        """Register the run as the next version of ``name`` in ``store``'s registry; the
        version (None when nothing was reported). ``config``/``lineage`` add entries."""
        handles = self.handles()
        if not handles:
            return None
        main = handles.get("best") or handles["latest"]
        parent = self.parent
        with ExitStack() as stack:
            local: dict[int, str] = {}
            for checkpoint, _ in handles.values():
                if id(checkpoint) not in local:
                    local[id(checkpoint)] = stack.enter_context(checkpoint.as_directory())
            artifact = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pinnacle-")))
            shutil.copytree(local[id(main[0])], artifact, dirs_exist_ok=True)
            (artifact / META_FILE).write_text(json.dumps(json_safe(self.meta), indent=2))
            specs = {
                handle: CheckpointSpec(
                    path=local[id(checkpoint)],
                    step=int(metrics.get("step", 0) or 0),
                    metrics=json_safe(_public(metrics)),
                )
                for handle, (checkpoint, metrics) in handles.items()
            }
            version = store.models.register(
                self.name,
                self.framework,
                str(artifact),
                metrics=json_safe(_public(main[1])),
                config=json_safe({**self.config, **(config or {})}),
                lineage=json_safe({**self.lineage, "resumed_from": parent, **(lineage or {})}),
                parent_version=parent["version"]
                if parent and parent["name"] == self.name
                else None,
                checkpoints=specs,
                history=history_rows(self.history or [m for _, m in self.reported]),
                card=self.card_facts(),
            )
        logger.info("registered %s version %s (%s)", self.name, version.version, ", ".join(handles))
        return version

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-able data; checkpoints by their storage URI, and by their
        path on their filesystem (named by its type) for a filesystem no URI reopens."""
        return json_safe(
            {
                **{
                    f.name: getattr(self, f.name)
                    for f in fields(self)
                    if f.name not in ("reported", "history")
                },
                "history": [r.to_json() for r in history_rows(self.history)],
                "reported": [
                    {
                        "uri": _uri(checkpoint),
                        "path": checkpoint.path,
                        "filesystem": _fs_type(checkpoint),
                        "metrics": metrics,
                    }
                    for checkpoint, metrics in self.reported
                ],
            }
        )

    @classmethod
    def from_json(cls, data: dict[str, Any], filesystem: Any = None) -> RunRecord:
        """The record :meth:`to_json` wrote, its checkpoints opened from their URIs, or on
        ``filesystem`` (a ``pyarrow.fs.FileSystem``, e.g. the run storage a sweep gave its
        trials) for those stored on a filesystem of that type."""
        values = dict(data)
        values["reported"] = [
            (_open_checkpoint(r, filesystem), dict(r["metrics"])) for r in data["reported"]
        ]
        return cls(**values)


def register_run(
    store: Any,
    name: str,
    reported: list[Reported],
    *,
    framework: str,
    meta: dict[str, Any],
    listen: str | None,
    mode: str,
    keep_epochs: int,
    config: dict[str, Any],
    lineage: dict[str, Any],
    parent: dict[str, Any] | None = None,
) -> Any:
    """Register ``reported`` checkpoints under ``name`` in ``store``'s registry; the version
    (:meth:`RunRecord.register` of a record made of these arguments)."""
    record = RunRecord(
        name, framework, reported, meta, listen, mode, keep_epochs, config, lineage, parent
    )
    return record.register(store)


def _uri(checkpoint: ray.train.Checkpoint) -> str:
    """Where a checkpoint is stored, as a URI another process can open."""
    fs = checkpoint.filesystem
    if fs is None or fs.type_name == "local":
        return checkpoint.path
    return f"{fs.type_name}://{checkpoint.path}"


def _fs_type(checkpoint: ray.train.Checkpoint) -> str:
    fs = checkpoint.filesystem
    return "local" if fs is None else fs.type_name


def _open_checkpoint(entry: dict[str, Any], filesystem: Any) -> ray.train.Checkpoint:
    kind = entry.get("filesystem", "local")
    if filesystem is not None and kind != "local" and kind == filesystem.type_name:
        return ray.train.Checkpoint(entry["path"], filesystem=filesystem)
    return ray.train.Checkpoint(entry["uri"])


def _public(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not k.startswith("timing/")}
