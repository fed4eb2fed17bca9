"""Find a pretrained transformers model and its tokenizer for a fit, on the driver.

A local folder must be a ``save_pretrained`` folder with safetensors weights. A hub name
(``org/name``) is taken from the local Hugging Face cache when it is there; otherwise it is
downloaded once, here on the driver, with ``huggingface_hub.snapshot_download`` — weights in
safetensors, the config and the tokenizer files only, nothing that runs code — into that
cache, and the workers load the downloaded folder (shipped to other nodes by the trainer).
``offline=True``, or ``HF_HUB_OFFLINE=1`` in the environment, never touches the network.
``HF_ENDPOINT`` (a Hub mirror) and ``HF_HUB_CACHE`` are read when the download happens.
Anything else is refused before a worker starts, saying what was found and how to provide
the model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .._internal.constants import HF_CACHE_ENV, HF_ENDPOINT_ENV, env_text, hf_offline
from ..errors import PretrainedNotFound

__all__ = ["FETCHED_FILES", "resolve_pretrained", "resolve_tokenizer"]

logger = logging.getLogger("pinnacle_ray.trainers")

# What a download fetches: safetensors weights, configs and tokenizer files, no code and no
# pickles (pytorch_model.bin, *.py are left on the Hub).
FETCHED_FILES = [
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.model",
    "chat_template.jinja",
]

_HOW = (
    "pass model=<path to a folder written by save_pretrained> (config.json + "
    "model.safetensors), e.g. one a package ships or one you downloaded once with "
    "`hf download <name> --local-dir <folder>` on a machine with network"
)


def resolve_pretrained(
    model: str | os.PathLike[str], *, offline: bool | None = None
) -> tuple[str, Any]:
    """(the local folder workers load, its ``PretrainedConfig``) for a local folder or a hub
    name: cached, else downloaded once (not with ``offline=True`` or ``HF_HUB_OFFLINE=1``)."""
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise PretrainedNotFound(
            f"model must be a local folder or a model name, got {type(model).__name__}; {_HOW}"
        )
    path = Path(model).expanduser()
    if path.is_file():
        raise PretrainedNotFound(f"model={str(model)!r} is a file, not a model folder; {_HOW}")
    if not path.is_dir():
        name = str(model)
        folder = _cached(name) or _download(name, _offline(offline))
        return _folder(folder, name)
    return _folder(path, str(model))


def _folder(path: Path, model: str) -> tuple[str, Any]:
    """(``path`` resolved, its config) for a ``save_pretrained`` folder with safetensors;
    ``model`` is what the user gave, for the messages."""
    from transformers import AutoConfig

    if not (path / "config.json").is_file():
        raise PretrainedNotFound(
            f"model={model!r} is a folder but not a transformers model (no config.json; "
            f"it holds {sorted(p.name for p in path.iterdir())[:10]}); {_HOW}"
        )
    weights = list(path.glob("*.safetensors")) + list(path.glob("*.safetensors.index.json"))
    if not weights:
        raise PretrainedNotFound(
            f"model={model!r} has no safetensors weights (found "
            f"{sorted(p.name for p in path.iterdir())[:10]}); pinnacle_ray loads only "
            "safetensors, which run no code: re-save it with model.save_pretrained(folder)"
        )
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise PretrainedNotFound(
            f"model={model!r} holds a config.json transformers cannot read ({exc}); {_HOW}"
        ) from None
    return str(path.resolve()), config


def _offline(offline: bool | None) -> bool:
    """``offline``, else whether ``HF_HUB_OFFLINE`` is set to a true value."""
    if offline is not None:
        return bool(offline)
    return hf_offline()


def _cache_dir() -> str | None:
    return env_text(HF_CACHE_ENV) or None


def _cached(name: str) -> Path | None:
    """The local cache's snapshot folder of hub model ``name``, or None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                name, allow_patterns=FETCHED_FILES, cache_dir=_cache_dir(), local_files_only=True
            )
        )
    except Exception:  # not cached, or not a hub name at all: the download path says which
        return None


def _download(name: str, offline: bool) -> Path:
    """Hub model ``name`` downloaded into the local cache (safetensors, configs and tokenizer
    files only); PretrainedNotFound offline, for a name that is no hub name, or on failure."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise PretrainedNotFound(
            f"model={name!r} is not a local folder, and not a Hugging Face model name "
            f"(org/name) either. {_HOW[0].upper()}{_HOW[1:]}"
        ) from None
    if offline:
        raise PretrainedNotFound(
            f"model={name!r} is not a local folder and is not available locally in the "
            "Hugging Face cache, and downloads are off (offline=True or HF_HUB_OFFLINE=1). "
            f"{_HOW[0].upper()}{_HOW[1:]}, or pass offline=False on a machine with network"
        )
    endpoint = env_text(HF_ENDPOINT_ENV) or None
    logger.info("downloading %s from %s (once, into the Hugging Face cache)", name, endpoint)
    try:
        folder = snapshot_download(
            name,
            allow_patterns=FETCHED_FILES,
            cache_dir=_cache_dir(),
            endpoint=endpoint,
        )
    except Exception as exc:
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise PretrainedNotFound(
            f"model={name!r} is not on this machine and could not be downloaded from "
            f"{endpoint or 'the Hugging Face Hub'} ({type(exc).__name__}: {detail}). Check the "
            f"name and the network (HF_ENDPOINT, HF_TOKEN for gated models), or {_HOW}"
        ) from None
    return Path(folder)


def resolve_tokenizer(tokenizer: Any, model: str) -> Any:
    """The tokenizer to use: one given as an object, loaded from a given folder, or the
    model's own (``None``)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerBase

    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    source = model if tokenizer is None else str(tokenizer)
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        raise PretrainedNotFound(
            "tokenizer must be None (the model's own), a folder, or a transformers tokenizer, "
            f"got {type(tokenizer).__name__}"
        )
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        where = "the model folder" if tokenizer is None else f"tokenizer={source!r}"
        raise PretrainedNotFound(
            f"no tokenizer could be loaded from {where} ({source}): {exc}. Pass tokenizer=<a "
            "folder written by tokenizer.save_pretrained> or a PreTrainedTokenizerFast object"
        ) from None
