"""The JSONL cache: each parsed JSONL file's canonical frame, kept as Parquet between runs.

An entry is two files named by its key (which the io layer makes from the file's content and
everything its frame depends on): `KEY.parquet`, the frame, and `KEY.json`, the io layer's
report with the Parquet file's size and hash and a checksum over all of it. Both are written
0600 under temporary names and renamed, so a reader sees a whole entry or none. An entry that
fails its checksum is removed, with a note, and the file parsed again; a cache folder that
cannot be used turns the cache off for the run, with a note. The cache is bounded: past its
limit the least recently used entries are removed. See README.md, "kpictl compute".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import xxhash

from kpictl.errors import UsageError

# 4: frames checked for extreme values (NaN text, integers past Int64, objects read as text,
# blank keys, epoch units: README "Bad input"), so a frame cached unchecked is not served;
# 3: content-keyed entries carrying a checksum; 2 was keyed by size and modification time
CACHE_FORMAT = 4
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB
ORPHAN_AGE_S = 3600.0  # a temporary file this old was left by a writer that died
IN_USE_S = 600.0  # an entry used this recently is never evicted: a running process may scan it
_ENTRY_NAME = re.compile(r"[0-9a-f]{32}\.(json|parquet)(\.[0-9]+-[0-9a-f]{8}\.tmp)?")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def cache_location() -> Path:
    """$KPICTL_CACHE_DIR, else $XDG_CACHE_HOME/kpictl, else ~/.cache/kpictl."""
    if os.environ.get("KPICTL_CACHE_DIR"):
        return Path(os.environ["KPICTL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kpictl"


def jsonl_cache_dir() -> Path | None:
    """Where parsed JSONL is cached (`cache_location`); None when $KPICTL_NO_CACHE is set (to
    anything but 0 or empty)."""
    if os.environ.get("KPICTL_NO_CACHE", "") not in ("", "0"):
        return None
    return cache_location()


def cache_limit() -> int:
    """The cache's size limit in bytes: $KPICTL_CACHE_MAX_BYTES (a number of bytes, or with
    K, M, G or T for KiB … TiB), else 2 GiB. 0 keeps nothing."""
    text = os.environ.get("KPICTL_CACHE_MAX_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text.lower())
    if match is None:
        raise UsageError(
            f"KPICTL_CACHE_MAX_BYTES={text!r}: expected a size in bytes such as 2000000000, "
            "500M or 2G"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def digest_file(path: Path) -> str:
    """The xxh3-128 hash of a file's bytes (several GB/s: cheap next to parsing JSON)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, xxhash.xxh3_128).hexdigest()


def _checksum(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return xxhash.xxh3_128_hexdigest(text.encode())


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).strip().split("\n", 1)[0] or type(exc).__name__


def _names(schema: Mapping[str, pl.DataType]) -> list[tuple[str, str]]:
    return [(name, str(dtype)) for name, dtype in schema.items()]


def _unlink(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _create_private(path: Path) -> None:
    """An empty file only its owner can read: entries hold transcript text."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class _Damaged(Exception):
    """An entry whose bytes are not what was written."""


class _Unfit(Exception):
    """A frame the cache does not keep (too large, or changed by a Parquet round trip)."""


@dataclass
class JsonlCache:
    """One load's use of a cache folder (None: no cache). Never fails a run: a folder that
    cannot be used turns the cache off; what happened is said in `notes`."""

    directory: Path | None
    limit: int = -1  # bytes; -1: `cache_limit()`

    def __post_init__(self) -> None:
        self.notes: list[str] = []
        self._ready: bool | None = None if self.directory is not None else False
        if self.directory is not None and self.limit < 0:
            self.limit = cache_limit()
        if self.limit == 0:
            self._ready = False
        # the folder's size as of the last look, plus what this load wrote since: the folder is
        # listed at the first write and again only past the limit (not once per file)
        self._total: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether entries are read and written (until the folder turns out unusable)."""
        return self._ready is not False

    def _folder(self) -> Path | None:
        if self._ready is None:
            assert self.directory is not None
            try:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                why = (
                    "not a folder"
                    if self.directory.exists()
                    else "a part of its path is a file"
                    if isinstance(exc, NotADirectoryError)
                    else _why(exc)
                )
                self._off(f"{self.directory} cannot be used ({why})")
            else:
                self._ready = True
        return self.directory if self._ready else None

    def _off(self, why: str) -> None:
        self._ready = False
        self.notes.append(
            f"cache: {why}; JSONL files are parsed without the cache in this run (set "
            "KPICTL_CACHE_DIR to a writable folder, or KPICTL_NO_CACHE=1)"
        )

    def get(self, key: str, label: str) -> tuple[pl.LazyFrame | None, dict[str, Any]] | None:
        """The entry's frame (scanned lazily; None when it has no rows) and the data stored
        with it; None when there is none. A damaged entry is removed and noted."""
        folder = self._folder()
        if folder is None:
            return None
        meta_file = folder / f"{key}.json"
        try:
            text = meta_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._off(f"cannot read {meta_file} ({_why(exc)})")
            return None
        try:
            data, has_frame = self._verified(key, text, folder)
        except _Damaged as exc:
            self.reject(key, label, str(exc))
            return None
        with contextlib.suppress(OSError):
            os.utime(meta_file)  # last use, for least-recently-used eviction
        frame = (
            pl.scan_parquet(folder / f"{key}.parquet", glob=False, hive_partitioning=False)
            if has_frame
            else None
        )
        return frame, data

    @staticmethod
    def _verified(key: str, text: bytes, folder: Path) -> tuple[dict[str, Any], bool]:
        try:
            entry = json.loads(text)
        except ValueError as exc:
            raise _Damaged("not JSON") from exc
        if not (
            isinstance(entry, dict)
            and set(entry) == {"format", "key", "data", "payload", "checksum"}
        ):
            raise _Damaged("not a cache entry")
        body = {k: v for k, v in entry.items() if k != "checksum"}
        if entry["checksum"] != _checksum(body):
            raise _Damaged("checksum mismatch")
        if (
            entry["format"] != CACHE_FORMAT
            or entry["key"] != key
            or not isinstance(entry["data"], dict)
        ):
            raise _Damaged("written for another entry")
        payload = entry["payload"]
        if payload is None:
            return entry["data"], False
        frame_file = folder / f"{key}.parquet"
        try:
            size, digest = frame_file.stat().st_size, digest_file(frame_file)
        except OSError as exc:
            raise _Damaged(f"its Parquet file cannot be read: {_why(exc)}") from exc
        if payload != {"bytes": size, "xxh3_128": digest}:
            raise _Damaged("its Parquet file does not match the checksum")
        return entry["data"], True

    def reject(self, key: str, label: str, why: str) -> None:
        """Remove an entry that cannot be used, with a note."""
        self._remove(key)
        self.notes.append(
            f"cache: the entry for {label} was damaged ({why}); removed, and the file parsed again"
        )

    def _remove(self, key: str) -> None:
        if self.directory is not None:
            _unlink(self.directory / f"{key}.json", self.directory / f"{key}.parquet")

    def put(self, key: str, label: str, frame: pl.DataFrame | None, data: dict[str, Any]) -> None:
        """Keep a frame (None: the file has no rows) and its data; then remove orphan
        temporary files and, past the limit, the least recently used entries."""
        folder = self._folder()
        if folder is None:
            return
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        tmp_frame = folder / f"{key}.parquet.{token}.tmp"
        tmp_meta = folder / f"{key}.json.{token}.tmp"
        try:
            payload, payload_size = None, 0
            if frame is not None:
                _create_private(tmp_frame)
                frame.write_parquet(tmp_frame)
                if _names(pl.read_parquet_schema(tmp_frame)) != _names(frame.schema):
                    raise _Unfit  # a column type does not survive Parquet
                size = tmp_frame.stat().st_size
                if size > self.limit:
                    self.notes.append(
                        f"cache: {label} is not kept: its entry ({size:,} bytes) is larger "
                        f"than the cache limit ({self.limit:,} bytes, KPICTL_CACHE_MAX_BYTES)"
                    )
                    raise _Unfit
                payload, payload_size = {"bytes": size, "xxh3_128": digest_file(tmp_frame)}, size
            body = {"format": CACHE_FORMAT, "key": key, "data": data, "payload": payload}
            _create_private(tmp_meta)
            meta_size = tmp_meta.write_bytes(
                json.dumps({**body, "checksum": _checksum(body)}).encode()
            )
            if frame is not None:
                os.replace(tmp_frame, folder / f"{key}.parquet")
            os.replace(tmp_meta, folder / f"{key}.json")
        except _Unfit:
            _unlink(tmp_frame, tmp_meta)
            return
        except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
            _unlink(tmp_frame, tmp_meta)
            self._off(f"cannot write to {folder} ({_why(exc)})")
            return
        self._tidy(folder, payload_size + meta_size)

    def _tidy(self, folder: Path, written: int) -> None:
        if self._total is not None:
            self._total += written
            if self._total <= self.limit:
                return
        now = time.time()
        entries = _entries(folder, now, remove_orphans=self._total is None)
        total = sum(e.size for e in entries)
        for entry in sorted(entries, key=lambda e: e.last_used):
            if total <= self.limit:
                break
            if now - entry.last_used < IN_USE_S:
                continue
            self._remove(entry.key)
            total -= entry.size
        self._total = total


@dataclass(frozen=True)
class _Entry:
    key: str
    size: int
    last_used: float


def _files(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """The cache's own files in a folder (other files are never touched) and their stat."""
    try:
        items = list(os.scandir(folder))
    except OSError:
        return
    for item in items:
        if _ENTRY_NAME.fullmatch(item.name):
            try:
                yield item.name, item.stat(follow_symlinks=False)
            except OSError:
                continue


def _entries(folder: Path, now: float, remove_orphans: bool) -> list[_Entry]:
    """The entries of a folder; with `remove_orphans`, temporary files and Parquet files
    without their JSON older than ORPHAN_AGE_S (left by writers that died) are removed."""
    parts: dict[str, dict[str, os.stat_result]] = {}
    for name, stat in _files(folder):
        key, _, kind = name.partition(".")
        if name.endswith(".tmp"):
            if remove_orphans and now - stat.st_mtime > ORPHAN_AGE_S:
                _unlink(folder / name)
            continue
        parts.setdefault(key, {})[kind] = stat
    entries = []
    for key, stats in parts.items():
        if "json" not in stats:
            if remove_orphans and now - stats["parquet"].st_mtime > ORPHAN_AGE_S:
                _unlink(folder / f"{key}.parquet")
            continue
        entries.append(_Entry(key, sum(s.st_size for s in stats.values()), stats["json"].st_mtime))
    return entries


@dataclass(frozen=True)
class CacheInfo:
    """What `kpictl cache info` shows (and `kpictl cache clear` removed)."""

    directory: Path
    enabled: bool  # False when $KPICTL_NO_CACHE is set
    entries: int
    total_bytes: int
    limit_bytes: int
    temporary_files: int = 0  # writes under way, or left by runs that died


def cache_info(directory: Path | None = None) -> CacheInfo:
    """Entries and size of the cache (default: `cache_location()`)."""
    folder = directory or cache_location()
    files = list(_files(folder))
    temporary = [s for n, s in files if n.endswith(".tmp")]
    entries = _entries(folder, time.time(), remove_orphans=False)
    return CacheInfo(
        folder,
        jsonl_cache_dir() is not None,
        len(entries),
        sum(e.size for e in entries) + sum(s.st_size for s in temporary),
        cache_limit(),
        len(temporary),
    )


def clear_cache(directory: Path | None = None) -> CacheInfo:
    """Remove every entry (and temporary file) of the cache; returns what was there."""
    folder = directory or cache_location()
    before = cache_info(folder)
    for name, _ in _files(folder):
        _unlink(folder / name)
    return before
