"""The registry's tables (models, checkpoints, meta) as Arrow schemas, and their names.

Tables are created from these schemas by the datastore's own insert, so every backend gets
types it can store. ``meta`` holds ``schema_version``: a registry written by a newer
pinnacle_ray is refused instead of misread.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..datastore.identifiers import validate_identifier

__all__ = [
    "CHECKPOINTS",
    "CHECKPOINT_KEY",
    "META",
    "META_KEY",
    "MODELS",
    "MODEL_KEY",
    "SCHEMA_VERSION",
    "RegistryTables",
]

SCHEMA_VERSION = 1

MODELS = pa.schema(
    [
        ("name", pa.string()),
        ("version", pa.int64()),
        ("framework", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),  # "pending" while being registered, then "ready"
        ("metrics", pa.string()),  # JSON
        ("config", pa.string()),  # JSON
        ("lineage", pa.string()),  # JSON
        ("artifact_uri", pa.string()),
        ("sha256", pa.string()),
        ("size_bytes", pa.int64()),
        ("parent_version", pa.int64()),
    ]
)
MODEL_KEY = ["name", "version"]

CHECKPOINTS = pa.schema(
    [
        ("name", pa.string()),
        ("version", pa.int64()),
        ("handle", pa.string()),
        ("step", pa.int64()),
        ("metrics", pa.string()),  # JSON
        ("artifact_uri", pa.string()),
        ("sha256", pa.string()),
    ]
)
CHECKPOINT_KEY = ["name", "version", "handle"]

META = pa.schema([("key", pa.string()), ("value", pa.string())])
META_KEY = ["key"]


@dataclass(frozen=True)
class RegistryTables:
    """Table names for a registry; ``prefix`` keeps separate registries in one database apart."""

    prefix: str = "pinnacle"

    def __post_init__(self) -> None:
        validate_identifier(self.meta, "registry table name")

    @property
    def models(self) -> str:
        return f"{self.prefix}_models"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}_checkpoints"

    @property
    def meta(self) -> str:
        return f"{self.prefix}_registry_meta"

    @property
    def handle_moves(self) -> str:
        """Moves of user-set handles (aliases such as ``production``); see ``aliases.py``."""
        return f"{self.prefix}_handle_moves"

    @property
    def sweeps(self) -> str:
        return f"{self.prefix}_sweeps"

    @property
    def history(self) -> str:
        """Every report of a registered version's run; see ``history.py``."""
        return f"{self.prefix}_metric_history"

    @property
    def trial_history(self) -> str:
        """Every report of each sweep trial; see ``history.py``."""
        return f"{self.prefix}_trial_history"

    @property
    def cards(self) -> str:
        """Each version's model card; see ``cards.py``."""
        return f"{self.prefix}_model_cards"
