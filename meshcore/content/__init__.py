"""Community content: keys, manifests, the chunk store, the catalog and policies (issue 5)."""
