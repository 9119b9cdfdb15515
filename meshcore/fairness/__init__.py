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

from .accounting import (
    DOWN,
    UP,
    MeshUsage,
    Principal,
    TokenBucket,
    UsageLedger,
    UsageRecord,
    period_bounds,
)
from .congestion import CongestionController, CongestionParams, DeferReplication, SetClassRate
from .metrics import jain_index, max_min_fair_shares, share_ratios, worst_share_ratio
from .opennds import NdsctlCall, PortalView, auth_argv, deauth_argv, parse_ndsctl_json, plan_client
from .policy import ALLOW, DEMOTE, REFUSE, Admission, ClientIdentity, Policy
from .scheduler import Decision, FairScheduler, Refused, Transfer
from .settings import ClassSpec, FairnessSettings, parse_fairness

__all__ = [
    "ALLOW",
    "DEMOTE",
    "DOWN",
    "REFUSE",
    "UP",
    "Admission",
    "ClassSpec",
    "ClientIdentity",
    "CongestionController",
    "CongestionParams",
    "Decision",
    "DeferReplication",
    "FairScheduler",
    "FairnessSettings",
    "MeshUsage",
    "NdsctlCall",
    "Policy",
    "PortalView",
    "Principal",
    "Refused",
    "SetClassRate",
    "TokenBucket",
    "Transfer",
    "UsageLedger",
    "UsageRecord",
    "auth_argv",
    "deauth_argv",
    "jain_index",
    "max_min_fair_shares",
    "parse_fairness",
    "parse_ndsctl_json",
    "period_bounds",
    "plan_client",
    "share_ratios",
    "worst_share_ratio",
]
