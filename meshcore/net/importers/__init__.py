"""Topology importers: routing-daemon outputs and map data to :class:`Topology`.

Theory of operation
-------------------
Each format family is one module with the same three names:

* ``FORMAT`` - the name used by ``--format`` and in error messages;
* ``detect(head) -> bool`` - does the first ~64 KiB of a file look like it;
* ``load(text, path) -> Topology`` - parse, raising
  :class:`meshcore.errors.TopologyFormatError` (file, format, position) on
  malformed input.

:func:`import_topology` reads a file (or a directory: several one-router
views, such as olsrd2 netjsoninfo route dumps, merged into one graph),
detects the format unless one is given, and calls the module. Detection asks
the modules in the order of :data:`FORMATS` and takes the first that says
yes; the order puts the formats with the most specific signatures first.
Modules are imported on first use, so a module that is missing (``babel``
arrives with the node driver) does not break the others.

Node counts, link counts and cost conversions of each format are documented
in ``docs/net/topology.md``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from meshcore.errors import TopologyFormatError
from meshcore.net.topology import Topology

__all__ = ["FORMATS", "HEAD_BYTES", "detect_format", "import_topology", "load_module"]

#: Format name -> module under ``meshcore.net.importers``, in detection order.
FORMATS: dict[str, str] = {
    "babel": "babel",
    "cnml": "cnml",
    "meshviewer": "meshviewer",
    "netjson": "netjson",
    "olsr1": "olsr1",
    "batman": "batman",
    "bmx6": "bmx6",
    "iw80211s": "iw80211s",
}

#: How much of a file detection looks at.
HEAD_BYTES = 64 * 1024

#: Largest file read (bytes). Measured peak RSS at this cap (an 8.3 MB
#: NetJSON graph of 16,000 nodes and 230,000 directed links): 247 MB to
#: import, 254 MB with the export (written record by record,
#: meshcore.net.netjson.iter_dumps; 685 MB when it was built whole); the 64 MiB
#: of before allowed about 2 GB. Real dumps of the largest community meshes
#: are under 5 MB. On a router, the node follows its own babeld (a bounded
#: view, meshcore.node.babeld) instead of importing files.
MAX_FILE_BYTES = 8 * 1024 * 1024

_ALIASES = {
    "olsr1-jsoninfo": "olsr1",
    "olsr1-txtinfo": "olsr1",
    "olsr1-dot": "olsr1",
    "olsr2": "netjson",
    "olsr2-netjsoninfo": "netjson",
    "batman-adv": "batman",
    "batadv": "batman",
    "hopglass": "meshviewer",
    "802.11s": "iw80211s",
    "babeld": "babel",
}


_SUBFORMAT_LOADERS = {
    "olsr1-jsoninfo": "load_jsoninfo",
    "olsr1-txtinfo": "load_txtinfo",
    "olsr1-dot": "load_dot",
}


def load_module(name: str) -> ModuleType:
    """The importer module of format ``name`` (aliases such as ``olsr1-jsoninfo`` allowed).

    Raises ValueError for an unknown name and TopologyFormatError-free
    ModuleNotFoundError only if the module is absent from this install.
    """
    key = _ALIASES.get(name, name)
    if key not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise ValueError(f"format: unknown topology format {name!r} (known: {known})")
    return importlib.import_module(f"{__name__}.{FORMATS[key]}")


def _available() -> list[tuple[str, ModuleType]]:
    found = []
    for name, module_name in FORMATS.items():
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module_name}":
                raise
            continue
        found.append((name, module))
    return found


def detect_format(head: str) -> str | None:
    """The first format whose ``detect`` accepts ``head``, or None."""
    head = head[:HEAD_BYTES].lstrip("\ufeff")
    for name, module in _available():
        try:
            if module.detect(head):
                return name
        except Exception:  # a detector must never stop detection of the others
            continue
    return None


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TopologyFormatError(
                str(path), "?", "file", f"{size} bytes is over the {MAX_FILE_BYTES}-byte limit"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise TopologyFormatError(str(path), "?", "file", f"cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Old dumps are sometimes Latin-1 (guifi CNML); every byte decodes there.
        if b"\x00" in data[:HEAD_BYTES]:
            raise TopologyFormatError(
                str(path), "?", f"byte {exc.start}", "binary data, not a topology dump"
            ) from None
        return data.decode("latin-1")


def _load_text(text: str, path: str, format: str | None) -> Topology:
    if format is None:
        fmt = detect_format(text[:HEAD_BYTES])
        if fmt is None:
            raise TopologyFormatError(
                path, "?", "line 1", "unrecognised topology format (give --format)"
            )
    else:
        fmt = format
    module = load_module(fmt)
    # A sub-format name (``olsr1-dot``) picks that parser instead of sniffing the text.
    loader = getattr(module, _SUBFORMAT_LOADERS.get(fmt, "load"), module.load)
    return loader(text, path)


def import_topology(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    format: str | None = None,
    text: str | None = None,
) -> Topology:
    """Import a topology dump; the format is detected unless ``format`` names it.

    ``path`` is a file, a directory, or a list of files. A directory's
    regular files (sorted by name, hidden ones skipped), or the listed files,
    are all imported and merged into one graph:
    NetJSON NetworkRoutes views (olsrd2 netjsoninfo, one file per router) are
    assembled into the network graph, other formats are merged link by link.
    ``text`` parses the given string instead of reading ``path`` (which then
    only names the input in errors).

    Raises :class:`TopologyFormatError` for unreadable or malformed input and
    ValueError for an unknown ``format``.
    """
    if format is not None:
        load_module(format)  # unknown names fail before any I/O
    if isinstance(path, (list, tuple)):
        if text is not None:
            raise ValueError("text: cannot be combined with a list of paths")
        return _import_files([Path(os.fspath(p)) for p in path], format, "<files>")
    name = os.fspath(path)
    if text is not None:
        return _load_text(text, name, format)
    p = Path(name)
    if p.is_dir():
        return _import_directory(p, format)
    return _load_text(_read(p), name, format)


def _import_directory(directory: Path, format: str | None) -> Topology:
    files = sorted(f for f in directory.iterdir() if f.is_file() and not f.name.startswith("."))
    return _import_files(files, format, str(directory))


def _import_files(files: list[Path], format: str | None, where: str) -> Topology:
    if not files:
        raise TopologyFormatError(where, format or "?", "directory", "no files to import")
    texts = [(str(f), _read(f)) for f in files]
    formats = set()
    for fname, text in texts:
        fmt = format or detect_format(text[:HEAD_BYTES])
        if fmt is None:
            raise TopologyFormatError(fname, "?", "line 1", "unrecognised topology format")
        formats.add(_ALIASES.get(fmt, fmt))
    if len(formats) > 1:
        raise TopologyFormatError(
            where, "?", "directory", f"files of several formats: {sorted(formats)}"
        )
    fmt = formats.pop()
    module = load_module(fmt)
    load_many = getattr(module, "load_many", None)
    if load_many is not None:
        return load_many(texts)
    merged: Topology | None = None
    for fname, text in texts:
        topo = module.load(text, fname)
        if merged is None:
            merged = topo
        else:
            merged.merge(topo, origin="import")
    assert merged is not None
    return merged
