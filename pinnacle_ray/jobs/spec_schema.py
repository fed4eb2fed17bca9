"""The fields of a run spec, as pydantic models: what each section may hold and its type.

Unknown fields are refused (``extra="forbid"``), so a misspelled one is an error with a
suggestion instead of being silently ignored. A trainer's arguments are passed to its
constructor only when the spec sets them, so the defaults stay the trainer's own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CheckpointSection",
    "FailureSection",
    "HuggingFaceSection",
    "PredictSection",
    "QuerySection",
    "RunSpec",
    "RuntimeEnvSection",
    "ScalingSection",
    "SklearnSection",
    "TorchSection",
    "TuneSection",
    "XGBoostSection",
]

TRAINER_KINDS = ("torch", "sklearn", "xgboost", "huggingface")


# Counts (workers, epochs, rounds, ...) end up in C ints (XGBoost, torch, Ray): a larger
# number is a typo, refused here rather than overflowing (or running forever) later.
MAX_COUNT = 2**31 - 1


class _Section(BaseModel):
    # coerce_numbers_to_str: `store: ${URL}` stays text even when the value looks numeric
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)

    def given(self, *exclude: str) -> dict[str, Any]:
        """The fields the spec sets, without ``exclude`` (defaults stay the callee's)."""
        return self.model_dump(exclude_unset=True, exclude=set(exclude))


class QuerySection(_Section):
    """One query: ``table:`` (with columns/where), ``sql:`` (with params) or ``find:``
    (MongoDB, with filter/projection); ``key`` shards the read."""

    table: str | None = None
    sql: str | None = None
    find: str | None = None
    columns: list[str] | None = None
    where: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    filter: dict[str, Any] | None = None
    projection: list[str] | None = None
    key: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> QuerySection:
        sources = [k for k in ("table", "sql", "find") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(
                "a query needs exactly one of 'table', 'sql' or 'find', got "
                + (", ".join(repr(s) for s in sources) if sources else "none")
            )
        allowed = {
            "table": {"columns", "where"},
            "sql": {"params"},
            "find": {"filter", "projection"},
        }[sources[0]]
        extra = {"columns", "where", "params", "filter", "projection"} - allowed
        wrong = sorted(k for k in extra if getattr(self, k) is not None)
        if wrong:
            raise ValueError(
                f"{', '.join(repr(w) for w in wrong)} cannot go with {sources[0]!r} "
                f"(with {sources[0]!r} use: {', '.join(sorted(allowed))}, key)"
            )
        return self


class ScalingSection(_Section):
    """Ray Train's ``ScalingConfig`` arguments."""

    num_workers: int = Field(1, ge=1, le=MAX_COUNT)
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = None
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"


class CheckpointSection(_Section):
    """Ray Train's ``CheckpointConfig`` arguments."""

    num_to_keep: int | None = Field(None, ge=1, le=MAX_COUNT)
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: Literal["max", "min"] = "max"


class FailureSection(_Section):
    """Ray Train's ``FailureConfig``: how many worker-group failures to recover from."""

    max_failures: int = Field(0, ge=-1, le=MAX_COUNT)


class TorchSection(_Section):
    """``pr.TorchTrainer``: the managed loop (``model`` + ``features`` + ``label``) or your
    own Ray Train loop (``train_loop_per_worker``), each named by import path."""

    kind: Literal["torch"]
    train_loop_per_worker: str | None = None
    train_loop_config: dict[str, Any] | None = None
    model: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    objective: str | None = None
    features: list[str] | None = None
    label: str | None = None
    optimizer_cls: str | None = None
    optimizer_kwargs: dict[str, Any] | None = None
    batch_size: int | None = Field(None, ge=1, le=MAX_COUNT)
    epochs: int | None = Field(None, ge=1, le=MAX_COUNT)
    max_iterations: int | None = Field(None, ge=1, le=MAX_COUNT)
    validation_interval: int | None = Field(None, ge=1, le=MAX_COUNT)
    no_improve_then_stop: int | None = Field(None, ge=1, le=MAX_COUNT)
    listen: str | None = None
    mode: Literal["min", "max"] | None = None
    valid_fraction: float | None = None
    keep_checkpoints: int | None = Field(None, ge=0, le=MAX_COUNT)
    cache: bool | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)

    @model_validator(mode="after")
    def _loop_or_model(self) -> TorchSection:
        if self.train_loop_per_worker is None and self.model is None:
            raise ValueError(
                "a torch trainer needs 'model' (import path of a torch.nn.Module class or "
                "factory, with 'features' and 'label': the managed loop) or "
                "'train_loop_per_worker' (import path of your Ray Train loop)"
            )
        if self.train_loop_per_worker is None and (not self.features or not self.label):
            raise ValueError("the managed torch loop ('model') needs 'features' and 'label'")
        return self


class SklearnSection(_Section):
    """``pr.SklearnTrainer``: an estimator (class or factory by import path) and its args."""

    kind: Literal["sklearn"]
    estimator: str
    estimator_args: dict[str, Any] = Field(default_factory=dict)
    features: list[str]
    label: str | None = None
    fit_kwargs: dict[str, Any] | None = None
    num_cpus: float | None = Field(None, gt=0)
    incremental: bool | None = None
    batch_size: int | None = Field(None, ge=1, le=MAX_COUNT)
    epochs: int | None = Field(None, ge=1, le=MAX_COUNT)
    valid_fraction: float | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    max_memory_share: float | None = None


class XGBoostSection(_Section):
    """``pr.XGBoostTrainer``: booster params and rounds."""

    kind: Literal["xgboost"]
    params: dict[str, Any] | None = None
    features: list[str]
    label: str
    num_boost_round: int | None = Field(None, ge=1, le=MAX_COUNT)
    early_stopping_rounds: int | None = Field(None, ge=1, le=MAX_COUNT)
    enable_categorical: bool | None = None
    valid_fraction: float | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    checkpoint_frequency: int | None = Field(None, ge=0, le=MAX_COUNT)
    report_every: int | None = Field(None, ge=1, le=MAX_COUNT)


class HuggingFaceSection(_Section):
    """``pr.HuggingFaceTrainer``: its arguments go to the constructor as written."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, allow_inf_nan=False)
    kind: Literal["huggingface"]
    model: str
    text_column: str | None = None
    label: str | None = None
    training_args: dict[str, Any] | None = None


TRAINER_SECTIONS: dict[str, type[_Section]] = {
    "torch": TorchSection,
    "sklearn": SklearnSection,
    "xgboost": XGBoostSection,
    "huggingface": HuggingFaceSection,
}

TrainerSection = Annotated[
    TorchSection | SklearnSection | XGBoostSection | HuggingFaceSection,
    Field(discriminator="kind"),
]


class TuneSection(_Section):
    """A Ray Tune sweep for ``pinnacle-ray sweep``: ``pr.sweep(trainer, param_space=...)``.

    A key in ``param_space`` is a parameter path as in ``pr.sweep``, nested parameters
    named with ``__`` (``optimizer_kwargs__lr``, ``estimator__alpha``) or written as a
    nested map (``params: {max_depth: ...}``); dotted keys (``params.max_depth``) still
    work with a ``FutureWarning``. A value is a constant, or one of ``{grid: [...]}``,
    ``{choice: [...]}``, ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}``,
    ``{randint: [lo, hi]}`` (Ray Tune's search spaces).
    """

    param_space: dict[str, Any]
    metric: str
    mode: Literal["min", "max"]
    num_samples: int = Field(1, ge=1, le=MAX_COUNT)
    scheduler: Literal["asha", "fifo"] | None = None
    name: str | None = None


class PredictSection(_Section):
    """Batch predictions for ``pinnacle-ray predict --spec``: ``pr.predict(model, query, ...)``."""

    model: str | None = None
    query: QuerySection
    output: str
    version: int | None = Field(None, ge=1, le=MAX_COUNT)
    handle: str | None = None
    batch_size: int | None = Field(None, ge=1, le=MAX_COUNT)
    concurrency: int | None = Field(None, ge=1, le=MAX_COUNT)
    columns: list[str] | None = None


class RuntimeEnvSection(_Section):
    """What ``pinnacle-ray submit`` ships with the job (Ray's ``runtime_env``).

    ``env`` names the environment variables passed to the job (an allowlist: nothing else
    from the submitting shell goes, secrets included); the variables the spec itself uses
    (``${NAME}``) are passed too.
    """

    working_dir: str | None = None
    pip: list[str] | str | None = None
    env: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)


class RunSpec(_Section):
    """A whole run: where the data is, what trains on it, how it scales, what follows."""

    name: str
    store: str
    artifact_root: str | None = None
    train: QuerySection
    valid: QuerySection | None = None
    trainer: TrainerSection
    scaling: ScalingSection | None = None
    checkpoint: CheckpointSection | None = None
    failure: FailureSection | None = None
    storage_path: str | None = None
    # "register" would shadow BaseModel's ABC ``register``; the spec still says register:
    register_model: bool = Field(True, alias="register")
    tune: TuneSection | None = None
    predict: PredictSection | None = None
    runtime_env: RuntimeEnvSection | None = None

    @model_validator(mode="after")
    def _scaling_fits_kind(self) -> RunSpec:
        if self.trainer.kind == "sklearn" and self.scaling is not None:
            raise ValueError(
                "'scaling' does not apply to a sklearn trainer (one Ray task); set "
                "trainer.num_cpus instead"
            )
        return self
