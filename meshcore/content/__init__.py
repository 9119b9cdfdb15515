"""Community content: keys, manifests, the chunk store, the catalog and policies (issue 5).

* :mod:`.keys` — Ed25519 node, publisher and curator keys (``cryptography``).
* :mod:`.manifest` — the canonical, signed manifest; content id = BLAKE2b-256 of its body.
* :mod:`.store` — the crash-safe, content-addressed chunk store with a byte budget.
* :mod:`.catalog` — the SQLite catalog, rebuilt from disk when corrupt or missing.
* :mod:`.publish` — streaming publish with bounded memory.
* :mod:`.classify`, :mod:`.access`, :mod:`.distribution` — the policies from config.
* :mod:`.node` — :class:`ContentNode`, the one serve path that enforces access.

Formats: docs/content/format.md; policies: docs/content/policies.md.
"""

from meshcore._lazy import lazy_exports

# Loaded on first use (meshcore/_lazy.py): importing the package stays cheap.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".access": ("GUEST", "AccessDecision", "AccessPolicy", "AccessRule", "Principal"),
        ".catalog": ("Catalog", "CatalogRebuilt", "ItemRecord", "OpenReport", "open_catalog"),
        ".classify": ("Classification", "ClassificationRule", "Classifier", "ItemFacts"),
        ".distribution": (
            "Action",
            "DistributionContext",
            "Placement",
            "evaluate",
            "rendezvous_rank",
        ),
        ".effects": ("RefetchChunk",),
        ".integrity": ("ScrubReport", "scrub", "verify_chunk", "verify_manifest"),
        ".keys": ("KeyPair", "load_or_create_keypair", "load_public_key", "verify_signature"),
        ".manifest": ("ChunkRef", "Manifest", "SignedManifest", "parse_manifest", "sign_manifest"),
        ".node": ("ContentNode", "UnknownContentError"),
        ".publish": ("PublishResult", "publish_file", "publish_stream"),
        ".settings": ("ContentSettings", "load_content_settings"),
        ".store": ("ChunkStore",),
    },
)
