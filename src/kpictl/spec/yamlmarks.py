"""YAML loading that keeps the line of every mapping key, so spec errors can say `file:line`."""

from __future__ import annotations

import os
import stat
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


MAX_ALIAS_EXPANSION = 100_000
"""How many values aliases (`*name`) may add to a spec: a real spec has a few hundred values in
all; a 700-byte "billion laughs" file expands to a billion and would exhaust memory."""


def _expanded_size(root: yaml.Node, file: str) -> None:
    """Raise SpecError when aliases make the document expand past MAX_ALIAS_EXPANSION values.

    Counts the values of the node graph as written (each node once) and as expanded (an alias
    counts its whole target again), without expanding anything: sizes are memoised per node.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: a deeply nested file cannot exhaust the Python stack
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in on_path:  # a recursive alias: the constructor reports it
                sizes[key] = 1
                continue
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        sizes[key] = 1 + sum(sizes.get(id(child), 1) for child in children)
    written = len(sizes)
    if sizes[id(root)] - written <= MAX_ALIAS_EXPANSION:
        return
    node = root  # locate: descend into the largest child while it alone is too large
    while True:
        children = _children(node)
        biggest = max(children, key=lambda c: sizes.get(id(c), 1), default=None)
        if biggest is None or sizes.get(id(biggest), 1) - written <= MAX_ALIAS_EXPANSION:
            break
        node = biggest
    raise SpecError(
        [
            SpecProblem(
                file,
                node.start_mark.line + 1,
                "(yaml)",
                f"aliases (*name) expand this document to {sizes[id(root)]:,} values, more "
                f"than the {MAX_ALIAS_EXPANSION:,} they may add (an alias bomb?); write the "
                "values out or use fewer nested aliases",
            )
        ]
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


MAX_YAML_DEPTH = 64
"""The deepest nesting of mappings and lists in a spec (the shipped spec nests 5 deep)."""


def _too_deep(text: str, file: str) -> SpecError | None:
    """A SpecError at the line where nesting passes MAX_YAML_DEPTH, found on the event stream
    (no recursion), or None. Run when building the values recursed too deep (the pure-Python
    loader, which gives better messages than libyaml, recurses once per level)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return SpecError(
                        [
                            SpecProblem(
                                file,
                                event.start_mark.line + 1,
                                "(yaml)",
                                f"nested more than {MAX_YAML_DEPTH} levels deep "
                                "(mappings and lists); "
                                "a spec nests a few levels",
                            )
                        ]
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:  # libyaml stops at 1,000 levels, before the events
        mark = exc.problem_mark or exc.context_mark
        return SpecError(
            [
                SpecProblem(
                    file,
                    mark.line + 1 if mark is not None else None,
                    "(yaml)",
                    f"nested too deeply ({exc.problem}); a spec nests a few levels",
                )
            ]
        )
    return None


def _load(text: str, loader_class: Any, file: str) -> Any:
    """Compose the node graph, bound its expansion, then construct values (yaml.load's steps)."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, file)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_marked_yaml(text: str, file: str) -> Any:
    """Parse YAML text into plain Python values with MarkedDict mappings.

    Raises SpecError with the file:line of a syntax error and the common quoting trap, or of
    an alias bomb (see MAX_ALIAS_EXPANSION).
    """
    try:
        try:
            return _load(text, _FastLoader, file)  # a SafeLoader (C or Python): safe
        except yaml.YAMLError:
            return _load(text, _MarkedLoader, file)  # the same error, better told
    except RecursionError:  # composing and constructing recurse once per level
        problem = _too_deep(text, file)
        if problem is None:
            raise
        raise problem from None
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


MAX_SPEC_BYTES = 1 << 20
"""A spec is a few kilobytes; anything past 1 MiB is not one (or is /dev/zero)."""


def read_spec_bytes(path: Path) -> bytes:
    """The bytes of a spec file: a regular file of at most MAX_SPEC_BYTES, else SpecError."""
    file = str(path)

    def problem(message: str) -> SpecError:
        return SpecError([SpecProblem(file, None, "(file)", message)])

    not_regular = "not a regular file (a device, pipe or folder); pass a YAML file"
    try:
        # stat before open: opening a named pipe would wait for a writer
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise problem(not_regular)
        with path.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise problem(not_regular)
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError as exc:
        raise problem("no such spec file; pass one with -c PATH") from exc
    except OSError as exc:
        raise problem(f"cannot read: {exc}") from exc
    if len(raw) > MAX_SPEC_BYTES:
        raise problem(
            f"larger than {MAX_SPEC_BYTES // (1 << 20)} MiB, the most a spec may be; "
            "is this the KPI spec?"
        )
    return raw


def decode_spec(raw: bytes, path: Path) -> str:
    """The spec's bytes as text; SpecError when they are not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([SpecProblem(str(path), None, "(file)", f"cannot read: {exc}")]) from exc
