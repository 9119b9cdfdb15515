"""Bandwidth fairness: accounting, quotas, scheduling and congestion control (issue 6)."""
