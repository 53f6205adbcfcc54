"""Finding a source's files: a path, a glob or a folder (searched recursively; hidden files and
markers such as `_SUCCESS` left out), each file's format from its suffix, its hive partition
values (`key=value` folders under the root), and each file once however often it is named."""

from __future__ import annotations

import glob
from pathlib import Path

from kpictl.errors import InputDataError
from kpictl.io.formats import FORMAT_NAMES, FORMAT_SUFFIXES
from kpictl.io.request import SourceRequest

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


PARQUET_SUFFIXES = (".parquet", ".pq")


SUPPORTED_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES


def suffix_format(path: Path, forced: str) -> str | None:
    name = path.name.lower()
    if forced in FORMAT_NAMES:
        return forced if name.endswith(FORMAT_SUFFIXES) else None
    if forced in ("jsonl", "parquet"):
        return forced
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def find_files(
    pattern: str, base_dir: Path, forced: str = "auto"
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files a path, glob or folder names, each with the root its partition folders start at.

    A path that exists is read as it is named, even when it holds glob characters
    (`logs/run[1].jsonl`); only the pattern, never `base_dir`, is read as a glob.
    Returns ([(file, root)], ignored files). Raises InputDataError when nothing matches.
    """
    expanded = Path(pattern).expanduser()
    target = expanded if expanded.is_absolute() else base_dir / expanded
    found: list[tuple[Path, Path]] = []
    ignored: list[str] = []
    if any(ch in pattern for ch in "*?[") and not target.exists():
        root = None if expanded.is_absolute() else base_dir
        matches = sorted(
            Path(p) if root is None else root / p
            for p in glob.glob(str(expanded), root_dir=root, recursive=True)
        )
        candidates = [(m, m.parent) for m in matches if m.is_file()]
        for folder in (m for m in matches if m.is_dir()):
            candidates += [(f, folder) for f in sorted(folder.rglob("*")) if f.is_file()]
    elif target.is_dir():
        candidates = [(f, target) for f in sorted(target.rglob("*")) if f.is_file()]
    elif target.is_file():
        candidates = [(target, target.parent)]
    else:
        raise InputDataError(f"{target}: no such file or folder")
    for path, root in candidates:
        if any(part.startswith((".", "_")) for part in path.relative_to(root).parts):
            continue  # hidden files and markers such as _SUCCESS
        if suffix_format(path, forced) is None:
            ignored.append(str(path))
        else:
            found.append((path, root))
    if not found:
        extra = f" (ignored: {', '.join(ignored[:5])})" if ignored else ""
        suffixes = FORMAT_SUFFIXES if forced in FORMAT_NAMES else SUPPORTED_SUFFIXES
        raise InputDataError(f"{target}: no log files found; expected {', '.join(suffixes)}{extra}")
    return found, ignored


def partition_values(path: Path, root: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for part in path.relative_to(root).parts[:-1]:
        if "=" in part:
            key, _, value = part.partition("=")
            values[key] = value
    return values


def source_files(request: SourceRequest) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Every file a source's paths name, each once: a file reached twice (a folder and a file
    in it, two overlapping globs, a symlink or a hard link to it) is read once, with a note.
    Returns (files, ignored, notes)."""
    found: list[tuple[Path, Path]] = []
    ignored: list[str] = []
    seen: dict[tuple[int, int] | Path, str] = {}
    twice: list[str] = []
    for pattern in request.paths:
        files, skipped_files = find_files(pattern, request.base_dir, request.format)
        ignored += skipped_files
        for path, root in files:
            real: tuple[int, int] | Path
            try:  # the file itself, whatever its name: a symlink or a hard link is the same file
                info = path.stat()
                real = (info.st_dev, info.st_ino)
            except OSError:
                real = path.absolute()
            if real in seen:
                twice.append(f"{path} (by {seen[real]!r} and {pattern!r})")
                continue
            seen[real] = pattern
            found.append((path, root))
    notes: list[str] = []
    if twice:
        notes.append(
            f"source {request.name!r}: {len(twice)} file{'s' if len(twice) > 1 else ''} named "
            f"more than once, read once: {', '.join(twice[:5])}"
            + (f" and {len(twice) - 5} more" if len(twice) > 5 else "")
        )
    return found, ignored, notes
