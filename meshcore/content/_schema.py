"""The catalog's SQLite schema and its forward migrations.

``PRAGMA user_version`` holds the schema version. :data:`MIGRATIONS` is the
ordered list of scripts; migration ``i`` (1-based) takes a database from
version ``i - 1`` to ``i``. A new version only ever appends a script: a
released script is never edited, so a node upgraded across several versions
replays exactly the steps every other node replayed. Each script runs inside
one transaction together with its ``user_version`` bump, so a power cut
during an upgrade leaves the old version or the new one (SQLite DDL is
transactional).

Version 1: items (one row per manifest), their tags and ordered chunk lists,
chunk presence. Version 2: pins and per-item access counts.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1 = """
CREATE TABLE items (
    content_id   BLOB PRIMARY KEY,      -- BLAKE2b-256 of the canonical manifest body
    name         TEXT NOT NULL,         -- display only: never used as a path
    size         INTEGER NOT NULL,      -- bytes
    media_type   TEXT NOT NULL,
    access       TEXT NOT NULL,
    distribution TEXT NOT NULL,
    retention    TEXT,
    publisher    BLOB NOT NULL,         -- Ed25519 public key, 32 bytes
    created      INTEGER NOT NULL,      -- unix seconds (from the manifest)
    expires      INTEGER,               -- unix seconds or NULL
    stored_at    INTEGER NOT NULL,      -- unix seconds this node stored the manifest
    origin       INTEGER NOT NULL,      -- 1 when published on this node
    complete     INTEGER NOT NULL       -- 1 when every chunk is present
) WITHOUT ROWID;
CREATE INDEX items_expires ON items(expires) WHERE expires IS NOT NULL;
CREATE TABLE item_tags (
    content_id BLOB NOT NULL REFERENCES items(content_id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    PRIMARY KEY (content_id, tag)
) WITHOUT ROWID;
CREATE INDEX item_tags_tag ON item_tags(tag);
CREATE TABLE item_chunks (
    content_id BLOB NOT NULL REFERENCES items(content_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,        -- 0-based position in the file
    digest     BLOB NOT NULL,
    size       INTEGER NOT NULL,        -- bytes (uncompressed)
    PRIMARY KEY (content_id, seq)
) WITHOUT ROWID;
CREATE INDEX item_chunks_digest ON item_chunks(digest);
CREATE TABLE chunks (
    digest  BLOB PRIMARY KEY,
    size    INTEGER NOT NULL,
    present INTEGER NOT NULL,           -- 1 stored and believed good, 0 missing
    note    TEXT                        -- why it is missing (quarantine reason)
) WITHOUT ROWID;
"""

_V2 = """
CREATE TABLE pins (
    content_id BLOB PRIMARY KEY REFERENCES items(content_id) ON DELETE CASCADE,
    until      INTEGER,                 -- unix seconds, NULL = no end
    reason     TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE access_counts (
    content_id BLOB PRIMARY KEY REFERENCES items(content_id) ON DELETE CASCADE,
    reads      INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    last_read  INTEGER
) WITHOUT ROWID;
"""

#: Migration scripts, oldest first; index ``i`` upgrades version ``i`` to ``i + 1``.
MIGRATIONS: tuple[str, ...] = (_V1, _V2)
#: The version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)
