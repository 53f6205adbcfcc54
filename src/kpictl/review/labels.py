"""Reading a labelled review file (`read_review`): one round's rows, every bad cell an
`InputDataError` with its file, line and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

from kpictl.errors import InputDataError
from kpictl.review.columns import ALL, FALSE_WORDS, ID, REQUIRED, TRUE_WORDS


@dataclass(frozen=True)
class ReviewRound:
    """The rows of one review file (one round)."""

    path: str
    sampled_at: dt.datetime | None
    allocation: str | None
    rows: int
    human: tuple[int, ...]  # labelled rows only, in file order
    self_reported: tuple[int, ...]
    strata: tuple[int, ...]  # code into `stratum_names`
    stratum_names: tuple[str, ...]
    stratum_sizes: tuple[float, ...]  # math.inf when the file has no stratum_size
    stratum_self_reported: tuple[int, ...] | None  # None when not in the file
    hallucination: tuple[int, ...]  # rows with a hallucination label
    hallucination_strata: tuple[int, ...]  # their stratum codes
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The round's name: its sample time, else its file name."""
        return self.sampled_at.isoformat() if self.sampled_at else Path(self.path).name


def _label(text: str, where: str, column: str) -> int | None:
    word = text.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return 1
    if word in FALSE_WORDS:
        return 0
    raise InputDataError(
        f"{where}: column {column}: {text.strip()!r} is not a label; expected 1/0, true/false, "
        "yes/no (or empty: not labelled yet)"
    )


def _count(text: str, where: str, column: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise InputDataError(f"{where}: column {column}: expected a count, found {text!r}")
    return value


def read_review(path: str | Path) -> ReviewRound:
    """Parse a review file; a malformed value is an error at file:line with its column."""
    name = str(path)
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise InputDataError(f"{name}: cannot read the review file: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputDataError(f"{name}: empty file; expected a review file") from None
        except csv.Error as exc:
            raise InputDataError(f"{name}:1: not CSV: {exc}") from None
        header = [h.strip() for h in header]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise InputDataError(
                f"{name}: no column {', '.join(missing)}; a review file (from `kpictl review "
                f"sample`) has {', '.join(REQUIRED)}"
            )
        col = {c: header.index(c) for c in header}
        human: list[int] = []
        selfs: list[int] = []
        codes: list[int] = []
        halluc: list[int] = []
        halluc_codes: list[int] = []
        names: dict[str, int] = {}
        sizes: dict[str, tuple[int, str]] = {}
        self_counts: dict[str, tuple[int, str]] = {}
        seen: dict[str, str] = {}
        sampled: tuple[str, str] | None = None
        allocation: str | None = None
        rows = 0
        labelled_strata: set[str] = set()
        while True:
            line = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise InputDataError(f"{name}:{line}: not CSV: {exc}") from None
            if not any(cell.strip() for cell in record):
                continue
            where = f"{name}:{line}"
            if len(record) != len(header):
                raise InputDataError(
                    f"{where}: {len(record)} field(s), the header has {len(header)}"
                )
            rows += 1

            def cell(column: str, record: list[str] = record) -> str | None:
                return record[col[column]] if column in col else None

            ident = (cell(ID) or "").strip()
            if not ident:
                raise InputDataError(f"{where}: column {ID}: empty")
            if ident in seen:
                raise InputDataError(
                    f"{where}: column {ID}: {ident!r} again (first at line {seen[ident]})"
                )
            seen[ident] = str(line)
            stratum = (cell("stratum") or "").strip() or ALL
            code = names.setdefault(stratum, len(names))
            size_text = cell("stratum_size")
            if size_text is not None:
                size = _count(size_text, where, "stratum_size")
                if size < 1:
                    raise InputDataError(f"{where}: column stratum_size: expected at least 1")
                first = sizes.setdefault(stratum, (size, where))
                if first[0] != size:
                    raise InputDataError(
                        f"{where}: column stratum_size: {size} for stratum {stratum!r}, "
                        f"{first[0]} at {first[1]}"
                    )
            count_text = cell("stratum_self_reported")
            if count_text is not None and count_text.strip():
                count = _count(count_text, where, "stratum_self_reported")
                first = self_counts.setdefault(stratum, (count, where))
                if first[0] != count:
                    raise InputDataError(
                        f"{where}: column stratum_self_reported: {count} for stratum "
                        f"{stratum!r}, {first[0]} at {first[1]}"
                    )
            when = (cell("sampled_at") or "").strip()
            if when:
                if sampled is None:
                    sampled = (when, where)
                elif sampled[0] != when:
                    raise InputDataError(
                        f"{where}: column sampled_at: {when!r}, {sampled[0]!r} at {sampled[1]}; "
                        "one file is one review round"
                    )
            allocation = allocation or (cell("allocation") or "").strip() or None
            reported = _label(cell("self_reported") or "", where, "self_reported")
            if reported is None:
                raise InputDataError(f"{where}: column self_reported: empty; expected 1/0")
            label = _label(cell("human_success") or "", where, "human_success")
            if "hallucination" in col:
                flag = _label(cell("hallucination") or "", where, "hallucination")
                if flag is not None:
                    halluc.append(flag)
                    halluc_codes.append(code)
            if label is None:
                continue
            labelled_strata.add(stratum)
            human.append(label)
            selfs.append(reported)
            codes.append(code)
    if rows == 0:
        raise InputDataError(f"{name}: no rows; expected one row per sampled conversation")
    order = sorted(names, key=names.__getitem__)
    if sizes and len(sizes) != len(names):
        lacking = next(s for s in order if s not in sizes)
        raise InputDataError(f"{name}: stratum {lacking!r} has no stratum_size")
    if not sizes and len(names) > 1:
        raise InputDataError(
            f"{name}: {len(names)} strata but no stratum_size column to weight them by"
        )
    for stratum, (count, where) in self_counts.items():
        if sizes and count > sizes[stratum][0]:
            raise InputDataError(
                f"{where}: column stratum_self_reported: {count} is more than the stratum's "
                f"{sizes[stratum][0]} conversations"
            )
    notes: list[str] = []
    unlabelled = rows - len(human)
    if unlabelled:
        notes.append(f"{unlabelled} of {rows} row(s) have no human_success label: left out")
    dropped = [s for s in order if s not in labelled_strata]
    if dropped and len(dropped) < len(order):
        weight = sum(sizes[s][0] for s in dropped) if sizes else 0
        notes.append(
            f"{len(dropped)} stratum/strata have no labelled row ({weight} conversations): "
            "the weighted estimates cover the other strata only"
        )
    when_value = None
    if sampled is not None:
        try:
            when_value = dt.datetime.fromisoformat(sampled[0])
        except ValueError:
            raise InputDataError(
                f"{sampled[1]}: column sampled_at: {sampled[0]!r} is not an ISO-8601 time"
            ) from None
    return ReviewRound(
        path=name,
        sampled_at=when_value,
        allocation=allocation,
        rows=rows,
        human=tuple(human),
        self_reported=tuple(selfs),
        strata=tuple(codes),
        stratum_names=tuple(order),
        stratum_sizes=tuple(float(sizes[s][0]) if sizes else math.inf for s in order),
        stratum_self_reported=(
            tuple(self_counts[s][0] for s in order) if len(self_counts) == len(order) else None
        ),
        hallucination=tuple(halluc),
        hallucination_strata=tuple(halluc_codes),
        notes=tuple(notes),
    )
