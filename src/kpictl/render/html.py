"""Markdown → one self-contained HTML page (`kpictl report --format html`).

The page is rendered from the very Markdown the scorecard prints, so both show the same numbers
by construction. It is self-contained: the style sheet is inline and every image is a `data:`
URI, so the file can be mailed, opened offline or printed to PDF from a browser.

No value from the data becomes HTML. The Markdown already escapes every data value
(`render.text.md_text`); the parser here additionally runs with raw HTML off, so even an
unescaped `<script>` would be shown as text, and links are limited to markdown-it's safe
schemes. A Content-Security-Policy forbids scripts, fetches and external images outright.

Layout: a readable column on a desktop; on a phone each table scrolls sideways inside its own
box with its first column kept in view, so the page itself never scrolls sideways; print
styles keep rows and charts whole and spell out no link targets.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from kpictl import __version__

# Only inline styles and data: images; no script, no fetch, no frame, no form target.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

STYLE = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --head: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0 auto; padding: 1rem 1.25rem 3rem; max-width: 72rem; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  overflow-wrap: break-word; }
h1 { font-size: 1.7rem; margin: 0.5rem 0 1rem; line-height: 1.25; }
h2 { font-size: 1.3rem; margin: 2rem 0 0.75rem; padding-bottom: 0.25rem;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
h4, h5, h6 { font-size: 1rem; margin: 1.25rem 0 0.5rem; }
p, ul, ol { margin: 0.5rem 0 0.75rem; }
ul, ol { padding-left: 1.4rem; }
a { color: var(--accent); }
code { font: 0.88em/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: var(--head);
  padding: 0.05em 0.3em; border-radius: 4px; }
pre { overflow-x: auto; background: var(--head); padding: 0.75rem; border-radius: 6px; }
pre code { background: none; padding: 0; }
blockquote { margin: 0.5rem 0; padding: 0 1rem; color: var(--muted);
  border-left: 4px solid var(--line); }
img { display: block; max-width: 100%; height: auto; margin: 0.5rem 0; }
.table-wrap { overflow-x: auto; margin: 0.5rem 0 1rem; border: 1px solid var(--line);
  border-radius: 6px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; min-width: 100%; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top;
  text-align: left; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
th:first-child, td:first-child { position: sticky; left: 0; background: #fff;
  box-shadow: 1px 0 0 var(--line); }
th:first-child { background: var(--head); }
td[style*="right"] { white-space: nowrap; }
@media (max-width: 40rem) {
  body { padding: 0.75rem 0.75rem 2rem; font-size: 14px; }
  h1 { font-size: 1.35rem; }
  h2 { font-size: 1.15rem; }
  th, td { padding: 0.3rem 0.45rem; }
  td:first-child { min-width: 8rem; max-width: 14rem; white-space: normal; }
}
@page { margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  a { color: inherit; text-decoration: none; }
  h1, h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  img, tr, li { break-inside: avoid; page-break-inside: avoid; }
  .table-wrap { overflow: visible; border: 0; }
  table { font-size: 8.5pt; width: 100%; }
  th, td { white-space: normal; padding: 0.2rem 0.35rem; }
  th:first-child, td:first-child { position: static; box-shadow: none; }
}
"""

_IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"<svg", "image/svg+xml"),
    (b"<?xml", "image/svg+xml"),
)


def image_data_uri(data: bytes) -> str:
    """`data:image/png;base64,…` (or `image/svg+xml`) for a chart's bytes."""
    for signature, mime in _IMAGE_TYPES:
        if data.lstrip()[: len(signature)] == signature:
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    raise ValueError("not a PNG or SVG image")


def heading_slug(text: str, seen: dict[str, int]) -> str:
    """The anchor GitHub gives a heading (`## Data quality` → `data-quality`), numbered
    `-1`, `-2`, … when repeated, so the scorecard's `(#data-quality)` links work here too."""
    slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def _parser() -> MarkdownIt:
    # CommonMark + GFM tables; raw HTML off (shown as text), no autolinks, no typographer
    return MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False},
        renderer_cls=_WrappedTables,
    ).enable("table")


def _plain(children: Sequence[Token] | None) -> str:
    return "".join(
        child.content
        for child in children or ()
        if child.type in ("text", "text_special", "code_inline")
    )


def markdown_to_html(
    markdown: str, *, title: str | None = None, images: Mapping[str, bytes] | None = None
) -> str:
    """One self-contained HTML page from a Markdown document.

    `images` maps each image target written in the Markdown (a chart's relative path) to its
    bytes, inlined as a `data:` URI; an image the mapping lacks is a ValueError (the page
    would not be self-contained). `title` is the page's `<title>` (escaped); by default the
    text of the first heading."""
    images = images or {}
    parser = _parser()
    tokens = parser.parse(markdown)
    seen: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            text = _plain(tokens[index + 1].children)
            token.attrSet("id", heading_slug(text, seen))
            title = text if title is None else title
        for child in token.children or ():
            if child.type != "image":
                continue
            source = str(child.attrGet("src"))
            if source not in images:
                raise ValueError(f"no bytes for the image {source!r}: the page would link it")
            child.attrSet("src", image_data_uri(images[source]))
            child.attrSet("loading", "eager")
    body = parser.renderer.render(tokens, parser.options, {})
    return "".join(
        [
            "<!DOCTYPE html>\n",
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f'<meta name="generator" content="kpictl {_escape(__version__)}">\n',
            f"<title>{_escape(title or 'kpictl')}</title>\n",
            f"<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
            body,
            "</main>\n</body>\n</html>\n",
        ]
    )


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


class _WrappedTables(RendererHTML):
    """markdown-it's HTML renderer with each table in a box that scrolls sideways on its own
    (keyboard-reachable), so a wide table never makes the whole page scroll."""

    def table_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return '<div class="table-wrap" role="region" tabindex="0">\n' + self.renderToken(
            tokens, idx, options, env
        )

    def table_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return self.renderToken(tokens, idx, options, env) + "</div>\n"
