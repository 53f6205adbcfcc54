"""`kpictl cache info` and `kpictl cache clear`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kpictl.cli.app import (
    UncutGroup,
    app,
    stderr_line,
)

if TYPE_CHECKING:
    pass


cache_app = typer.Typer(
    help="Show or empty the JSONL cache: each parsed JSONL file kept as Parquet between runs "
    "($KPICTL_CACHE_DIR, else $XDG_CACHE_HOME/kpictl, else ~/.cache/kpictl; bounded by "
    "$KPICTL_CACHE_MAX_BYTES, default 2G).",
    short_help="Show or empty the JSONL cache of parsed logs.",
    cls=UncutGroup,
    no_args_is_help=True,
)


app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info() -> None:
    """Show where the cache is, whether it is on, its entries, total size and size limit."""
    from kpictl.commands import cache_info_lines
    from kpictl.io.cache import cache_info as read_info

    typer.echo("\n".join(cache_info_lines(read_info())))


@cache_app.command("clear")
def cache_clear() -> None:
    """Remove every entry of the cache (the next run on each JSONL file parses it again)."""
    from kpictl.commands import size_text
    from kpictl.io.cache import clear_cache

    removed = clear_cache()
    stderr_line(
        f"kpictl: removed {removed.entries} entries ({size_text(removed.total_bytes)}) "
        f"from {removed.directory}"
    )
