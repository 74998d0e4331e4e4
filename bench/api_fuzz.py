"""A longer schemathesis run against a live one-node devnet than the suite's.

    python bench/api_fuzz.py --examples 500 --seed 1

Starts a node (echorand.tools.devnet), runs `st run` with every check and the suite's
configuration (tests/data/schemathesis.toml), prints its report, exits with its status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_http_api import schemathesis_command  # noqa: E402

from echorand.tools.devnet import Devnet  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="examples per operation")
    parser.add_argument("--seed", type=int, default=1, help="schemathesis' seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="echorand-fuzz-") as directory:
        net = Devnet(Path(directory), nodes=1, accounts=8, seed="api-fuzz")
        net.create()
        with net:
            net.start()
            net.wait_ready(120)
            command = schemathesis_command(
                net.url(0, ""), args.examples, args.seed, deterministic=False
            )
            return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
