"""The JSONL cache never returns a wrong number: entries are keyed by content, checked against
their checksum, written privately, bounded, and an unusable cache folder never fails a run."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from conftest import FileReads, JsonlWriter, parsed, sample_sources
from kpictl.cli import app
from kpictl.io.cache import ORPHAN_AGE_S
from kpictl.io.read import ColumnRule, LoadedSource, SourceRequest, load_source
from kpictl.sample import write_sample

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
TS_RULE = ColumnRule("ts", "ts", type="timestamp")
Rows = list[dict[str, object]]
runner = CliRunner()


def cached_load(path: Path, cache: Path | None) -> LoadedSource:
    return load_source(
        SourceRequest("events", (str(path),), path.parent, (TS_RULE,), cache_dir=cache)
    )


def entry_of(cache: Path, path: Path) -> tuple[Path, Path]:
    """The (JSON, Parquet) files of a file's entry."""
    for meta in cache.glob("*.json"):
        if json.loads(meta.read_text())["data"]["path"] == str(path):
            return meta, meta.with_suffix(".parquet")
    raise AssertionError(f"no entry for {path}")


def damaged(path: Path, why: str) -> str:
    return f"cache: the entry for {path} was damaged ({why}); removed, and the file parsed again"


def off(why: str) -> str:
    return (
        f"cache: {why}; JSONL files are parsed without the cache in this run (set "
        "KPICTL_CACHE_DIR to a writable folder, or KPICTL_NO_CACHE=1)"
    )


# ---------------------------------------------------------------------------------------------
# keyed by content
# ---------------------------------------------------------------------------------------------


def test_an_edit_that_keeps_size_and_modification_time_is_read(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows, file_reads: FileReads
) -> None:
    path = write_jsonl("e.jsonl", event_rows)
    cache = tmp_path / "cache"
    before = os.stat(path)
    assert cached_load(path, cache).frame.collect()["input_tokens"].to_list() == [120, None, 40]
    # the same number of bytes, other numbers; the modification time put back
    path.write_text(path.read_text().replace('"input_tokens": 120', '"input_tokens": 999'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    reads = file_reads()
    assert cached_load(path, cache).frame.collect()["input_tokens"].to_list() == [999, None, 40]
    assert parsed(reads) == [path]
    # unchanged bytes hit the cache even when the file is touched
    os.utime(path)
    assert cached_load(path, cache).frame.collect()["input_tokens"].to_list() == [999, None, 40]
    assert parsed(reads) == [path]


# ---------------------------------------------------------------------------------------------
# checksums: a damaged or forged entry is removed, noted, and the file parsed again
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "why"),
    [
        ("json", "not JSON"),
        ("parquet", "its Parquet file does not match the checksum"),
    ],
)
def test_a_truncated_entry_is_removed_and_the_file_parsed_again(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows, part: str, why: str
) -> None:
    path = write_jsonl("e.jsonl", event_rows)
    cache = tmp_path / "cache"
    truth = cached_load(path, None).frame.collect()
    cached_load(path, cache)
    meta, parquet = entry_of(cache, path)
    damaged_file = meta if part == "json" else parquet
    damaged_file.write_bytes(damaged_file.read_bytes()[: damaged_file.stat().st_size // 2])
    again = cached_load(path, cache)
    assert_frame_equal(again.frame.collect(), truth)
    assert again.cache_notes == (damaged(path, why),)
    # the entry was written anew: the next run reads it and says nothing
    third = cached_load(path, cache)
    assert third.cache_notes == ()
    assert_frame_equal(third.frame.collect(), truth)


def test_no_single_bit_flip_in_an_entry_changes_a_number_or_fails_the_run(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    path = write_jsonl("e.jsonl", event_rows)
    cache = tmp_path / "cache"
    truth = cached_load(path, None)
    cached_load(path, cache)
    meta, parquet = entry_of(cache, path)
    sizes = {meta: meta.stat().st_size, parquet: parquet.stat().st_size}
    flips = [(meta, offset) for offset in range(sizes[meta])]
    step = max(1, sizes[parquet] // 97)
    flips += [(parquet, offset) for offset in range(0, sizes[parquet], step)]
    noted = 0
    for number, (target, offset) in enumerate(flips):
        data = bytearray(target.read_bytes())
        data[offset] ^= 1 << (number % 8)
        target.write_bytes(bytes(data))
        loaded = cached_load(path, cache)
        assert_frame_equal(loaded.frame.collect(), truth.frame.collect())
        assert loaded.files == truth.files
        assert loaded.cache_notes in (
            (),
            (damaged(path, "not JSON"),),
            (damaged(path, "checksum mismatch"),),
            (damaged(path, "not a cache entry"),),
            (damaged(path, "its Parquet file does not match the checksum"),),
        )
        noted += bool(loaded.cache_notes)
    assert noted == len(flips)  # every flip is caught (and the entry written anew)


def test_an_entry_copied_under_another_key_is_refused(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    first = write_jsonl("a.jsonl", event_rows[:1])
    second = write_jsonl("b.jsonl", event_rows[1:])
    cache = tmp_path / "cache"
    cached_load(first, cache)
    cached_load(second, cache)
    (meta_a, parquet_a), (meta_b, parquet_b) = entry_of(cache, first), entry_of(cache, second)
    meta_b.write_bytes(meta_a.read_bytes())  # a sound entry, for another file
    parquet_b.write_bytes(parquet_a.read_bytes())
    loaded = cached_load(second, cache)
    assert loaded.frame.collect()["conversation_id"].to_list() == ["c1", "c2"]
    assert loaded.cache_notes == (damaged(second, "written for another entry"),)


# ---------------------------------------------------------------------------------------------
# the cache folder
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("logs")
    write_sample(out, conversations=60, seed=5, days=5, fmt="jsonl")
    return out


def compute(logs: Path, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app,
        [
            "compute",
            str(logs / "events"),
            *sample_sources(logs),
            "-c",
            str(SPEC),
            "-f",
            "json",
            "--kpi",
            "task_completion_rate",
            *extra,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def kpis(out: str) -> list[object]:
    return json.loads(out)["results"]


def test_a_damaged_entry_is_a_note_and_the_same_kpis(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPICTL_CACHE_DIR", str(tmp_path / "cache"))
    code, expected, err = compute(logs, "--no-cache")
    assert (code, err) == (0, "")
    assert compute(logs)[:1] == (0,)
    meta, _ = entry_of(tmp_path / "cache", logs / "events" / "events.jsonl")
    meta.write_bytes(meta.read_bytes()[:40])
    code, out, err = compute(logs)
    assert (code, kpis(out)) == (0, kpis(expected))
    assert err == f"kpictl: note: {damaged(logs / 'events' / 'events.jsonl', 'not JSON')}\n"


@pytest.mark.parametrize(
    ("where", "why"),
    [
        ("a-file", "not a folder"),
        ("a-file/cache", "a part of its path is a file"),
    ],
)
def test_an_unusable_cache_folder_turns_the_cache_off_with_a_note(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch, where: str, why: str
) -> None:
    (tmp_path / "a-file").write_text("in the way")
    monkeypatch.setenv("KPICTL_CACHE_DIR", str(tmp_path / where))
    expected = compute(logs, "--no-cache")[1]
    code, out, err = compute(logs)
    assert (code, kpis(out)) == (0, kpis(expected))
    assert err == f"kpictl: note: {off(f'{tmp_path / where} cannot be used ({why})')}\n"


# A full disk, as a process sees it: writing a file past 4 KiB fails with EFBIG (the signal
# ignored). Set in the child itself: a preexec_fn may deadlock when the parent runs threads.
SMALL_FILES_ONLY = (
    "import resource, signal\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
    "from kpictl.cli import main\n"
    "main()\n"
)


def test_a_cache_that_cannot_be_written_is_turned_off_with_a_note(
    tmp_path: Path, logs: Path
) -> None:
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "KPICTL_CACHE_DIR": str(cache),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    command = [
        sys.executable,
        "-c",
        SMALL_FILES_ONLY,
        "compute",
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "-f",
        "json",
        "--kpi",
        "task_completion_rate",
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert kpis(run.stdout) == kpis(compute(logs, "--no-cache")[1])
    (line,) = run.stderr.splitlines()
    assert line.startswith(f"kpictl: note: cache: cannot write to {cache} (")
    assert "File too large" in line and line.endswith(off("")[len("cache: ") :])
    assert list(cache.iterdir()) == []  # no temporary file left behind


def test_entries_are_private_and_orphan_temporary_files_are_removed(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    old, fresh = time.time() - ORPHAN_AGE_S - 60, time.time() - 60
    orphans = {
        name: stamp
        for name, stamp in [
            ("0123456789abcdef0123456789abcdef.parquet.123-0badf00d.tmp", old),
            ("0123456789abcdef0123456789abcdef.json.123-0badf00d.tmp", fresh),  # a writer at work
            ("fedcba9876543210fedcba9876543210.parquet", old),  # its JSON never written
            ("notes.txt", old),  # not the cache's: never touched
        ]
    }
    for name, stamp in orphans.items():
        (cache / name).write_text("x")
        os.utime(cache / name, (stamp, stamp))
    path = write_jsonl("e.jsonl", event_rows)
    cached_load(path, cache)
    meta, parquet = entry_of(cache, path)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [
            meta.name,
            parquet.name,
            "0123456789abcdef0123456789abcdef.json.123-0badf00d.tmp",
            "notes.txt",
        ]
    )
    assert stat.S_IMODE(meta.stat().st_mode) == stat.S_IMODE(parquet.stat().st_mode) == 0o600
    created = tmp_path / "new" / "cache"
    cached_load(path, created)
    assert stat.S_IMODE(created.stat().st_mode) == 0o700


def test_past_its_limit_the_least_recently_used_entries_are_removed(
    tmp_path: Path,
    write_jsonl: JsonlWriter,
    event_rows: Rows,
    monkeypatch: pytest.MonkeyPatch,
    file_reads: FileReads,
) -> None:
    cache = tmp_path / "cache"
    files = {name: write_jsonl(f"{name}.jsonl", event_rows * 20) for name in "abc"}
    files["d"] = write_jsonl("d.jsonl", event_rows[:1])  # a smaller entry
    for hours, name in enumerate("cba", start=1):  # a used 3 hours ago, b 2, c 1
        cached_load(files[name], cache)
        meta, _ = entry_of(cache, files[name])
        os.utime(meta, (time.time() - hours * 3600,) * 2)
    total = sum(p.stat().st_size for p in cache.iterdir())
    reads = file_reads()
    cached_load(files["a"], cache)  # a hit: a is now the most recently used
    assert parsed(reads) == []
    monkeypatch.setenv("KPICTL_CACHE_MAX_BYTES", str(total - 1))
    cached_load(files["d"], cache)  # a new entry: over the limit, b (least recently used) goes
    kept = sorted(json.loads(p.read_text())["data"]["path"] for p in cache.glob("*.json"))
    assert kept == [str(files[n]) for n in "acd"]
    assert sum(p.stat().st_size for p in cache.iterdir()) <= total - 1


def test_a_load_of_many_files_lists_the_cache_folder_once(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing the folder after every write made a first run on 400 files into a cache of
    2,000 entries take 49 s instead of 4 s."""
    for i in range(30):
        write_jsonl(f"logs/part-{i}.jsonl", [{**event_rows[0], "conversation_id": f"c{i}"}])
    listed: list[object] = []
    real = os.scandir

    def scandir(path: object) -> object:
        listed.append(path)
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    cache = tmp_path / "cache"
    loaded = cached_load(tmp_path / "logs", cache)
    assert [p for p in listed if Path(str(p)) == cache] == [cache]
    assert loaded.rows == 30 and len(list(cache.glob("*.json"))) == 30


def test_an_entry_larger_than_the_limit_is_not_kept(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPICTL_CACHE_MAX_BYTES", "1K")
    path = write_jsonl("e.jsonl", event_rows)
    loaded = cached_load(path, tmp_path / "cache")
    (note,) = loaded.cache_notes
    assert note.startswith(f"cache: {path} is not kept: its entry (")
    assert note.endswith(
        "bytes) is larger than the cache limit (1,024 bytes, KPICTL_CACHE_MAX_BYTES)"
    )
    assert list((tmp_path / "cache").iterdir()) == []
    assert loaded.rows == 3


def test_a_cache_limit_of_zero_keeps_nothing_and_a_bad_limit_is_a_usage_error(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPICTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KPICTL_CACHE_MAX_BYTES", "0")
    code, _, err = compute(logs)
    assert (code, err) == (0, "")
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv("KPICTL_CACHE_MAX_BYTES", "lots")
    code, _, err = compute(logs)
    assert (code, err) == (
        2,
        "kpictl: error: KPICTL_CACHE_MAX_BYTES='lots': expected a size in "
        "bytes such as 2000000000, 500M or 2G\n",
    )


def test_the_cache_keeps_parquet_types(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    path = write_jsonl("e.jsonl", event_rows)
    cached_load(path, tmp_path / "cache")
    _, parquet = entry_of(tmp_path / "cache", path)
    assert pl.read_parquet_schema(parquet)["ts"] == pl.Datetime("us", "UTC")


# ---------------------------------------------------------------------------------------------
# kpictl cache info | clear
# ---------------------------------------------------------------------------------------------


def test_cache_info_and_clear(tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("KPICTL_CACHE_DIR", str(cache))
    monkeypatch.setenv("KPICTL_CACHE_MAX_BYTES", "500M")
    assert compute(logs)[0] == 0
    (cache / "0123456789abcdef0123456789abcdef.json.1-0badf00d.tmp").write_bytes(b"x" * 10)
    (cache / "notes.txt").write_text("not the cache's")
    size = sum(p.stat().st_size for p in cache.iterdir() if p.name != "notes.txt")
    assert len(list(cache.glob("*.json"))) == 3  # events, tool calls, business events
    result = runner.invoke(app, ["cache", "info"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"location: {cache}\nstate: on\nentries: 3\n"
        f"size: {size:,} bytes ({size / 1024:.1f} KiB)\n"
        "limit: 524,288,000 bytes (500.0 MiB); set KPICTL_CACHE_MAX_BYTES to change it\n"
        "temporary files: 1 (writes under way, or left by runs that were killed; removed after "
        "an hour)\n"
    )
    result = runner.invoke(app, ["cache", "clear"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == (
        f"kpictl: removed 3 entries ({size:,} bytes ({size / 1024:.1f} KiB)) from {cache}\n"
    )
    assert [p.name for p in cache.iterdir()] == ["notes.txt"]
    monkeypatch.setenv("KPICTL_NO_CACHE", "1")
    result = runner.invoke(app, ["cache", "info"])
    assert result.stdout.splitlines()[:3] == [
        f"location: {cache}",
        "state: off (KPICTL_NO_CACHE is set)",
        "entries: 0",
    ]


def test_cache_info_of_a_cache_that_does_not_exist_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPICTL_CACHE_DIR", str(tmp_path / "nowhere"))
    monkeypatch.delenv("KPICTL_CACHE_MAX_BYTES", raising=False)
    result = runner.invoke(app, ["cache", "info"])
    assert (result.exit_code, result.stdout) == (
        0,
        (
            f"location: {tmp_path / 'nowhere'}\nstate: on\nentries: 0\nsize: 0 bytes\n"
            "limit: 2,147,483,648 bytes (2.0 GiB); set KPICTL_CACHE_MAX_BYTES to change it\n"
        ),
    )
    result = runner.invoke(app, ["cache", "clear"])
    assert (result.exit_code, result.stderr) == (
        0,
        f"kpictl: removed 0 entries (0 bytes) from {tmp_path / 'nowhere'}\n",
    )
    assert not (tmp_path / "nowhere").exists()
