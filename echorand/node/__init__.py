"""A node process: the wiring of core, ledger and network on uvloop (`node`), its
configuration, HTTP API, metrics and logs."""
