"""The discrete-event simulator that hosts meshcore's sans-I/O policy cores."""
