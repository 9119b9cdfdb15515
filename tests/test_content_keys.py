"""Ed25519 keys: RFC 8032 vectors, verification, key files with owner-only permissions."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from meshcore.content import keys as keys_mod
from meshcore.content.keys import (
    KEY_FILE_HEADER,
    KeyPair,
    format_public_key,
    load_or_create_keypair,
    load_public_key,
    verify_signature,
)
from meshcore.errors import DecodeError, StorageError

# RFC 8032 section 7.1, TEST 1 and TEST 2.
RFC_SEED_1 = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUB_1 = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG_1 = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
RFC_SEED_2 = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_PUB_2 = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC_MSG_2 = bytes.fromhex("72")
RFC_SIG_2 = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def test_rfc8032_vectors():
    kp = KeyPair.from_seed(RFC_SEED_1)
    assert kp.public == RFC_PUB_1
    assert kp.sign(b"") == RFC_SIG_1
    assert verify_signature(RFC_PUB_1, RFC_SIG_1, b"")
    kp2 = KeyPair.from_seed(RFC_SEED_2)
    assert kp2.public == RFC_PUB_2
    assert kp2.sign(RFC_MSG_2) == RFC_SIG_2
    assert kp2.seed() == RFC_SEED_2


def test_verify_rejects_everything_wrong():
    kp = KeyPair.generate()
    other = KeyPair.generate()
    sig = kp.sign(b"hello")
    assert len(sig) == 64 and len(kp.public) == 32
    assert verify_signature(kp.public, sig, b"hello")
    assert not verify_signature(kp.public, sig, b"hellp")
    assert not verify_signature(other.public, sig, b"hello")
    bad = bytearray(sig)
    bad[10] ^= 1
    assert not verify_signature(kp.public, bytes(bad), b"hello")
    assert not verify_signature(kp.public[:31], sig, b"hello")
    assert not verify_signature(kp.public, sig[:63], b"hello")
    # 32 bytes that are not a valid curve point encoding
    assert not verify_signature(b"\xff" * 32, sig, b"hello")


def test_keypair_arguments():
    with pytest.raises(TypeError):
        KeyPair("not a key")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        KeyPair.from_seed(b"short")
    with pytest.raises(TypeError, match="seed"):
        KeyPair.from_seed("0" * 32)  # type: ignore[arg-type]
    assert "ed25519:" in repr(KeyPair.from_seed(RFC_SEED_1))


def test_key_file_created_private_and_reloaded(tmp_path):
    kp = load_or_create_keypair(tmp_path, "node")
    folder = tmp_path / "keys"
    path = folder / "node.key"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text("ascii")
    assert text == f"{KEY_FILE_HEADER} {kp.seed().hex()}\n"
    again = load_or_create_keypair(str(tmp_path), "node")
    assert again.public == kp.public
    assert load_or_create_keypair(tmp_path, "publisher").public != kp.public
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp")]


def test_key_folder_permissions_tightened(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    load_or_create_keypair(tmp_path, "node")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_readable_key_file_refused(tmp_path, mode):
    load_or_create_keypair(tmp_path, "node")
    path = tmp_path / "keys" / "node.key"
    os.chmod(path, mode)
    with pytest.raises(StorageError, match="group/others") as exc:
        load_or_create_keypair(tmp_path, "node")
    assert exc.value.path == str(path)


def test_corrupt_key_files(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    for name, content in [
        ("bin", b"\xff\xfe"),
        ("words", b"hello world\n"),
        ("short", f"{KEY_FILE_HEADER} abcd\n".encode()),
        ("header", ("other-header " + "00" * 32 + "\n").encode()),
    ]:
        p = folder / f"{name}.key"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, content)
        os.close(fd)
        with pytest.raises(DecodeError, match=str(p)):
            load_or_create_keypair(tmp_path, name)


def test_key_path_problems(tmp_path):
    with pytest.raises(ValueError, match="name"):
        load_or_create_keypair(tmp_path, "../escape")
    with pytest.raises(ValueError, match="name"):
        load_or_create_keypair(tmp_path, ".hidden")
    with pytest.raises(ValueError, match="name"):
        load_or_create_keypair(tmp_path, 5)  # type: ignore[arg-type]
    # keys/ is a file, not a folder
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "keys").write_text("x")
    with pytest.raises(StorageError, match="key folder"):
        load_or_create_keypair(tmp_path / "a", "node")
    # a symlink key file is not followed (could point at a world-readable file)
    load_or_create_keypair(tmp_path / "b", "real")
    os.symlink(tmp_path / "b" / "keys" / "real.key", tmp_path / "b" / "keys" / "link.key")
    with pytest.raises(StorageError, match="cannot open"):
        load_or_create_keypair(tmp_path / "b", "link")
    # a folder where the key file should be
    (tmp_path / "b" / "keys" / "dir.key").mkdir()
    with pytest.raises(StorageError, match="not a regular file"):
        load_or_create_keypair(tmp_path / "b", "dir")


def test_key_write_failure_leaves_nothing(tmp_path, monkeypatch):
    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keys_mod.os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="cannot write the key file"):
        load_or_create_keypair(tmp_path, "node")
    assert list((tmp_path / "keys").iterdir()) == []


def test_concurrent_creator_wins(tmp_path, monkeypatch):
    """Another process creates the key between our check and our link: we use theirs."""
    theirs = KeyPair.generate()
    real_generate = KeyPair.generate.__func__

    def racing_generate(cls):
        path = tmp_path / "keys" / "node.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, f"{KEY_FILE_HEADER} {theirs.seed().hex()}\n".encode())
        os.close(fd)
        return real_generate(cls)

    monkeypatch.setattr(KeyPair, "generate", classmethod(racing_generate))
    got = load_or_create_keypair(tmp_path, "node")
    assert got.public == theirs.public
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["node.key"]


def test_load_public_key_forms():
    pub = RFC_PUB_1
    std = base64.b64encode(pub).decode()
    url = base64.urlsafe_b64encode(pub).decode()
    forms = [
        pub,
        bytearray(pub),
        pub.hex(),
        pub.hex().upper(),
        "ed25519:" + pub.hex(),
        "  ed25519:" + pub.hex() + "\n",
        format_public_key(pub),
        std,
        std.rstrip("="),
        url,
        url.rstrip("="),
        ("ed25519:" + pub.hex()).encode(),
    ]
    for form in forms:
        assert load_public_key(form) == pub, form


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ed25519:" + "00" * 31,
        "zz" * 32,
        "ed25519:" + base64.b64encode(RFC_PUB_1).decode(),  # prefix means hex
        base64.b64encode(RFC_PUB_1[:31]).decode(),
        # base64 of 32 bytes has 4 spare bits; a set spare bit is a second spelling
        base64.b64encode(RFC_PUB_1).decode()[:42] + "B=",
        b"\xff" * 40,
        b"\x00" * 31,
    ],
)
def test_load_public_key_rejects(bad):
    with pytest.raises(ValueError, match="public key"):
        load_public_key(bad)


def test_load_public_key_types():
    with pytest.raises(TypeError):
        load_public_key(12)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_public_key(b"short")


def test_short_key_write(tmp_path, monkeypatch):
    monkeypatch.setattr(keys_mod.os, "write", lambda fd, data: 1)
    with pytest.raises(StorageError, match="short write"):
        load_or_create_keypair(tmp_path, "node")
    assert list((tmp_path / "keys").iterdir()) == []
