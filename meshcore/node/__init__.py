"""The asyncio node driver: real sockets, real disk and the real clock around the cores."""
