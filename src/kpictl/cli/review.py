"""`kpictl review sample` and `kpictl review score`: the human review loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kpictl.cli.app import (
    UncutGroup,
    app,
    emit,
    load_spec_of,
    read_sources,
    report_inputs,
    stderr_line,
)
from kpictl.cli.options import (
    Allocation,
    AsOfOption,
    BadRows,
    BadRowsOption,
    CacheOption,
    MaxLineBytesOption,
    OutputOption,
    ParamOption,
    PathsArgument,
    SinceOption,
    SourceOption,
    SpecOption,
    SummaryFormat,
    SummaryFormatOption,
    UntilOption,
)
from kpictl.commands import DEFAULT_MAX_LINE_BYTES, DEFAULT_SPEC
from kpictl.errors import UsageError

if TYPE_CHECKING:
    pass


review_app = typer.Typer(
    help="The human review loop: sample conversations to label, then score the labels "
    "against the agent's self-reported success.",
    short_help="The human review loop: sample conversations to label, then score.",
    cls=UncutGroup,
    no_args_is_help=True,
    rich_markup_mode=None,
)


app.add_typer(review_app, name="review")


@review_app.command("sample")
def review_sample(
    paths: PathsArgument = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The review file to write (CSV).")
    ] = Path("review.csv"),
    size: Annotated[int, typer.Option("--size", help="Conversations to sample.")] = 200,
    stratify_by: Annotated[
        str | None,
        typer.Option(
            "--stratify-by",
            help="Comma-separated columns of the conversations table, e.g. intent,channel: "
            "one stratum per combination of values.",
        ),
    ] = None,
    allocation: Annotated[
        Allocation,
        typer.Option(
            "--allocation",
            help="proportional: each stratum by its share of conversations; equal: the same "
            "number from each stratum (scores are weighted back by stratum size).",
        ),
    ] = Allocation.proportional,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Random seed (same seed and data, same sample). Default: a "
            "fresh seed, printed so the sample can be drawn again.",
        ),
    ] = None,
    self_reported: Annotated[
        str,
        typer.Option(
            "--self-reported",
            help="The true/false column of the conversations table that holds the agent's "
            "self-reported success.",
        ),
    ] = "completed",
    messages: Annotated[
        int, typer.Option("--messages", help="Messages of each transcript to include.")
    ] = 6,
    since: SinceOption = None,
    until: UntilOption = None,
    as_of: AsOfOption = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    param: ParamOption = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    max_line_bytes: MaxLineBytesOption = DEFAULT_MAX_LINE_BYTES,
    cache: CacheOption = True,
) -> None:
    """Draw a stratified random sample of conversations into a CSV to label by hand.

    Each row has the conversation's first messages (personal data and secrets redacted), the
    agent's self-reported outcome and empty columns human_success, hallucination (1/0) and
    notes.

    Examples:

      kpictl review sample --size 200 --stratify-by intent,channel --seed 1 -o review.csv
    """
    import secrets

    from kpictl.commands import (
        parse_bound,
        parse_names,
        parse_time,
        run_inputs,
        write_review_sample,
    )
    from kpictl.review import SampleOptions, draw_review_sample

    if seed is None:
        seed = secrets.randbelow(2**31)
    columns = parse_names(stratify_by)
    spec = load_spec_of(config, param)
    sources = read_sources(spec, paths, source, on_bad_rows, cache, max_line_bytes=max_line_bytes)
    options = SampleOptions(
        size=size,
        stratify_by=columns,
        allocation=allocation.value,
        seed=seed,
        self_reported=self_reported,
        messages=messages,
        since=parse_bound(since, "--since"),
        until=parse_bound(until, "--until"),
        as_of=parse_time(as_of, "--as-of"),
    )
    drawn = draw_review_sample(spec, sources, options)
    report_inputs(sources)
    write_review_sample(drawn, output, run_inputs(config, sources))
    for note in drawn.notes:
        stderr_line(f"kpictl: note: {note}")
    stderr_line(f"kpictl: wrote {drawn.frame.height} conversations to {output} (seed {seed})")


@review_app.command("score")
def review_score(
    files: Annotated[
        list[Path],
        typer.Argument(help="Labelled review files, one per review round.", show_default=False),
    ],
    output_format: SummaryFormatOption = SummaryFormat.table,
    alpha: Annotated[
        float, typer.Option("--alpha", help="1 − confidence level of the intervals.")
    ] = 0.05,
    output: OutputOption = None,
) -> None:
    """Score labelled review files: agreement of human labels with the agent's self-reports
    (confusion matrix, Cohen's kappa), the label-corrected completion rate, the hallucination
    rate, and the trend of the gap across rounds.

    Examples:

      kpictl review score review.csv

      kpictl review score week1.csv week2.csv week3.csv --format markdown
    """
    from kpictl.render.writers import render
    from kpictl.review import score_review

    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha {alpha}: expected a level such as 0.05")
    score = score_review([str(f) for f in files], alpha)
    for note in score.notes:
        stderr_line(f"kpictl: note: {note}")
    emit(output, lambda console: render(score, output_format.value, console), files)
