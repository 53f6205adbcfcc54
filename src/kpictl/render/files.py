"""Writing an output file (`-o FILE` of every command): atomically, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from kpictl.errors import OutputError, UsageError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_atomically(
    path: Path,
    write: Callable[[Path], object],
    inputs: Iterable[str | Path] = (),
    create_folder: bool = False,
) -> None:
    """Run `write(temporary)` on a new file next to `path`, then rename it onto `path`: a
    failure (of rendering, or of the disk) leaves an existing file as it was, never empty or
    half-written. `path` naming one of `inputs` (the spec, a log file) is a UsageError; a
    folder, a missing folder (unless `create_folder`), no permission or a full disk an
    OutputError. A path that is not a regular file (`/dev/stdout`, a pipe) is written in
    place."""
    path = Path(path)
    for item in inputs:
        if _same_file(path, Path(item)) or path.resolve() == Path(item).resolve():
            raise UsageError(f"--output {path}: is an input of this run; write somewhere else")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; name a file")
    folder = path.parent
    if create_folder and not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"cannot write {path}: {folder} {what}")
    if path.exists() and not path.is_file():
        try:
            write(path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc} in {folder}") from exc
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        temporary.chmod(mode)
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
