"""`echorand chaos` for real: short seeded runs (60 s, 4 nodes), each nemesis kind in one of
three runs, each asserting the checker's verdict. About a minute each, and root: marked
`chaos` (deselect with `-m "not chaos"`), skipped, saying why, where namespaces cannot be
made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from echorand.tools.chaos import hosts as hostlib
from echorand.tools.chaos.nemesis import schedule

NODES = 4
DURATION = 60.0
RUNS = {
    "partition": 11,
    "kill,pause": 12,
    "slow,disk": 13,
}
"""Nemesis kinds of each run, and its seed."""

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        hostlib.preflight(tc=True) is not None, reason=str(hostlib.preflight(tc=True))
    ),
]


@pytest.mark.parametrize(("nemesis", "seed"), RUNS.items())
def test_a_seeded_run_passes_the_checker(nemesis: str, seed: int, tmp_path: Path) -> None:
    kinds = nemesis.split(",")
    faults = schedule(seed, kinds, DURATION, NODES)
    assert {f.kind for f in faults} == set(kinds), "the seed's schedule misses a kind"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "echorand.tools.cli", "chaos",
            "--nodes", str(NODES), "--duration", str(DURATION), "--nemesis", nemesis,
            "--seed", str(seed), "--json", "--dir", str(tmp_path / "run"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    out, err = proc.communicate(timeout=900)
    assert proc.returncode in (0, 1), err[-3000:]
    summary = json.loads(out)
    assert summary["violations"] == [] and proc.returncode == 0, err[-3000:]
    assert summary["faults"] == {kind: sum(f.kind == kind for f in faults) for kind in kinds}
    tx = summary["transactions"]
    assert tx["acknowledged"] > 0 and tx["committed"] >= tx["acknowledged"] - tx["refused_later"]
    assert tx["lost"] == tx["duplicated"] == 0
    forks = summary["forks"]
    assert summary["exits"]["crashes"] == 0 and forks["detected"] == forks["resolved"]
    assert summary["recovery_s"]["heals"] == len(faults)
    if "disk" in kinds:
        assert summary["exits"]["disk_full_stops"] >= 1
    run_name = f"{hostlib.PREFIX}-{proc.pid}-"
    assert run_name not in hostlib.run("ip", "netns", "list"), "a namespace outlived the run"
    assert run_name not in Path("/proc/mounts").read_text(), "a tmpfs outlived the run"
