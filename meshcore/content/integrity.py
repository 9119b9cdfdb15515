"""Integrity verification: one chunk, one manifest, or the whole store (scrub).

Theory of operation. Two checks of different cost guard the store:

* the **fast pass** reads each chunk file and checks its header and the
  xxh3-64 checksum of the stored bytes (several GB/s; catches bit rot,
  truncation and torn writes, but not a deliberate forgery, which cannot
  get in anyway: every chunk is BLAKE2b-verified before it is stored);
* the **full pass** also decompresses and recomputes the BLAKE2b-256 digest
  that names the chunk (run on demand, e.g. weekly, or after a crash).

A chunk that fails is moved to ``quarantine/`` with a reason file, and the
report carries a :class:`~meshcore.content.effects.RefetchChunk` for it so
the cache layer can fetch a good copy from another holder. Chunks the caller
expects (``expected``, from the catalog) but that are absent are reported as
missing, with a RefetchChunk too; so is an expected chunk whose path holds
a folder, a link or a device instead of a file (it is quarantined: ``get``
could not read it). Every manifest file is verified too (encoding, signature,
file name): one that fails is quarantined and reported in ``bad_manifests``,
its chunks kept (docs/content/operations.md). Scrubbing reads no clock: the
caller passes ``started``/``finished`` times if it wants a duration in the
report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from meshcore.errors import DecodeError, IntegrityError
from meshcore.kernels import blake2b_256

from .effects import RefetchChunk
from .manifest import SignedManifest, parse_manifest
from .store import ChunkStore

__all__ = ["ScrubReport", "scrub", "verify_chunk", "verify_manifest"]


def verify_chunk(digest: bytes, data: bytes | bytearray | memoryview) -> None:
    """Raise :class:`IntegrityError` unless ``blake2b_256(data) == digest`` (32 bytes)."""
    if not isinstance(digest, bytes | bytearray | memoryview) or len(digest) != 32:
        raise ValueError("digest: expected 32 bytes")
    if blake2b_256(data) != bytes(digest):
        raise IntegrityError(f"chunk {bytes(digest).hex()}: data does not match its digest")


def verify_manifest(raw: bytes | bytearray | memoryview) -> SignedManifest:
    """Parse and verify a signed manifest (:func:`~meshcore.content.manifest.parse_manifest`).

    Raises :class:`DecodeError` for non-canonical or malformed bytes and
    :class:`IntegrityError` for a bad signature.
    """
    return parse_manifest(raw)


@dataclass(slots=True)
class ScrubReport:
    """What a scrub found and did.

    ``checked`` chunk files were read, ``ok`` passed; ``corrupt`` lists the
    digests that failed (each with its reason in ``reasons``), ``quarantined``
    the paths they were moved to, ``missing`` the expected digests that were
    absent; ``repaired_effects`` asks the cache layer to fetch each corrupt or
    missing chunk again. ``full`` says whether BLAKE2b was checked.
    ``duration`` is ``finished - started`` when the caller gave both (seconds).
    """

    full: bool = False
    checked: int = 0
    ok: int = 0
    corrupt: list[bytes] = field(default_factory=list)
    reasons: dict[bytes, str] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    missing: list[bytes] = field(default_factory=list)
    repaired_effects: list[RefetchChunk] = field(default_factory=list)
    duration: float | None = None
    manifests: int = 0
    bad_manifests: dict[bytes, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """True when nothing was corrupt or missing and every manifest verified."""
        return not self.corrupt and not self.missing and not self.bad_manifests

    def summary(self) -> str:
        """One line for a log or the CLI."""
        kind = "full (BLAKE2b)" if self.full else "fast (xxh3)"
        text = (
            f"scrub {kind}: {self.checked} checked, {self.ok} ok, {len(self.corrupt)} corrupt "
            f"(quarantined {len(self.quarantined)}), {len(self.missing)} missing; "
            f"{self.manifests} manifests, {len(self.bad_manifests)} bad (quarantined)"
        )
        if self.duration is not None:
            text += f" in {self.duration:.1f} s"
        return text


def scrub(
    store: ChunkStore,
    *,
    full: bool = False,
    expected: Iterable[bytes] = (),
    started: float | None = None,
    finished: float | None = None,
) -> ScrubReport:
    """Check every chunk in ``store`` (fast xxh3 pass, or BLAKE2b too with ``full``).

    Corrupt files are quarantined; ``expected`` digests that are absent are
    reported missing. Returns a :class:`ScrubReport`; raises
    :class:`~meshcore.errors.StorageError` only if quarantining itself fails.
    """
    report = ScrubReport(full=full)
    for digest in store.irregular():
        reason = "not a regular file (a folder, link or device where the chunk belongs)"
        report.checked += 1
        report.corrupt.append(digest)
        report.reasons[digest] = reason
        with contextlib.suppress(KeyError):
            report.quarantined.append(str(store.quarantine(digest, reason)))
        report.repaired_effects.append(RefetchChunk(digest, f"corrupt: {reason}"))
    for digest in list(store):
        report.checked += 1
        reason = store.check(digest, full=full)
        if reason is None:
            report.ok += 1
            continue
        if reason == "missing":  # pragma: no cover - deleted while we scrubbed: not corruption
            report.checked -= 1
            continue
        report.corrupt.append(digest)
        report.reasons[digest] = reason
        with contextlib.suppress(KeyError):  # KeyError: raced a delete
            report.quarantined.append(str(store.quarantine(digest, reason)))
        report.repaired_effects.append(RefetchChunk(digest, f"corrupt: {reason}"))
    for digest in expected:
        digest = bytes(digest)
        if digest not in report.reasons and not store.has(digest):
            report.missing.append(digest)
            report.repaired_effects.append(RefetchChunk(digest, "missing from the store"))
    _scrub_manifests(store, report)
    if started is not None and finished is not None:
        report.duration = finished - started
    return report


def _scrub_manifests(store: ChunkStore, report: ScrubReport) -> None:
    for cid in list(store.iter_manifests()):
        try:
            raw = store.read_manifest(cid)
        except KeyError:  # pragma: no cover - deleted while we scrubbed
            continue
        except DecodeError as exc:  # not a regular file
            raw, problem = None, str(exc)
        report.manifests += 1
        if raw is not None:
            try:
                signed = parse_manifest(raw)
                problem = ("file name does not match its content id"
                           if signed.content_id != cid else None)
            except DecodeError as exc:
                problem = str(exc)
        if problem is None:
            continue
        report.bad_manifests[cid] = problem
        with contextlib.suppress(KeyError):
            store.quarantine_manifest(cid, f"fails verification: {problem}")
