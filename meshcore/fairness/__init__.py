"""Bandwidth fairness: accounting, quotas, scheduling and congestion control (issue 6).

* :mod:`.accounting` — bytes per principal and class over sliding windows; token
  buckets; a mesh-wide merge that counts each principal's usage once.
* :mod:`.settings`, :mod:`.policy` — classes, quotas and rules from the TOML config.
* :mod:`.scheduler` — every outgoing transfer through the DRR kernel, per-host first.
* :mod:`.congestion` — CoDel/LEDBAT-style detection; background slowed first.
* :mod:`.opennds` — the openNDS captive-portal adapter (``ndsctl json`` / ``auth``).
* :mod:`.metrics` — Jain's index and weighted max-min fair shares.

``scenarios`` (simulator workloads) and ``ndsdriver`` (runs ``ndsctl``) are
imported on demand, to keep this package light on a router. See docs/fairness.md.
"""

from meshcore._lazy import lazy_exports

# Loaded on first use (meshcore/_lazy.py): importing the package stays cheap.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".accounting": (
            "DOWN",
            "UP",
            "MeshUsage",
            "Account",
            "TokenBucket",
            "UsageLedger",
            "UsageRecord",
            "period_bounds",
        ),
        ".congestion": (
            "CongestionController",
            "CongestionParams",
            "DeferReplication",
            "SetClassRate",
        ),
        ".metrics": ("jain_index", "max_min_fair_shares", "share_ratios", "worst_share_ratio"),
        ".opennds": (
            "NdsctlCall",
            "PortalView",
            "auth_argv",
            "deauth_argv",
            "parse_ndsctl_json",
            "plan_client",
        ),
        ".policy": ("ALLOW", "DEMOTE", "REFUSE", "Admission", "Principal", "Policy"),
        ".scheduler": ("Decision", "FairScheduler", "Refused", "Transfer"),
        ".settings": ("ClassSpec", "FairnessSettings", "parse_fairness"),
    },
)
