"""From loaded sources to facts and KPI values: rollups, attribution, data checks, costs."""
