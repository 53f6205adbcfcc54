"""YAML loading that keeps the line of every mapping key, so spec errors can say `file:line`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kpictl.errors import SpecError, SpecProblem

YAML_QUOTING_HINT = (
    "in YAML, an expression that begins with { [ * & ! % @ > or |, or that contains ': ' or "
    "' #', must be quoted, e.g. value: \"COUNT(*)\""
)


class MarkedDict(dict[str, Any]):
    """A mapping from the YAML file that remembers its own line and the line of each key."""

    line: int | None
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int | None:
        """The 1-based line of `key` in the file, or the mapping's own line if absent."""
        return self.key_lines.get(key, self.line)


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping repeats a key, which plain YAML loaders accept silently."""


class _MarkedLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings are MarkedDicts; nothing executable is ever constructed."""


# libyaml's parser when PyYAML has it (its wheels do): 5x faster than the pure-Python one.
# Its error messages say less ("found undefined alias", no name), so a file it rejects is
# parsed again by the pure-Python loader, whose message is the one reported.
_FastLoader: Any = type("_FastMarkedLoader", (getattr(yaml, "CSafeLoader", _MarkedLoader),), {})


def _construct_mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    result = MarkedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key_text = str(key)
        if key_text in result:
            raise _DuplicateKeyError(
                None,
                None,
                f"duplicate key {key_text!r} (the second would silently replace the first; "
                f"the first is on line {result.key_lines[key_text]})",
                key_node.start_mark,
            )
        result[key_text] = loader.construct_object(value_node, deep=True)
        result.key_lines[key_text] = key_node.start_mark.line + 1
    return result


for _loader in (_MarkedLoader, _FastLoader):
    _loader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
        _construct_mapping,  # type: ignore[arg-type]
    )


def load_marked_yaml(text: str, file: str) -> Any:
    """Parse YAML text into plain Python values with MarkedDict mappings.

    Raises SpecError with the file:line of a syntax error and the common quoting trap.
    """
    try:
        try:
            return yaml.load(text, Loader=_FastLoader)  # a SafeLoader (C or Python): safe
        except yaml.YAMLError:
            return yaml.load(text, Loader=_MarkedLoader)  # the same error, better told
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        detail = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        if isinstance(exc, _DuplicateKeyError):  # the quoting hint does not apply
            raise SpecError([SpecProblem(file, line, "(yaml)", detail)]) from exc
        raise SpecError(
            [SpecProblem(file, line, "(yaml)", f"not valid YAML: {detail}; {YAML_QUOTING_HINT}")]
        ) from exc
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked YAML errors are rare
        raise SpecError([SpecProblem(file, None, "(yaml)", f"not valid YAML: {exc}")]) from exc


def read_marked_yaml(path: Path) -> Any:
    """Read and parse a YAML file (see load_marked_yaml)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(
            [SpecProblem(str(path), None, "(file)", "no such spec file; pass one with -c PATH")]
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(str(path), None, "(file)", f"cannot read: {exc}")]) from exc
    return load_marked_yaml(text, str(path))
