"""Local network intelligence: discovery, link quality, topology, routes (issue 4).

The public API is re-exported here once the modules land; until then import
the submodules directly.
"""
