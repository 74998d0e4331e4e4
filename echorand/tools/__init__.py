"""What runs on top of a node or the simulator: the CLI, the devnet, chaos runs, the
studies, the benchmarks, the HTTP client, multi-machine network kits."""
