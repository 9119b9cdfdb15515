"""Names and argument checks shared by both DRR twins.

Both ``_drr_py`` and the compiled ``_drr_c`` validate through these functions
(the compiled twin only after its inline fast path has failed), so a bad
argument raises the same exception type with the same message on either
backend. Every message names the argument: ``"weight: expected a finite
number > 0, got 0"``.

Integers: a ``bool`` is never accepted as an integer; any other ``int`` (or an
object with ``__index__``, such as a numpy integer) is.
"""

from __future__ import annotations

import math
import operator
import sys

from ._args import as_int

__all__ = [
    "BACKGROUND",
    "DEFAULT_CLASSES",
    "INTERACTIVE",
    "MASK64",
    "MAX_CLASSES",
    "MAX_FLOW",
    "MAX_QUANTUM",
    "MAX_SIZE",
    "ON_DEMAND",
    "as_flow_id",
    "check_flow",
    "check_item",
    "check_num_classes",
    "check_out_arrays",
    "check_priority",
    "check_quantum",
    "check_size",
    "check_weight",
    "default_priority",
    "unknown_flow",
]

#: Strict priority classes, served lowest number first. DRR shares the link
#: among the flows of one class; a class is served only when every class
#: above it is empty.
INTERACTIVE = 0
ON_DEMAND = 1
BACKGROUND = 2
DEFAULT_CLASSES = 3

#: At most this many priority classes (a scheduler has 1..MAX_CLASSES).
MAX_CLASSES = 16
#: Flow ids are 0 <= flow < MAX_FLOW; per-flow storage grows to the largest id + 1.
MAX_FLOW = 2**31
#: Item sizes and flow quanta are at most 2**48 bytes, so a deficit (< size +
#: quantum) never overflows int64 and byte counters need 2**16 maximal items
#: before they wrap modulo 2**64.
MAX_SIZE = 2**48
MAX_QUANTUM = 2**48
#: Byte counters (backlog bytes, pending bytes, served bytes) are uint64 in C
#: and wrap modulo 2**64; the pure twin masks with this to match.
MASK64 = 0xFFFFFFFFFFFFFFFF

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_FLOAT_MAX_QUANTUM = float(MAX_QUANTUM)


def _check_int(name: str, value: object, lo: int, hi: int, desc: str) -> int:
    """``value`` as an int in ``lo..hi`` inclusive, else TypeError/ValueError naming ``name``."""
    number = as_int(value, f"{name}: expected {desc}, got {value!r}")
    if not lo <= number <= hi:
        raise ValueError(f"{name}: expected {desc}, got {value!r}")
    return number


def check_quantum(quantum: object) -> int:
    """The scheduler quantum in bytes (1..2**48); raises TypeError/ValueError."""
    return _check_int("quantum", quantum, 1, MAX_QUANTUM, "an integer 1 <= quantum <= 2**48")


def check_num_classes(num_classes: object) -> int:
    """The number of priority classes (1..16); raises TypeError/ValueError."""
    return _check_int(
        "num_classes", num_classes, 1, MAX_CLASSES, "an integer 1 <= num_classes <= 16"
    )


def check_flow(flow: object) -> int:
    """A flow id (0 <= flow < 2**31); raises TypeError/ValueError."""
    return _check_int("flow", flow, 0, MAX_FLOW - 1, "an integer 0 <= flow < 2**31")


def as_flow_id(value: object) -> int:
    """``value`` as a flow id, or -1 when it is not one (for ``in`` tests, which never raise)."""
    try:
        number = as_int(value, "")
    except TypeError:
        return -1
    return number if 0 <= number < MAX_FLOW else -1


def check_size(size: object) -> int:
    """An item size in bytes (0..2**48); raises TypeError/ValueError."""
    return _check_int("size", size, 0, MAX_SIZE, "an integer 0 <= size <= 2**48")


def check_item(item: object) -> int:
    """An item tag (any int64); raises TypeError/ValueError."""
    return _check_int("item", item, _INT64_MIN, _INT64_MAX, "an int64 tag -2**63 <= item < 2**63")


def check_priority(priority: object, num_classes: int) -> int:
    """A priority class 0..num_classes-1; raises TypeError/ValueError."""
    return _check_int(
        "priority",
        priority,
        0,
        num_classes - 1,
        f"an integer 0 <= priority < {num_classes}",
    )


def default_priority(num_classes: int) -> int:
    """Class of a flow nobody configured: ON_DEMAND, or 0 in a one-class scheduler."""
    return ON_DEMAND if num_classes > 1 else 0


def check_weight(weight: object, quantum: int) -> tuple[float, int]:
    """``(weight as float, flow quantum in bytes)`` for a flow weight.

    The flow quantum is ``max(1, round(quantum * weight))``: one IEEE double
    multiplication and round-half-even, which C's ``rint`` reproduces exactly.
    Raises TypeError for a non-number (or bool), ValueError for weight <= 0,
    NaN, infinity, or ``quantum * weight > 2**48``.
    """
    if isinstance(weight, bool):
        raise TypeError(f"weight: expected a finite number > 0, got {weight!r}")
    if isinstance(weight, float):
        w = float(weight)
    else:
        try:
            number = operator.index(weight)
        except TypeError:
            raise TypeError(f"weight: expected a finite number > 0, got {weight!r}") from None
        try:
            w = float(number)
        except OverflowError:
            w = math.inf
    if not (w > 0.0 and math.isfinite(w)):
        raise ValueError(f"weight: expected a finite number > 0, got {weight!r}")
    scaled = quantum * w
    if not scaled <= _FLOAT_MAX_QUANTUM:
        raise ValueError(
            f"weight: expected quantum * weight <= 2**48 (quantum {quantum}), got {weight!r}"
        )
    return w, max(1, round(scaled))


def unknown_flow(flow: int) -> ValueError:
    """The error for a valid flow id that the scheduler does not know."""
    return ValueError(f"flow: expected a known flow id, got {flow!r}")


def _int64_view(name: str, array: object) -> memoryview:
    desc = "a writable C-contiguous one-dimensional int64 array"
    try:
        view = memoryview(array)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name}: expected {desc}, got {type(array).__name__}") from None
    fmt = view.format.lstrip("@=" + ("<" if sys.byteorder == "little" else ">"))
    if (
        view.ndim != 1
        or view.itemsize != 8
        or fmt not in ("q", "l")
        or not view.c_contiguous
        or view.readonly
    ):
        raise ValueError(
            f"{name}: expected {desc}, got format {view.format!r}, ndim {view.ndim}, "
            f"readonly {view.readonly}, c_contiguous {view.c_contiguous}"
        )
    # A byte-order prefix ('<q') cannot be indexed; the bytes are native int64.
    return view.cast("B").cast("q")


def check_out_arrays(
    flows_out: object, items_out: object, sizes_out: object
) -> tuple[memoryview, memoryview, memoryview]:
    """Writable ``'q'`` views of the three ``dequeue_many`` output arrays.

    Each must export a writable, C-contiguous, one-dimensional buffer of
    signed 64-bit integers (numpy ``int64``, ``array.array('q')``) and all
    three must have the same length; raises TypeError for a non-buffer and
    ValueError for a wrong format or length.
    """
    flows = _int64_view("flows_out", flows_out)
    items = _int64_view("items_out", items_out)
    sizes = _int64_view("sizes_out", sizes_out)
    n = len(flows)
    for name, view in (("items_out", items), ("sizes_out", sizes)):
        if len(view) != n:
            raise ValueError(f"{name}: expected length {n} (as flows_out), got {len(view)}")
    return flows, items, sizes
