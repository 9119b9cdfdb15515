"""Usage analytics: metrics, mergeable aggregates, reports and exporters (issue 7)."""
