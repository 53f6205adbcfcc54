"""The same spec on three engines: `kpictl compute --engine polars|duckdb|spark`, timed as
whole processes, with the peak memory of the whole process tree (Spark's JVM is a child of the
Python driver), and every result row checked equal across engines.

    python benchmarks/engines.py --dataset 1M=/tmp/bench/p1m --dataset 10M=/tmp/bench/p10m \\
        --engines polars,duckdb,spark --runs 3 --markdown
    # partitioning: the same rows split into 64 Parquet files per source, Spark local[2]
    python benchmarks/engines.py --dataset 1M=/tmp/bench/p1m --engines polars,spark \\
        --partitions 64 --runs 1

A dataset is a folder with one subfolder per source of the shipped spec (`events/`,
`tool_calls/`, `business_events/`), as `kpictl sample --format parquet --out DIR` writes it.
Results agree when every (kpi, cohort, breakdown) row of one engine is in the other's with the
same `n` and `pending` and a value equal to 1e-9 relative (benchmarks/README.md).

Peak memory is sampled from /proc every 50 ms as the sum of the resident sets of the command
and all its descendants (`ru_maxrss` would give only the largest single process).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("events", "tool_calls", "business_events")
REL_TOL = 1e-9
ABS_TOL = 1e-12


@dataclass
class Run:
    """One finished command."""

    wall_s: float
    peak_rss_kb: int
    returncode: int
    stdout: str
    stderr: str


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: fields follow the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root: int) -> int:
    """The resident set of `root` and every descendant, summed (kB)."""
    tree = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kb(pid)
        todo.extend(tree.get(pid, []))
    return total


def run_measured(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> Run:
    """Run `cmd` from the repository root: wall time, and the peak of the tree's summed RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env=env)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_kb(proc.pid))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        return Run(
            wall,
            peak,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def split_dataset(folder: Path, parts: int, into: Path) -> Path:
    """The dataset's rows, each source split into `parts` Parquet files of consecutive rows
    (files named so that their sorted order is the rows' order)."""
    import polars as pl

    for source in SOURCES:
        src = folder / source
        if not src.exists():
            continue
        frame = pl.read_parquet(sorted(src.glob("*.parquet")))
        size = math.ceil(frame.height / parts)
        (into / source).mkdir(parents=True, exist_ok=True)
        for i in range(parts):
            chunk = frame.slice(i * size, size)
            chunk.write_parquet(into / source / f"{source}-{i:04d}.parquet")
    return into


def command(python: str, engine: str, folder: Path, kpis: list[str], extra: list[str]) -> list[str]:
    cmd = [python, "-m", "kpictl.cli", "compute", "-c", str(ROOT / "kpi_definitions.yaml")]
    for source in SOURCES:
        if (folder / source).exists():
            cmd += ["--source", f"{source}={folder / source}"]
    for kpi in kpis:
        cmd += ["--kpi", kpi]
    return [*cmd, "--engine", engine, "--format", "json", "--no-cache", *extra]


def _key(row: dict[str, Any]) -> str:
    return json.dumps(
        [row["kpi"], row.get("cohort"), row.get("bucket"), row.get("breakdown")], sort_keys=True
    )


def disagreements(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Every row on which two `compute --format json` documents differ."""
    mine = {_key(r): r for r in a["results"]}
    theirs = {_key(r): r for r in b["results"]}
    problems = []
    for key in sorted(set(mine) | set(theirs)):
        x, y = mine.get(key), theirs.get(key)
        if x is None or y is None:
            problems.append(f"{key}: only in one")
            continue
        for part in ("n", "pending"):
            if x.get(part) != y.get(part):
                problems.append(f"{key}: {part} {x.get(part)} vs {y.get(part)}")
        u, v = x.get("value"), y.get("value")
        same = (u is None and v is None) or (
            u is not None and v is not None and math.isclose(u, v, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        )
        if not same:
            problems.append(f"{key}: value {u!r} vs {v!r}")
    return problems


@dataclass
class Measured:
    label: str
    engine: str
    events: int
    runs: list[Run] = field(default_factory=list)
    document: dict[str, Any] | None = None
    note: str = ""


def count_events(folder: Path) -> int:
    import polars as pl

    files = sorted((folder / "events").glob("*.parquet"))
    return int(pl.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", action="append", required=True, help="LABEL=FOLDER")
    parser.add_argument("--engines", default="polars,duckdb,spark")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine (median)")
    parser.add_argument("--kpi", action="append", default=[], help="only these KPIs")
    parser.add_argument("--by", action="append", default=[], help="--by columns")
    parser.add_argument("--partitions", type=int, default=0, help="split each source first")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    rows: list[Measured] = []
    scratch = Path(tempfile.mkdtemp(prefix="kpictl-engines-"))
    try:
        for spec in args.dataset:
            label, _, path = spec.partition("=")
            folder = Path(path)
            if args.partitions:
                folder = split_dataset(folder, args.partitions, scratch / label)
                label = f"{label} ({args.partitions} files per source)"
            events = count_events(folder)
            reference: dict[str, Any] | None = None
            for engine in engines:
                extra = [f"--by={b}" for b in args.by]
                if engine == "spark":
                    extra += ["--spark-master", args.spark_master]
                cmd = command(args.python, engine, folder, args.kpi, extra)
                measured = Measured(label, engine, events)
                for i in range(args.runs):
                    run = run_measured(cmd, args.timeout)
                    print(
                        f"{label} {engine} run {i + 1}/{args.runs}: {run.wall_s:.1f} s, "
                        f"{run.peak_rss_kb / 1e6:.2f} GB, exit {run.returncode}",
                        file=sys.stderr,
                    )
                    if run.returncode != 0:
                        measured.note = run.stderr.strip().splitlines()[-1:][0][:200]
                        break
                    measured.runs.append(run)
                if measured.runs:
                    measured.document = json.loads(measured.runs[-1].stdout)
                    if reference is None:
                        reference = measured.document
                        measured.note = "reference"
                    else:
                        problems = disagreements(reference, measured.document)
                        measured.note = (
                            f"agrees ({len(measured.document['results'])} rows)"
                            if not problems
                            else f"{len(problems)} rows differ: {problems[0]}"
                        )
                rows.append(measured)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows, args.markdown)
    return 0 if all(m.runs and "differ" not in m.note for m in rows) else 1


def print_table(rows: list[Measured], markdown: bool) -> None:
    header = ["data", "engine", "events", "runs", "median s", "peak RSS GB", "vs first", "rows"]
    lines = []
    first: dict[str, float] = {}
    for m in rows:
        if not m.runs:
            lines.append([m.label, m.engine, f"{m.events:,}", "0", "-", "-", "-", m.note])
            continue
        wall = statistics.median(r.wall_s for r in m.runs)
        base = first.setdefault(m.label, wall)
        lines.append(
            [
                m.label,
                m.engine,
                f"{m.events:,}",
                str(len(m.runs)),
                f"{wall:.1f}",
                f"{max(r.peak_rss_kb for r in m.runs) / 1e6:.2f}",
                f"{wall / base:.2f}x",
                m.note,
            ]
        )
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("| " + " | ".join("---" for _ in header) + " |")
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
        for line in [header, *lines]:
            print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=False)))


if __name__ == "__main__":
    raise SystemExit(main())
