"""`kpictl init`: read a sample of a user's logs, tell what they are, propose the column mapping
and write a commented `kpi_definitions.yaml`; and the shipped scorecards of chat transcripts
and OTLP traces that `kpictl compute` uses when no spec is given (README "Your own logs").

`detect` finds the files and the kind of logs (from content), `mapping` proposes columns by
name and values, `write` turns a proposal into the spec's text from `templates/`."""

from __future__ import annotations

from kpictl.init.detect import KINDS, LogSample, sample_logs
from kpictl.init.write import InitProposal, default_spec_path, propose_format_spec, propose_spec

__all__ = [
    "KINDS",
    "InitProposal",
    "LogSample",
    "default_spec_path",
    "propose_format_spec",
    "propose_spec",
    "sample_logs",
]
