"""Benchmark `kpictl compute` against the hand-written polars reference, whole processes.

For every size × format: generate (or reuse) synthetic logs with `kpictl sample`, run the
commands once as a warm-up, then `--runs` times each, alternating, and report the median wall
time and the peak RSS of each process (from `os.wait4`, so each figure is that one child's).
Every KPI row (value to 1e-9 relative, n, pending) must agree between kpictl and the reference;
disagreements are listed and make the exit status 1.

Besides compute vs the reference it measures, per the performance issue:

* `kpictl compare --baseline holdout` against `kpictl compute` on the same data;
* `kpictl report` (the scorecard, baseline holdout) and `kpictl report --by channel --by intent`
  against compare and report, with their peak RSS;
* JSONL with kpictl's Parquet cache: the first run with an empty (private) cache directory, the
  cached runs, and the Parquet run of the same size (cached JSONL / Parquet); the main table's
  kpictl JSONL figure is the parse-every-time one (`KPICTL_NO_CACHE=1`);
* start-up (`kpictl --version`, `kpictl --help`);
* large cases (≥ `--large`, e.g. 100M events): compute and the reference once each, no warm-up;
* cost growth: kpictl's time per event at each size, and whether it grows linearly.

kpictl never touches the user's cache: every kpictl process gets KPICTL_CACHE_DIR set to a
temporary directory that is removed at the end.

    python benchmarks/run.py --events 1M,10M --formats parquet,jsonl --runs 3 [--markdown]
    python benchmarks/run.py --only 100M-parquet --dataset 100M-parquet=/tmp/k100
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
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

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).resolve().parent / "reference_polars.py"
EVENTS_PER_CONVERSATION = 7.3  # what `kpictl sample` generates on average
DAYS = 30
REL_TOL = 1e-9
ABS_TOL = 1e-12
MARKER = ".kpictl-bench.json"  # hidden: neither kpictl nor the reference reads it
BASELINE = "holdout"  # the randomized-holdout baseline declared in the shipped spec

# Targets of the performance issue (2-core machine; ratios measured in one run).
TARGET_RATIO_10M_PARQUET = 1.3  # kpictl compute / reference, 10M Parquet
TARGET_RSS_10M_PARQUET_GB = 1.5
TARGET_STARTUP_S = 0.3  # kpictl --version
TARGET_CACHED_JSONL_RATIO = 1.5  # cached JSONL / Parquet, same size
TARGET_COMPARE_RATIO = 1.5  # compare / compute, 10M (issue 11; the issue before: 2x)
TARGET_REPORT_RATIO = 1.5  # report / compare, 10M
TARGET_REPORT_RSS_GB = 2.0  # report's peak RSS, 10M
TARGET_REPORT_BY_RATIO = 2.0  # report --by channel --by intent / report, 10M
REPORT_BY = ("--by", "channel", "--by", "intent")
STARTUP_RUNS = 7


# ---------------------------------------------------------------------------------------------
# Running one process
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished child process."""

    wall_s: float
    max_rss_kb: int
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float = 0.0  # user + system CPU of that child: steadier than wall on a shared host


def run_measured(
    cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Run:
    """Run `cmd`; wall time around spawn…reap, peak RSS and CPU of that child from `os.wait4`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Run(
            wall_s=wall,
            max_rss_kb=int(usage.ru_maxrss),  # kilobytes on Linux
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            cpu_s=usage.ru_utime + usage.ru_stime,
        )


def failure(run: Run, what: str) -> str:
    tail = "\n".join(run.stderr.strip().splitlines()[-15:])
    reason = "killed (timeout or out of memory)" if run.returncode == -9 else "failed"
    return f"{what} {reason} with exit status {run.returncode} after {run.wall_s:.0f} s:\n{tail}"


def checked(run: Run, what: str) -> Run:
    if run.returncode != 0:
        raise SystemExit(failure(run, what))
    return run


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """'1M' → 1_000_000, '500K' → 500_000, '2500000' → 2_500_000."""
    text = text.strip().upper().replace("_", "")
    scale = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    return int(float(number) * scale)


def size_label(events: int) -> str:
    for unit, scale in (("M", 1_000_000), ("K", 1_000)):
        if events >= scale and events % (scale // 10) == 0:
            return f"{events / scale:g}{unit}"
    return str(events)


def _has_files(folder: Path, fmt: str) -> bool:
    """events/ and tool_calls/ each hold at least one file (one file, or -partNN parts)."""
    return all(any((folder / name).glob(f"{name}*.{fmt}")) for name in ("events", "tool_calls"))


def ensure_data(
    data_dir: Path,
    kpictl: str,
    events: int,
    fmt: str,
    timeout: float,
    datasets: dict[tuple[int, str], Path] | None = None,
) -> Path:
    """DATA_DIR/events-<size>-<format>, generated by `kpictl sample` unless already there.

    A folder given with `--dataset SIZE-FORMAT=PATH` is used as it is (never generated)."""
    if datasets and (events, fmt) in datasets:
        folder = datasets[(events, fmt)]
        if not _has_files(folder, fmt):
            raise SystemExit(f"--dataset {folder}: no events/ and tool_calls/ {fmt} files")
        return folder
    conversations = max(1, round(events / EVENTS_PER_CONVERSATION))
    folder = data_dir / f"events-{size_label(events)}-{fmt}"
    wanted = {"conversations": conversations, "format": fmt, "days": DAYS}
    marker = folder / MARKER
    if marker.is_file() and _has_files(folder, fmt):
        try:
            if json.loads(marker.read_text()) == wanted:
                return folder
        except ValueError:
            pass
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log(f"generating {conversations:,} conversations ({fmt}) into {folder} …")
    cmd = [
        kpictl,
        "sample",
        "--conversations",
        str(conversations),
        "--out",
        str(folder),
        "--format",
        fmt,
        "--days",
        str(DAYS),
    ]
    run = checked(run_measured(cmd, ROOT, timeout), "kpictl sample")
    log(f"  generated in {run.wall_s:.1f} s (peak RSS {run.max_rss_kb / 1e6:.2f} GB)")
    marker.write_text(json.dumps(wanted))
    return folder


def read_through(folder: Path) -> None:
    """Read every data file once, so a single timed run does not pay for a cold page cache."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            with path.open("rb") as handle:
                while handle.read(16 << 20):
                    pass


# ---------------------------------------------------------------------------------------------
# Comparing results
# ---------------------------------------------------------------------------------------------


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return row["kpi"], json.dumps(row.get("breakdown"), sort_keys=True)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def compare(kpictl_doc: dict[str, Any], reference_doc: dict[str, Any]) -> list[str]:
    """Every disagreement between the two outputs' overall rows, as text."""
    problems: list[str] = []
    if kpictl_doc.get("as_of") != reference_doc.get("as_of"):
        problems.append(
            f"as_of: kpictl {kpictl_doc.get('as_of')} vs reference {reference_doc.get('as_of')}"
        )
    theirs = {_key(r): r for r in reference_doc["results"]}
    # the KPIs the reference computes (it has no business outcomes: no CRM export is read)
    computed = {r["kpi"] for r in reference_doc["results"]}
    mine = {
        _key(r): r for r in kpictl_doc["results"] if r.get("cohort") == {} and r["kpi"] in computed
    }
    for key in sorted(set(mine) | set(theirs)):
        label = key[0] + ("" if key[1] == "null" else f" {key[1]}")
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None:
            problems.append(f"{label}: only in {'reference' if a is None else 'kpictl'}")
            continue
        for part in ("n", "pending"):
            if a[part] != b[part]:
                problems.append(f"{label}: {part} kpictl {a[part]} vs reference {b[part]}")
        if not _close(a["value"], b["value"]):
            problems.append(f"{label}: value kpictl {a['value']!r} vs reference {b['value']!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """Measurements of one size × format."""

    label: str
    fmt: str
    events: int
    kpictl: list[Run] = field(default_factory=list)
    reference: list[Run] = field(default_factory=list)
    compare: list[Run] = field(default_factory=list)  # `kpictl compare --baseline holdout`
    report: list[Run] = field(default_factory=list)  # `kpictl report` (baseline holdout)
    report_by: list[Run] = field(default_factory=list)  # `… report --by channel --by intent`
    problems: list[str] = field(default_factory=list)
    single: bool = False  # a large case: one run of each command, no warm-up
    reference_note: str = ""  # why the reference has no runs
    # JSONL with the cache: first run into an empty cache dir, cached run, Parquet run
    cold: list[Run] = field(default_factory=list)
    cached: list[Run] = field(default_factory=list)
    parquet: list[Run] = field(default_factory=list)
    cache_problems: list[str] = field(default_factory=list)

    @staticmethod
    def median_wall(runs: list[Run]) -> float:
        return statistics.median(r.wall_s for r in runs)

    @staticmethod
    def median_cpu(runs: list[Run]) -> float:
        return statistics.median(r.cpu_s for r in runs)

    @staticmethod
    def peak_gb(runs: list[Run]) -> float:
        return max(r.max_rss_kb for r in runs) / 1e6  # kB → GB (10^9 bytes)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def log_run(i: int, runs: int, name: str, run: Run) -> None:
    log(f"  run {i + 1}/{runs} {name:<10} {run.wall_s:7.2f} s {run.max_rss_kb / 1e6:5.2f} GB")


class Envs:
    """Environments of the child processes; kpictl's cache always in a private temp dir."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kpictl-bench-cache-"))
        self._count = 0
        base = {k: v for k, v in os.environ.items() if k not in ("KPICTL_NO_CACHE",)}
        base["KPICTL_CACHE_DIR"] = str(self.root / "unused")
        self.base = base
        # parse every time (the main table): the cache is off
        self.no_cache = {**base, "KPICTL_NO_CACHE": "1"}

    def fresh_cache(self) -> dict[str, str]:
        """The cache on, in a new empty directory."""
        self._count += 1
        folder = self.root / f"cache-{self._count}"
        folder.mkdir()
        return {**self.base, "KPICTL_CACHE_DIR": str(folder)}

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def compute_cmd(args: argparse.Namespace, folder: Path) -> list[str]:
    events_path, tools_path = str(folder / "events"), str(folder / "tool_calls")
    return [
        args.kpictl,
        "compute",
        events_path,
        "--source",
        f"tool_calls={tools_path}",
        "--format",
        "json",
    ]


def compare_cmd(args: argparse.Namespace, folder: Path) -> list[str]:
    events_path, tools_path = str(folder / "events"), str(folder / "tool_calls")
    return [
        args.kpictl,
        "compare",
        events_path,
        "--source",
        f"tool_calls={tools_path}",
        "--baseline",
        BASELINE,
        "--format",
        "json",
    ]


def report_cmd(args: argparse.Namespace, folder: Path, *extra: str) -> list[str]:
    events_path, tools_path = str(folder / "events"), str(folder / "tool_calls")
    return [
        args.kpictl,
        "report",
        events_path,
        "--source",
        f"tool_calls={tools_path}",
        "--baseline",
        BASELINE,
        *extra,
    ]


def _check_report(run: Run) -> None:
    if not run.stdout.startswith("#"):
        raise SystemExit("kpictl report printed no scorecard")


def reference_cmd(args: argparse.Namespace, folder: Path) -> list[str]:
    return [args.python, str(REFERENCE), str(folder / "events"), str(folder / "tool_calls")]


def _events_of(doc: dict[str, Any]) -> int:
    return sum(i["rows"] for i in doc.get("inputs", []) if i["source"] == "events")


def _check_compare(run: Run) -> None:
    doc = json.loads(run.stdout)
    if not doc.get("results"):
        raise SystemExit("kpictl compare printed no results")


def bench_case(folder: Path, label: str, fmt: str, args: argparse.Namespace, envs: Envs) -> Case:
    """compute and the reference (and compare), warm-up then `--runs` alternating runs."""
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "kpictl": (compute_cmd(args, folder), envs.no_cache),
        "reference": (reference_cmd(args, folder), envs.base),
    }
    if not args.no_compare:
        commands["compare"] = (compare_cmd(args, folder), envs.no_cache)
    if not args.no_report:
        commands["report"] = (report_cmd(args, folder), envs.no_cache)
        commands["report_by"] = (report_cmd(args, folder, *REPORT_BY), envs.no_cache)
    log(f"[{label} {fmt}] warm-up …")
    warm = {
        name: checked(run_measured(cmd, ROOT, args.timeout, env), name)
        for name, (cmd, env) in commands.items()
    }
    kpictl_doc = json.loads(warm["kpictl"].stdout)
    reference_doc = json.loads(warm["reference"].stdout)
    if "compare" in warm:
        _check_compare(warm["compare"])
    for name in ("report", "report_by"):
        if name in warm:
            _check_report(warm[name])
    case = Case(label, fmt, _events_of(kpictl_doc), problems=compare(kpictl_doc, reference_doc))
    for problem in case.problems:
        log(f"  DISAGREEMENT {problem}")
    for i in range(args.runs):
        for name, (cmd, env) in commands.items():  # alternating: k, r, c, k, r, c, …
            run = checked(run_measured(cmd, ROOT, args.timeout, env), name)
            getattr(case, name).append(run)
            log_run(i, args.runs, name, run)
    if fmt == "jsonl" and not args.no_jsonl_cache:
        bench_cache(case, folder, reference_doc, args, envs)
    return case


def bench_single(folder: Path, label: str, fmt: str, args: argparse.Namespace, envs: Envs) -> Case:
    """A large case: compute once and the reference once, no warm-up (too slow to repeat)."""
    log(f"[{label} {fmt}] reading the files once (page cache) …")
    read_through(folder)
    log(f"[{label} {fmt}] one run each …")
    run = checked(
        run_measured(compute_cmd(args, folder), ROOT, args.timeout, envs.no_cache), "kpictl"
    )
    log_run(0, 1, "kpictl", run)
    kpictl_doc = json.loads(run.stdout)
    case = Case(label, fmt, _events_of(kpictl_doc), kpictl=[run], single=True)
    if args.large_no_reference:
        case.reference_note = "not run (--large-no-reference)"
        return case
    ref = run_measured(reference_cmd(args, folder), ROOT, args.timeout, envs.base)
    if ref.returncode != 0:
        case.reference_note = failure(ref, "reference").splitlines()[0]
        log(f"  {case.reference_note}")
        return case
    log_run(0, 1, "reference", ref)
    case.reference = [ref]
    case.problems = compare(kpictl_doc, json.loads(ref.stdout))
    for problem in case.problems:
        log(f"  DISAGREEMENT {problem}")
    return case


def bench_cache(
    case: Case,
    folder: Path,
    reference_doc: dict[str, Any],
    args: argparse.Namespace,
    envs: Envs,
) -> None:
    """JSONL with the cache on: per round, a new empty cache dir, the first (parsing) run, a
    cached run, and the Parquet run of the same size — alternating, so the ratio is fair."""
    parquet_folder = ensure_data(
        args.data_dir, args.kpictl, parse_size(case.label), "parquet", args.timeout, args.datasets
    )
    parquet = compute_cmd(args, parquet_folder)
    jsonl = compute_cmd(args, folder)
    log(f"[{case.label} jsonl] with the cache, vs {case.label} parquet: warm-up …")
    checked(run_measured(parquet, ROOT, args.timeout, envs.no_cache), "kpictl (parquet)")
    for i in range(args.runs):
        env = envs.fresh_cache()
        cold = checked(run_measured(jsonl, ROOT, args.timeout, env), "kpictl (empty cache)")
        written = sorted(Path(env["KPICTL_CACHE_DIR"]).glob("*.parquet"))
        if not written and not case.cache_problems:
            case.cache_problems.append("the first run wrote no cache entry")
        cached = checked(run_measured(jsonl, ROOT, args.timeout, env), "kpictl (cached)")
        par = checked(run_measured(parquet, ROOT, args.timeout, envs.no_cache), "parquet")
        for name, run in (("first", cold), ("cached", cached), ("parquet", par)):
            log_run(i, args.runs, name, run)
        case.cold.append(cold)
        case.cached.append(cached)
        case.parquet.append(par)
        if i == 0:
            for doc_run, what in ((cold, "first run"), (cached, "cached run")):
                for problem in compare(json.loads(doc_run.stdout), reference_doc):
                    case.cache_problems.append(f"{what}: {problem}")
        shutil.rmtree(env["KPICTL_CACHE_DIR"], ignore_errors=True)
    for problem in case.cache_problems:
        log(f"  DISAGREEMENT (cache) {problem}")


def startup(args: argparse.Namespace, envs: Envs, runs: int = STARTUP_RUNS) -> dict[str, float]:
    """Median wall time of `kpictl --version`, `kpictl --help` and a bare interpreter start."""
    cmds = {
        "kpictl --version": [args.kpictl, "--version"],
        "kpictl --help": [args.kpictl, "--help"],
        "python -c pass": [args.python, "-c", "pass"],
    }
    walls: dict[str, list[float]] = {name: [] for name in cmds}
    for name, cmd in cmds.items():
        checked(run_measured(cmd, ROOT, args.timeout, envs.base), name)  # warm-up
    for _ in range(runs):  # alternating
        for name, cmd in cmds.items():
            run = checked(run_measured(cmd, ROOT, args.timeout, envs.base), name)
            walls[name].append(run.wall_s)
    return {name: statistics.median(w) for name, w in walls.items()}


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    right: set[str]  # right-aligned (numeric) columns


def _fmt_s(runs: list[Run]) -> str:
    return f"{Case.median_wall(runs):.2f}" if runs else "—"


def _fmt_gb(runs: list[Run]) -> str:
    return f"{Case.peak_gb(runs):.2f}" if runs else "—"


def _rate(events: int, runs: list[Run]) -> str:
    return f"{events / Case.median_wall(runs) / 1e6:.2f}M" if runs else "—"


def _ratio(num: list[Run], den: list[Run]) -> str:
    return f"{Case.median_wall(num) / Case.median_wall(den):.2f}x" if num and den else "—"


def main_table(cases: list[Case]) -> Table:
    headers = [
        "size",
        "format",
        "events",
        "runs",
        "kpictl median s",
        "reference median s",
        "ratio",
        "kpictl events/s",
        "reference events/s",
        "kpictl peak RSS GB",
        "reference peak RSS GB",
        "KPIs agree",
    ]
    rows = []
    for c in cases:
        agree = f"NO ({len(c.problems)})" if c.problems else "yes" if c.reference else "—"
        rows.append(
            [
                c.label,
                c.fmt,
                f"{c.events:,}",
                str(len(c.kpictl)),
                _fmt_s(c.kpictl),
                _fmt_s(c.reference),
                _ratio(c.kpictl, c.reference),
                _rate(c.events, c.kpictl),
                _rate(c.events, c.reference),
                _fmt_gb(c.kpictl),
                _fmt_gb(c.reference),
                agree,
            ]
        )
    return Table(headers, rows, set(headers[2:-1]))


def cache_table(cases: list[Case]) -> Table | None:
    cases = [c for c in cases if c.cached]
    if not cases:
        return None
    headers = [
        "size",
        "events",
        "first run (empty cache) s",
        "cached s",
        "no cache s",
        "parquet s",
        "cached / parquet",
        f"≤ {TARGET_CACHED_JSONL_RATIO:g}x",
        "first run peak RSS GB",
        "cached peak RSS GB",
        "KPIs agree",
    ]
    rows = []
    for c in cases:
        ratio = Case.median_wall(c.cached) / Case.median_wall(c.parquet)
        rows.append(
            [
                c.label,
                f"{c.events:,}",
                _fmt_s(c.cold),
                _fmt_s(c.cached),
                _fmt_s(c.kpictl),
                _fmt_s(c.parquet),
                f"{ratio:.2f}x",
                "yes" if ratio <= TARGET_CACHED_JSONL_RATIO else "no",
                _fmt_gb(c.cold),
                _fmt_gb(c.cached),
                "yes" if not c.cache_problems else f"NO ({len(c.cache_problems)})",
            ]
        )
    return Table(headers, rows, set(headers[1:7]) | set(headers[8:10]))


def compare_table(cases: list[Case]) -> Table | None:
    cases = [c for c in cases if c.compare]
    if not cases:
        return None
    headers = [
        "size",
        "format",
        "compute median s",
        "compare median s",
        "compare / compute",
        f"≤ {TARGET_COMPARE_RATIO:g}x",
        "compute peak RSS GB",
        "compare peak RSS GB",
        "compare / compute CPU",  # user + system: what other load on the host changes least
    ]
    rows = []
    for c in cases:
        ratio = Case.median_wall(c.compare) / Case.median_wall(c.kpictl)
        cpu = Case.median_cpu(c.compare) / Case.median_cpu(c.kpictl)
        rows.append(
            [
                c.label,
                c.fmt,
                _fmt_s(c.kpictl),
                _fmt_s(c.compare),
                f"{ratio:.2f}x",
                "yes" if ratio <= TARGET_COMPARE_RATIO else "no",
                _fmt_gb(c.kpictl),
                _fmt_gb(c.compare),
                f"{cpu:.2f}x",
            ]
        )
    return Table(headers, rows, set(headers[2:5]) | set(headers[6:]))


def report_table(cases: list[Case]) -> Table | None:
    cases = [c for c in cases if c.report and c.compare]
    if not cases:
        return None
    headers = [
        "size",
        "format",
        "compare median s",
        "report median s",
        "report / compare",
        f"≤ {TARGET_REPORT_RATIO:g}x",
        "report peak RSS GB",
        "by channel, intent median s",
        "by / report",
        f"≤ {TARGET_REPORT_BY_RATIO:g}x",
        "by peak RSS GB",
    ]
    rows = []
    for c in cases:
        ratio = Case.median_wall(c.report) / Case.median_wall(c.compare)
        by_ratio = Case.median_wall(c.report_by) / Case.median_wall(c.report)
        rows.append(
            [
                c.label,
                c.fmt,
                _fmt_s(c.compare),
                _fmt_s(c.report),
                f"{ratio:.2f}x",
                "yes" if ratio <= TARGET_REPORT_RATIO else "no",
                _fmt_gb(c.report),
                _fmt_s(c.report_by),
                f"{by_ratio:.2f}x",
                "yes" if by_ratio <= TARGET_REPORT_BY_RATIO else "no",
                _fmt_gb(c.report_by),
            ]
        )
    return Table(headers, rows, set(headers[2:5]) | {headers[6], *headers[7:9], headers[10]})


def growth_lines(cases: list[Case]) -> list[str]:
    """Per format and command with ≥ 2 sizes: the time and time per event at each size; per
    step, the growth exponent (log time ratio / log events ratio) and the marginal time per
    added event; the verdict compares the marginal cost of the last step with the first's
    (equal: linear, plus a fixed cost such as start-up)."""
    lines = []
    for fmt in ("parquet", "jsonl"):
        for name in ("kpictl", "reference"):
            points = sorted(
                (c.events, Case.median_wall(getattr(c, name)), c.label)
                for c in cases
                if c.fmt == fmt and getattr(c, name)
            )
            if len(points) < 2:
                continue
            parts = [f"{lab} {t:.2f} s ({t / n * 1e6:.3f} µs/event)" for n, t, lab in points]
            steps, marginals = [], []
            for (n1, t1, l1), (n2, t2, l2) in itertools.pairwise(points):
                exponent = math.log(t2 / t1) / math.log(n2 / n1)
                marginal = (t2 - t1) / (n2 - n1) * 1e6
                marginals.append(marginal)
                steps.append(
                    f"{l1}→{l2} time ×{t2 / t1:.2f} for ×{n2 / n1:.2f} events "
                    f"(exponent {exponent:.2f}), {marginal:.3f} µs per added event"
                )
            what = "kpictl compute" if name == "kpictl" else "reference"
            line = f"{what} ({fmt}): " + ", ".join(parts) + "; " + "; ".join(steps)
            if len(marginals) >= 2 and marginals[0] > 0:
                change = marginals[-1] / marginals[0]
                line += (
                    f"; marginal cost ×{change:.2f} from the first step to the last: "
                    f"{growth_word(change)}"
                )
            else:
                exponent = math.log(points[-1][1] / points[0][1]) / math.log(
                    points[-1][0] / points[0][0]
                )
                line += "; " + ("sub-linear" if exponent < 0.9 else growth_word(exponent))
            lines.append(line)
    return lines


def growth_word(change: float) -> str:
    """`change`: marginal time per event of the last step / the first's (or an exponent)."""
    if change < 0.8:
        return "sub-linear"
    if change <= 1.25:
        return "linear"
    return "super-linear"


def target_lines(cases: list[Case], start: dict[str, float]) -> list[str]:
    """Each target of the performance issue that this run measured: met or not, with numbers."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = []
    by = {(c.label, c.fmt): c for c in cases}
    ten = by.get(("10M", "parquet"))
    if ten and ten.reference:
        ratio = Case.median_wall(ten.kpictl) / Case.median_wall(ten.reference)
        lines.append(
            f"10M Parquet, compute ≤ {TARGET_RATIO_10M_PARQUET:g}x reference: {ratio:.2f}x "
            f"— {verdict(ratio <= TARGET_RATIO_10M_PARQUET)}"
        )
    if ten:
        rss = Case.peak_gb(ten.kpictl)
        lines.append(
            f"10M Parquet, compute peak RSS ≤ {TARGET_RSS_10M_PARQUET_GB:g} GB: {rss:.2f} GB "
            f"— {verdict(rss <= TARGET_RSS_10M_PARQUET_GB)}"
        )
    version = start.get("kpictl --version")
    if version is not None:
        lines.append(
            f"start-up, kpictl --version < {TARGET_STARTUP_S:g} s: {version:.3f} s "
            f"— {verdict(version < TARGET_STARTUP_S)}"
        )
    for c in cases:
        if c.cached:
            ratio = Case.median_wall(c.cached) / Case.median_wall(c.parquet)
            lines.append(
                f"{c.label} JSONL cached ≤ {TARGET_CACHED_JSONL_RATIO:g}x Parquet: {ratio:.2f}x "
                f"— {verdict(ratio <= TARGET_CACHED_JSONL_RATIO)}"
            )
    if ten and ten.compare:
        ratio = Case.median_wall(ten.compare) / Case.median_wall(ten.kpictl)
        cpu = Case.median_cpu(ten.compare) / Case.median_cpu(ten.kpictl)
        lines.append(
            f"10M Parquet, compare ≤ {TARGET_COMPARE_RATIO:g}x compute: {ratio:.2f}x wall, "
            f"{cpu:.2f}x CPU — {verdict(max(ratio, cpu) <= TARGET_COMPARE_RATIO)}"
        )
    if ten and ten.report and ten.compare:
        ratio = Case.median_wall(ten.report) / Case.median_wall(ten.compare)
        lines.append(
            f"10M Parquet, report ≤ {TARGET_REPORT_RATIO:g}x compare: {ratio:.2f}x "
            f"— {verdict(ratio <= TARGET_REPORT_RATIO)}"
        )
        rss = Case.peak_gb(ten.report)
        lines.append(
            f"10M Parquet, report peak RSS ≤ {TARGET_REPORT_RSS_GB:g} GB: {rss:.2f} GB "
            f"— {verdict(rss <= TARGET_REPORT_RSS_GB)}"
        )
        by_ratio = Case.median_wall(ten.report_by) / Case.median_wall(ten.report)
        lines.append(
            f"10M Parquet, report --by channel --by intent ≤ {TARGET_REPORT_BY_RATIO:g}x "
            f"report: {by_ratio:.2f}x — {verdict(by_ratio <= TARGET_REPORT_BY_RATIO)}"
        )
    for c in cases:
        if c.single:
            lines.append(
                f"{c.label} {c.fmt}: compute completed in {Case.median_wall(c.kpictl):.1f} s, "
                f"peak RSS {Case.peak_gb(c.kpictl):.2f} GB"
                + (
                    f"; reference {Case.median_wall(c.reference):.1f} s, "
                    f"{Case.peak_gb(c.reference):.2f} GB"
                    if c.reference
                    else f"; reference {c.reference_note}"
                )
            )
    return lines


def render_text(table: Table) -> str:
    headers, rows = table.headers, table.rows
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render_markdown(table: Table) -> str:
    lines = [
        "| " + " | ".join(table.headers) + " |",
        "| " + " | ".join("---:" if h in table.right else "---" for h in table.headers) + " |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table.rows]
    return "\n".join(lines)


def byte_compile_kpictl(args: argparse.Namespace) -> None:
    """Byte-compile kpictl's modules once, as `pip install` does for a package: an editable
    install run where PYTHONDONTWRITEBYTECODE is set (as on this machine) would otherwise
    compile every module in every timed run (about 60 ms)."""
    probe = "import kpictl, os; print(os.path.dirname(kpictl.__file__))"
    run = checked(run_measured([args.python, "-c", probe], ROOT, args.timeout), "python")
    package = run.stdout.strip()
    checked(
        run_measured([args.python, "-m", "compileall", "-q", package], ROOT, args.timeout),
        "compileall",
    )


def versions(args: argparse.Namespace) -> str:
    probe = "import sys, polars; print(sys.version.split()[0], polars.__version__)"
    run = checked(run_measured([args.python, "-c", probe], ROOT, args.timeout), "python")
    py, polars_version = run.stdout.split()
    return f"Python {py}, polars {polars_version}, {platform.system()} {platform.machine()}"


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) CPU ticks since boot from /proc/stat, or None where there is none."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (ticks[7], sum(ticks)) if len(ticks) == 8 else None


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of CPU time the hypervisor gave to other guests between two readings: on a
    shared host, the reason a whole run can be slower than another."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def report(cases: list[Case], start: dict[str, float], args: argparse.Namespace) -> str:
    md = args.markdown
    render = render_markdown if md else render_text

    def title(text: str) -> str:
        return f"### {text}\n" if md else f"{text}\n{'=' * len(text)}\n"

    def code(text: str) -> str:
        return f"`{text}`" if md else text

    out = [title("compute vs reference"), render(main_table(cases))]
    notes = []
    if any(c.fmt == "jsonl" for c in cases):
        notes.append("kpictl JSONL rows parse every run (KPICTL_NO_CACHE=1)")
    if any(c.single for c in cases):
        notes.append("cases with runs = 1: one run of each command, no warm-up")
    notes += [f"{c.label} {c.fmt}: reference {c.reference_note}" for c in cases if c.reference_note]
    if notes:
        out.append("\n" + "; ".join(notes) + ".")
    cache = cache_table(cases)
    if cache:
        out += [
            "\n" + title("JSONL with the cache"),
            render(cache),
            "\nPer round: a new empty cache dir, the first run (parses, writes the cache), a "
            "cached run, the Parquet run of the same size; medians over the rounds. "
            "'no cache s' is the main table's kpictl figure (KPICTL_NO_CACHE=1).",
        ]
    cmp_table = compare_table(cases)
    if cmp_table:
        out += [
            "\n" + title(f"compare --baseline {BASELINE} vs compute"),
            render(cmp_table),
        ]
    rep_table = report_table(cases)
    if rep_table:
        out += [
            "\n" + title(f"report (--baseline {BASELINE}) vs compare"),
            render(rep_table),
        ]
    starts = ", ".join(f"{code(k)} {v * 1000:.0f} ms" for k, v in start.items())
    out += ["\n" + title("start-up"), f"median of {STARTUP_RUNS}, alternating: {starts}."]
    growth = growth_lines(cases)
    if growth:
        out += ["\n" + title("cost growth")]
        out += [f"- {line}" if md else line for line in growth]
    targets = target_lines(cases, start)
    if targets:
        out += ["\n" + title("targets")]
        out += [f"- {line}" if md else line for line in targets]
    about = (
        f"{versions(args)}; {os.cpu_count()} CPUs; {args.runs} timed runs per command "
        "after one warm-up, alternating (large cases: one run each); wall time = median, "
        "peak RSS = max over runs"
    )
    steal = getattr(args, "steal", None)
    if steal is not None:
        about += (
            f"; CPU steal during the run {steal * 100:.0f} % (time the shared host gave "
            "to other guests: absolute times scale with it, ratios much less)"
        )
    out.append(f"\n{about}.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        default="1M,10M",
        help="comma-separated event counts, e.g. 1M,10M,100M (default: %(default)s)",
    )
    parser.add_argument(
        "--formats",
        default="parquet,jsonl",
        help="comma-separated: parquet, jsonl (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated SIZE-FORMAT cases instead of every --events × "
        "--formats pair, e.g. 1M-parquet,1M-jsonl,10M-parquet,100M-parquet",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each command")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/tmp/kpictl-bench"),
        help="where generated data is cached (default: %(default)s)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="SIZE-FORMAT=PATH",
        help="use this existing folder (events/, tool_calls/) for that case instead of "
        "generating it, e.g. 100M-parquet=/tmp/k100. Repeatable.",
    )
    parser.add_argument(
        "--large",
        default="50M",
        help="cases with at least this many events run compute and the reference once each, "
        "without warm-up, compare or cache rows (default: %(default)s)",
    )
    parser.add_argument(
        "--large-no-reference",
        action="store_true",
        help="skip the reference in large cases",
    )
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help=f"do not time `kpictl compare --baseline {BASELINE}`",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not time `kpictl report` and `kpictl report --by channel --by intent`",
    )
    parser.add_argument(
        "--no-jsonl-cache",
        action="store_true",
        help="do not time JSONL with the cache (first run, cached runs, Parquet of that size)",
    )
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds before one command is killed (default: %(default)s)",
    )
    default_kpictl = Path(sys.executable).with_name("kpictl")
    parser.add_argument(
        "--kpictl",
        default=str(default_kpictl)
        if default_kpictl.exists()
        else (shutil.which("kpictl") or "kpictl"),
        help="the kpictl executable",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter that runs the reference (with polars)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.only:
        pairs = [tuple(c.strip().rsplit("-", 1)) for c in args.only.split(",") if c.strip()]
    else:
        pairs = [
            (size, fmt)
            for size in args.events.split(",")
            if size.strip()
            for fmt in args.formats.split(",")
            if fmt.strip()
        ]
    try:
        plan = [(parse_size(size), fmt.strip()) for size, fmt in pairs]
        large = parse_size(args.large)
        args.datasets = {}
        for item in args.dataset:
            case, _, path = item.partition("=")
            size, _, fmt = case.strip().rpartition("-")
            if not path or fmt not in ("parquet", "jsonl"):
                raise ValueError(item)
            args.datasets[(parse_size(size), fmt)] = Path(path).expanduser()
    except (ValueError, IndexError):
        parser.error(
            "sizes look like 1M, 500K or 2500000; cases like 1M-parquet; "
            "--dataset like 100M-parquet=/path/to/folder"
        )
    if not plan or any(fmt not in ("parquet", "jsonl") for _, fmt in plan):
        parser.error("formats: parquet and/or jsonl")

    byte_compile_kpictl(args)
    before = cpu_times()
    envs = Envs()
    try:
        cases = []
        for events, fmt in plan:
            folder = ensure_data(
                args.data_dir, args.kpictl, events, fmt, args.timeout, args.datasets
            )
            bench = bench_single if events >= large else bench_case
            cases.append(bench(folder, size_label(events), fmt, args, envs))
        start = startup(args, envs)
    finally:
        envs.cleanup()
    args.steal = steal_share(before, cpu_times())

    print(report(cases, start, args))
    problems = [(c, p) for c in cases for p in c.problems + c.cache_problems]
    for case, problem in problems:
        print(f"DISAGREEMENT [{case.label} {case.fmt}] {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
