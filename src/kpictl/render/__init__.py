"""Writers for every output format: terminal tables, JSON, CSV, Markdown."""
