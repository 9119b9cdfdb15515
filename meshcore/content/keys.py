"""Ed25519 identities: the node key and publisher/curator keys, kept on disk privately.

Theory of operation: every manifest is signed by its publisher with Ed25519
(RFC 8032), a 32-byte public key and a 64-byte signature, deterministic, so a
manifest signed twice gives the same bytes. The primitive comes from
``cryptography`` (pyca, backed by OpenSSL): it publishes abi3 wheels for
manylinux x86_64/aarch64/armv7l and musllinux x86_64/aarch64, and OpenWrt's
packages feed builds it as ``python3-cryptography``; PyNaCl has no armv7
wheel at all. docs/content/format.md says more.

Key files live at ``<state_dir>/keys/<name>.key``: the folder is created 0700,
the file 0600, written to a temporary file in the same folder, fsynced, and
published with ``link()`` (atomic, and never replaces a key another process
created in the meantime), then the folder is fsynced. A key file that group
or others can read is refused: a leaked publisher key lets anyone sign
manifests in that publisher's name. The file holds one ASCII line::

    meshcore-ed25519-secret-v1 <64 hex digits: the 32-byte RFC 8032 seed>

A public key in a config file is written ``ed25519:<64 hex digits>``, bare
``<64 hex digits>``, or standard/url-safe base64 of the 32 bytes (43 or 44
characters); :func:`load_public_key` accepts all three and raw 32 bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from meshcore._files import fsync_dir
from meshcore.errors import DecodeError, StorageError

__all__ = [
    "KEY_FILE_HEADER",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "KeyPair",
    "format_public_key",
    "load_or_create_keypair",
    "load_public_key",
    "verify_signature",
]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
KEY_FILE_HEADER = "meshcore-ed25519-secret-v1"
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class KeyPair:
    """An Ed25519 key pair. ``public`` is the 32-byte public key.

    Build one with :meth:`generate`, :meth:`from_seed` or
    :func:`load_or_create_keypair`. The secret never leaves the object except
    through :meth:`seed` (used to write the key file).
    """

    __slots__ = ("_private", "public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        if not isinstance(private, Ed25519PrivateKey):
            raise TypeError("private: expected an Ed25519PrivateKey")
        self._private = private
        self.public: bytes = private.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key pair from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """The key pair of a 32-byte RFC 8032 seed (ValueError on another length)."""
        if not isinstance(seed, bytes | bytearray | memoryview):
            raise TypeError("seed: expected bytes")
        if len(seed) != SEED_SIZE:
            raise ValueError(f"seed: expected {SEED_SIZE} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    def seed(self) -> bytes:
        """The 32-byte secret seed. Handle with care: it is the identity."""
        return self._private.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._private.sign(bytes(message))

    def __repr__(self) -> str:
        return f"KeyPair(public={format_public_key(self.public)})"


def verify_signature(public: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public``.

    Any malformed key or signature (wrong length, not a curve point) gives
    False, never an exception: callers treat all of them as "forged".
    """
    if len(public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public)).verify(bytes(signature), bytes(message))
    except (InvalidSignature, ValueError):
        return False
    return True


def format_public_key(public: bytes) -> str:
    """The config-file spelling of a public key: ``ed25519:<64 lowercase hex digits>``."""
    if len(public) != PUBLIC_KEY_SIZE:
        raise ValueError(f"public: expected {PUBLIC_KEY_SIZE} bytes, got {len(public)}")
    return "ed25519:" + bytes(public).hex()


def load_public_key(text_or_bytes: str | bytes) -> bytes:
    """Parse a public key from a config value; returns the 32 raw bytes.

    Accepts raw 32 bytes, ``ed25519:<hex>``, bare 64-digit hex, or base64 /
    url-safe base64 (with or without ``=`` padding) of 32 bytes. Surrounding
    white space is ignored. Raises ValueError naming the accepted forms.
    """
    if isinstance(text_or_bytes, bytes | bytearray | memoryview):
        raw = bytes(text_or_bytes)
        if len(raw) == PUBLIC_KEY_SIZE:
            return raw
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(
                f"public key: expected {PUBLIC_KEY_SIZE} raw bytes or ASCII text, "
                f"got {len(raw)} bytes"
            ) from None
    elif isinstance(text_or_bytes, str):
        text = text_or_bytes
    else:
        raise TypeError(f"public key: expected str or bytes, got {type(text_or_bytes).__name__}")
    text = text.strip()
    body = text[8:] if text.startswith("ed25519:") else text
    if _HEX64.fullmatch(body):
        return bytes.fromhex(body)
    if not text.startswith("ed25519:") and len(body) in (43, 44):
        padded = body + "=" * (-len(body) % 4)
        for altchars in (None, b"-_"):
            try:
                raw = base64.b64decode(padded, altchars=altchars, validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) == PUBLIC_KEY_SIZE and _b64_canonical(raw, body):
                return raw
    raise ValueError(
        "public key: expected 'ed25519:<64 hex digits>', 64 hex digits or base64 of "
        f"{PUBLIC_KEY_SIZE} bytes, got {text[:80]!r}"
    )


def _b64_canonical(raw: bytes, body: str) -> bool:
    # Reject base64 with non-zero padding bits or stray characters that a
    # lenient decoder would have dropped: one key, one spelling per alphabet.
    std = base64.b64encode(raw).decode("ascii")
    url = base64.urlsafe_b64encode(raw).decode("ascii")
    return body in (std, std.rstrip("="), url, url.rstrip("="))


def _encode_key_file(keypair: KeyPair) -> bytes:
    return f"{KEY_FILE_HEADER} {keypair.seed().hex()}\n".encode("ascii")


def _decode_key_file(data: bytes, path: Path) -> KeyPair:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError(f"{path}: key file is not ASCII text") from None
    parts = text.split()
    if len(parts) != 2 or parts[0] != KEY_FILE_HEADER or not _HEX64.fullmatch(parts[1]):
        raise DecodeError(
            f"{path}: not a meshcore key file (expected one line "
            f"'{KEY_FILE_HEADER} <64 hex digits>')"
        )
    return KeyPair.from_seed(bytes.fromhex(parts[1]))



def _ensure_private_dir(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_mode & 0o077:
            # Ours to fix: the folder holds secrets, nobody else needs to list it.
            os.chmod(folder, 0o700)
    except OSError as exc:
        raise StorageError(
            f"{folder}: cannot prepare the key folder: {exc.strerror or exc}", path=str(folder)
        ) from exc


def _read_key_file(path: Path) -> KeyPair:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise StorageError(
            f"{path}: cannot open the key file: {exc.strerror or exc}", path=str(path)
        ) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{path}: key file is not a regular file", path=str(path))
        if st.st_mode & 0o077:
            raise StorageError(
                f"{path}: key file is readable or writable by group/others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to use it. "
                f"Run 'chmod 600 {path}' if it was not exposed, otherwise make a new key",
                path=str(path),
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    return _decode_key_file(data, path)


def load_or_create_keypair(state_dir: Path | str, name: str) -> KeyPair:
    """Load ``<state_dir>/keys/<name>.key``, creating a new key there if absent.

    ``name`` is 1..64 characters of ``[A-Za-z0-9_.-]`` not starting with a dot
    (it becomes a file name; ValueError otherwise). The new file is mode 0600
    in a 0700 folder, written atomically. Raises :class:`StorageError` when
    the file cannot be written or is readable by group/others, and
    :class:`DecodeError` when it is not a key file.
    """
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
        raise ValueError(
            f"name: expected 1..64 of [A-Za-z0-9_.-] not starting with '.', got {name!r}"
        )
    folder = Path(state_dir) / "keys"
    _ensure_private_dir(folder)
    path = folder / f"{name}.key"
    if os.path.lexists(path):
        return _read_key_file(path)
    keypair = KeyPair.generate()
    tmp = folder / f".tmp-{name}-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # umask cannot widen it, but be explicit
            data = _encode_key_file(keypair)
            if os.write(fd, data) != len(data):
                raise OSError(errno.EIO, "short write")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process created the key first
        except FileExistsError:
            return _read_key_file(path)
        fsync_dir(folder)
    except OSError as exc:
        raise StorageError(
            f"{path}: cannot write the key file: {exc.strerror or exc}", path=str(path)
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return keypair
