"""Writers for every output format: one module per format (`table`, `json`, `csv`, `markdown`),
what they share in `text`, and one dispatch, `writers.render(result, fmt, console)`.

Nothing is imported here: `render.controls` (the CLI's stderr escaping) loads alone."""
