"""kpictl: verified-outcome KPIs for AI agents, from agent logs, declared in YAML."""

from __future__ import annotations

__version__ = "0.1.0"
