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

from .access import GUEST, AccessDecision, AccessPolicy, AccessRule, Principal
from .catalog import Catalog, CatalogRebuilt, ItemRecord, OpenReport, open_catalog
from .classify import Classification, ClassificationRule, Classifier, ItemFacts
from .distribution import Action, DistributionContext, Placement, evaluate, rendezvous_rank
from .effects import RefetchChunk
from .integrity import ScrubReport, scrub, verify_chunk, verify_manifest
from .keys import KeyPair, load_or_create_keypair, load_public_key, verify_signature
from .manifest import ChunkRef, Manifest, SignedManifest, parse_manifest, sign_manifest
from .node import ContentNode, UnknownContentError
from .publish import PublishResult, publish_file, publish_stream
from .settings import ContentSettings, load_content_settings
from .store import ChunkStore

__all__ = [
    "GUEST",
    "AccessDecision",
    "AccessPolicy",
    "AccessRule",
    "Action",
    "Catalog",
    "CatalogRebuilt",
    "ChunkRef",
    "ChunkStore",
    "Classification",
    "ClassificationRule",
    "Classifier",
    "ContentNode",
    "ContentSettings",
    "DistributionContext",
    "ItemFacts",
    "ItemRecord",
    "KeyPair",
    "Manifest",
    "OpenReport",
    "Placement",
    "Principal",
    "PublishResult",
    "RefetchChunk",
    "ScrubReport",
    "SignedManifest",
    "UnknownContentError",
    "evaluate",
    "load_content_settings",
    "load_or_create_keypair",
    "load_public_key",
    "open_catalog",
    "parse_manifest",
    "publish_file",
    "publish_stream",
    "rendezvous_rank",
    "scrub",
    "sign_manifest",
    "verify_chunk",
    "verify_manifest",
    "verify_signature",
]
