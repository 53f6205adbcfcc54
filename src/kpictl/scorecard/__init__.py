"""kpictl report: the scorecard (gathered facts, sections, Markdown, charts)."""
