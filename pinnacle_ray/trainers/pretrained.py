"""Find a pretrained transformers model and its tokenizer on this machine, never downloading.

A local folder must be a ``save_pretrained`` folder with safetensors weights; a hub name is
used only when it is already in the local Hugging Face cache. Anything else is refused
before a worker starts, saying what was found and how to provide the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import PretrainedNotFound

__all__ = ["resolve_pretrained", "resolve_tokenizer"]

_HOW = (
    "pass model=<path to a folder written by save_pretrained> (config.json + "
    "model.safetensors), e.g. one a package ships or one you downloaded once with "
    "`hf download <name> --local-dir <folder>` on a machine with network"
)


def resolve_pretrained(model: str | os.PathLike[str]) -> tuple[str, Any]:
    """(what workers load, its ``PretrainedConfig``) for a local folder or a cached hub name."""
    from transformers import AutoConfig

    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise PretrainedNotFound(
            f"model must be a local folder or a model name, got {type(model).__name__}; {_HOW}"
        )
    path = Path(model).expanduser()
    if path.is_file():
        raise PretrainedNotFound(f"model={str(model)!r} is a file, not a model folder; {_HOW}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise PretrainedNotFound(
                f"model={str(model)!r} is a folder but not a transformers model (no config.json; "
                f"it holds {sorted(p.name for p in path.iterdir())[:10]}); {_HOW}"
            )
        weights = list(path.glob("*.safetensors")) + list(path.glob("*.safetensors.index.json"))
        if not weights:
            raise PretrainedNotFound(
                f"model={str(model)!r} has no safetensors weights (found "
                f"{sorted(p.name for p in path.iterdir())[:10]}); pinnacle_ray loads only "
                "safetensors, which run no code: re-save it with model.save_pretrained(folder)"
            )
        try:
            config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise PretrainedNotFound(
                f"model={str(model)!r} holds a config.json transformers cannot read ({exc}); {_HOW}"
            ) from None
        return str(path.resolve()), config
    try:
        config = AutoConfig.from_pretrained(str(model), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise PretrainedNotFound(
            f"model={str(model)!r} is not a local folder and is not available locally in the "
            f"Hugging Face cache ({type(exc).__name__}); pinnacle_ray never downloads at run "
            f"time. {_HOW[0].upper()}{_HOW[1:]}"
        ) from None
    if not _cached_safetensors(str(model)):
        raise PretrainedNotFound(
            f"model={str(model)!r} is in the Hugging Face cache without safetensors weights "
            "(only pytorch_model.bin, a pickle that can run code when loaded); pinnacle_ray "
            f"loads only safetensors. {_HOW[0].upper()}{_HOW[1:]}"
        )
    return str(model), config


def _cached_safetensors(name: str) -> bool:
    """Whether the cached hub model ``name`` has safetensors weights (one file or shards)."""
    from huggingface_hub import try_to_load_from_cache

    return any(
        isinstance(try_to_load_from_cache(name, f), str)
        for f in ("model.safetensors", "model.safetensors.index.json")
    )


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
