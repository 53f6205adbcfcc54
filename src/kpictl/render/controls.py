"""Control characters shown as visible escapes: the terminal's escaping of data values.

Its own module, importing only `re`, so the CLI's messages on stderr (`kpictl: error: …`,
`kpictl: wrote …`) are escaped without loading the renderers (polars, rich, the engine): a
command such as `kpictl sample` pays nothing for them. `render/text.py` builds the other
escapes (terminal cells, Markdown, CSV) on it.
"""

from __future__ import annotations

import re

# C0 and C1 controls (ESC starts ANSI CSI and OSC 8 hyperlinks; BEL ends OSC; CR overwrites the
# line), DEL and the bidirectional overrides that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible_controls(text: str, keep: str = "") -> str:
    """Control characters (except those in `keep`) as visible escapes: ESC → `\\x1b`."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _visible(m.group()), text)
