"""Benchmark ordering: every implementation of one workload runs back to back.

pytest would otherwise run all parameter sets of one test function before the
next function, so "ours" and "peer" of the same workload could be timed
minutes apart on a machine whose speed drifts. Sorting (stably) by module and
by the workload's parameters, ignoring the ``who`` parameter that names the
implementation, keeps each comparison's rows adjacent in time.
"""

from __future__ import annotations


def _workload_key(item) -> tuple:
    callspec = getattr(item, "callspec", None)
    params = ()
    if callspec is not None:
        params = tuple(sorted((k, repr(v)) for k, v in callspec.params.items() if k != "who"))
    return (item.module.__name__, params)


def pytest_collection_modifyitems(items) -> None:
    """Group benchmark items by workload, keeping their order otherwise."""
    items.sort(key=_workload_key)
