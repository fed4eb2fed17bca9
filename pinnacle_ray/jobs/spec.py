"""Read a run spec (YAML): ``${ENV_VAR}`` interpolation, then validation of every field up
front, with errors that give the line and field, the value seen and what is expected.

Example::

    from pinnacle_ray.jobs import load_spec

    spec = load_spec("examples/specs/torch_managed.yaml")
    spec.run.trainer.kind            # "torch"
    spec.masked                      # the spec as written, secrets masked (for job records)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .._internal.names import validate_name
from .._internal.secrets import mask
from ..errors import SpecError
from .spec_schema import TRAINER_KINDS, TRAINER_SECTIONS, RunSpec

__all__ = ["LoadedSpec", "interpolate", "load_spec", "parse_spec"]

# ${NAME} or ${NAME:-default}; $${...} is a literal "${...}".
_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# What a whole-value ${VAR} becomes besides text: integers, decimals, true/false.
_PLAIN = re.compile(r"-?\d+(\.\d+)?|true|false", re.I)


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec: the run (``run``), the text as written, where it came from, the
    environment variables it uses, and a digest of its content (the job's identity)."""

    run: RunSpec
    raw: dict[str, Any]
    source: str
    env_names: tuple[str, ...] = ()
    digest: str = ""
    text: str = field(default="", repr=False)

    @property
    def masked(self) -> dict[str, Any]:
        """The spec as written (``${VAR}`` references, not their values), any literal
        password or secret-named value masked: safe for job records and logs."""
        return mask(self.raw)


def load_spec(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> LoadedSpec:
    """Read and validate the spec file at ``path`` (variables from ``env``, default the
    process environment)."""
    file = Path(path)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise SpecError(f"spec file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"spec file {str(path)!r} is not UTF-8 text (byte {exc.start}: "
            f"{exc.object[exc.start : exc.start + 1]!r}); a spec is a YAML text file"
        ) from None
    return parse_spec(text, source=str(path), env=env)


def parse_spec(text: str, source: str = "<spec>", env: dict[str, str] | None = None) -> LoadedSpec:
    """Validate spec ``text``; ``source`` names it in errors."""
    try:
        return _parse(text, source, dict(os.environ) if env is None else env)
    except RecursionError:
        # Thousands of nested brackets, or an alias that contains itself (`a: &a [*a]`).
        raise SpecError(
            f"{source}: the YAML is nested too deeply (or an alias refers to itself); a spec "
            "is a few levels of plain mappings and lists"
        ) from None


def _parse(text: str, source: str, env: dict[str, str]) -> LoadedSpec:
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source}: a spec is a YAML mapping (name:, store:, train:, trainer:, ...), got "
            f"{type(raw).__name__}"
        )
    lines = _Lines(root)
    names: list[str] = []
    resolved = _interpolate_tree(raw, env, (), source, lines, names)
    try:
        run = RunSpec.model_validate(resolved)
    except ValidationError as exc:
        problems = [_describe(e, lines) for e in exc.errors()]
        raise SpecError(
            f"{source} is not a valid run spec: " + "; ".join(dict.fromkeys(problems))
        ) from None
    try:
        validate_name(run.name, "model name")
    except Exception as exc:
        raise SpecError(f"{source}{lines.at(('name',))}, name: {exc}") from None
    canonical = json.dumps(raw, sort_keys=True, default=str)
    return LoadedSpec(
        run=run,
        raw=raw,
        source=source,
        env_names=tuple(dict.fromkeys(names)),
        digest=hashlib.sha256(canonical.encode()).hexdigest(),
        text=text,
    )


def interpolate(value: str, env: dict[str, str], where: str = "") -> tuple[str, list[str]]:
    """``value`` with ``${NAME}`` / ``${NAME:-default}`` replaced from ``env``, and the
    names used; an unset variable without a default is a :class:`SpecError`."""
    used: list[str] = []

    def replace(m: re.Match[str]) -> str:
        escaped, name, default = m.group(1), m.group(2), m.group(3)
        if escaped:
            return m.group(0)[1:]
        if default is not None and "${" in default:
            raise SpecError(
                f"{where}${{{name}:-...}} has a variable in its default ({default}...); a "
                "default is plain text"
            )
        used.append(name)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise SpecError(
            f"{where}environment variable {name} is not set; export {name}=... before "
            f"running, or write ${{{name}:-default}} in the spec"
        )

    left = _VAR.sub("", value)
    if "${" in left:
        bad = left[left.index("${") :].split()[0][:40]
        raise SpecError(
            f"{where}{bad!r} is not a variable reference; write ${{NAME}} or "
            "${NAME:-default} (NAME: letters, digits, '_', not starting with a digit), or "
            "$${...} for a literal '${'"
        )
    return _VAR.sub(replace, value), used


def _interpolate_tree(
    value: Any,
    env: dict[str, str],
    path: tuple[Any, ...],
    source: str,
    lines: _Lines,
    names: list[str],
) -> Any:
    if isinstance(value, dict):
        return {
            k: _interpolate_tree(v, env, (*path, k), source, lines, names) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate_tree(v, env, (*path, i), source, lines, names) for i, v in enumerate(value)
        ]
    if isinstance(value, str):
        where = f"{source}{lines.at(path)}, {_dotted(path)}: "
        text, used = interpolate(value, env, where)
        names.extend(used)
        if used and _VAR.fullmatch(value) and _PLAIN.fullmatch(text):
            # `epochs: ${EPOCHS:-10}` is a number even inside a free-form dict
            # (train_loop_config, params), as the same literal would be in YAML.
            return yaml.safe_load(text)
        return text
    return value


class _Lines:
    """Line numbers of the spec's keys, by field path (from YAML's node tree)."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def at(self, path: tuple[Any, ...]) -> str:
        node, line = self.root, None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for key, child in node.value:
                    if key.value == str(part):
                        node, line = child, key.start_mark.line
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line
            else:
                break
        if line is None and node is not None and node is not self.root:
            line = node.start_mark.line
        return f" line {line + 1}" if line is not None else ""


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: dict[str, Any], lines: _Lines) -> str:
    """One problem as ``line N, field: what is wrong (value seen); what is expected``."""
    # Discriminated unions add the tag to the location ('trainer', 'torch', 'epochs').
    loc = _strip_tags(error["loc"])
    kind = error["type"]
    line = lines.at(loc).strip()
    where = f"{line}, {_dotted(loc)}" if line else _dotted(loc)
    if kind == "extra_forbidden":
        parent = _model_at(error["loc"][:-1])
        hint = ""
        if parent is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; allowed here: {', '.join(sorted(parent.model_fields))}"
            )
        return f"{where}: unknown field{hint}"
    if kind == "missing":
        return f"{where}: required field is missing{_expected(loc)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        seen = error.get("input", {}).get("kind") if isinstance(error.get("input"), dict) else None
        return (
            f"{where}.kind: "
            + (f"unknown trainer kind {seen!r}" if seen is not None else "missing")
            + f"; expected one of {', '.join(TRAINER_KINDS)}"
        )
    message = error["msg"].removeprefix("Value error, ")
    seen = error.get("input")
    shown = (
        ""
        if isinstance(seen, (dict, list)) or kind.startswith("value_error")
        else f" (got {seen!r})"
    )
    return f"{where}: {message}{shown}"


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for i, part in enumerate(loc):
        # pydantic puts the discriminator's value after the union's field name
        if i > 0 and loc[i - 1] == "trainer" and part in TRAINER_KINDS and len(out) == i:
            continue
        out.append(part)
    return tuple(out)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model of the section at pydantic location ``loc`` (for suggestions)."""
    model: type[BaseModel] | None = RunSpec
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if model is None:
            return None
        if model is RunSpec and part == "trainer":
            # the discriminator's value follows: ('trainer', 'torch', ...)
            model = TRAINER_SECTIONS.get(parts.pop(0)) if parts else None
            continue
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        model = _section_type(info.annotation)
    return model


def _section_type(annotation: Any) -> type[BaseModel] | None:
    for candidate in getattr(annotation, "__args__", (annotation,)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _expected(loc: tuple[Any, ...]) -> str:
    hints = {
        ("name",): " (the model's name in the registry, e.g. 'house-price')",
        ("store",): " (the datastore URL, e.g. 'sqlite:///shop.db' or '${DATABASE_URL}')",
        ("train",): " (a query: table:, sql: or find:)",
        ("trainer",): f" (kind: one of {', '.join(TRAINER_KINDS)}, and its arguments)",
    }
    return hints.get(loc, "")
