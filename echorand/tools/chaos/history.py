"""What a chaos run records, and what the checker reads: the history (every client request
and its answer, every fault, every node exit, every change of a node's tip) and, at the
end, each node's ledger. Times are seconds since the run's start (the harness's monotonic
clock). Everything round-trips through JSON (`history.json` in the run directory).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ACK = "ack"
"""The node's API answered 200: the transaction was admitted to its mempool."""
REFUSED = "refused"
"""The node answered with a reason (4xx)."""
TIMEOUT = "timeout"
"""No answer in time: the transaction may or may not have been admitted."""
ERROR = "error"
"""The request failed (connection refused or reset): not admitted by that node."""
OUTCOMES = (ACK, REFUSED, TIMEOUT, ERROR)

START = "start"
HEAL = "heal"


@dataclass(frozen=True, slots=True)
class Op:
    """One submission of one transaction to one node, and its answer."""

    lane: int
    nonce: int
    tx: str
    """The transaction's id (hex). A lane's transaction of a nonce is always the same bytes,
    so a resubmission has the same id."""
    node: int
    start: float
    end: float
    outcome: str
    reason: str | None = None
    resubmit: bool = False
    """The lane had submitted this transaction before (the same bytes, again)."""


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """The nemesis started or healed a fault."""

    t: float
    kind: str
    action: str
    nodes: tuple[int, ...]
    detail: str
    sides: tuple[tuple[int, ...], ...] = ()
    """A partition's sides (a bridge node is in none)."""


@dataclass(frozen=True, slots=True)
class NodeExit:
    """A node process that exited on its own (not one the nemesis killed)."""

    t: float
    node: int
    code: int
    disk_full: bool
    """Its disk was full (a disk fault on it was active) when it exited."""
    log_tail: str


@dataclass(frozen=True, slots=True)
class TipSample:
    """A node's tip as the monitor saw it change (tip None: the node did not answer)."""

    t: float
    node: int
    tip: int | None
    hash: str | None


@dataclass(frozen=True, slots=True)
class CommitTime:
    """When a node committed a round, by its own clock (`committed_at_ms` of its
    `GET /block/{round}`, on this machine's wall clock, made run time): read at the end for
    the rounds after each heal, to time the recovery."""

    node: int
    round: int
    t: float


@dataclass(slots=True)
class History:
    seed: int
    nodes: int
    lanes: list[str] = field(default_factory=list)
    """The sender's public key (hex) of each lane."""
    ops: list[Op] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    exits: list[NodeExit] = field(default_factory=list)
    samples: list[TipSample] = field(default_factory=list)
    commits: list[CommitTime] = field(default_factory=list)
    wall_start: float = 0.0
    """The wall-clock time (Unix seconds) of the run's time 0."""
    load_end: float | None = None
    """When the client stopped offering new transactions (it resubmits after that)."""
    final_heal: float | None = None
    """When the last fault was healed."""
    caught_up_round: int = 0
    """The highest tip any node had at the final heal: every node must reach it."""
    end: float = 0.0
    final_status: list[dict[str, Any] | None] = field(default_factory=list)
    """Each node's round, step, tip and final round as its last `GET /status` gave them
    (None: it did not answer)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> History:
        return cls(
            seed=doc["seed"],
            nodes=doc["nodes"],
            lanes=list(doc["lanes"]),
            ops=[Op(**op) for op in doc["ops"]],
            faults=[
                FaultEvent(
                    **{
                        **f,
                        "nodes": tuple(f["nodes"]),
                        "sides": tuple(tuple(side) for side in f.get("sides", ())),
                    }
                )
                for f in doc["faults"]
            ],
            exits=[NodeExit(**e) for e in doc["exits"]],
            samples=[TipSample(**s) for s in doc["samples"]],
            commits=[CommitTime(**c) for c in doc["commits"]],
            wall_start=doc["wall_start"],
            load_end=doc["load_end"],
            final_heal=doc["final_heal"],
            caught_up_round=doc["caught_up_round"],
            end=doc["end"],
            final_status=list(doc.get("final_status", [])),
        )


@dataclass(frozen=True, slots=True)
class CommittedTx:
    round: int
    tx: str
    sender: str
    nonce: int


@dataclass(frozen=True, slots=True)
class NodeLedger:
    """One node's ledger at the end, read from its LMDB directory after it stopped, and what
    its API said about finality before it stopped."""

    node: int
    tip: int
    final_round: int
    """Rounds up to this one are final on this node (`checker.final_round`)."""
    hashes: tuple[str, ...]
    """The block hash of rounds 1..tip."""
    empty_rounds: tuple[int, ...]
    txs: tuple[CommittedTx, ...]
    supply: tuple[int, int, int]
    """(genesis total, minted, sum of all balances)."""
    store_problem: str | None = None
    """What `Ledger.check_store` (or opening the ledger) found wrong, if anything."""
    fork_evidence: int | None = None
    """Fork evidence the node reported (`GET /forks`), None when its API has none."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> NodeLedger:
        return cls(
            **{
                **doc,
                "hashes": tuple(doc["hashes"]),
                "empty_rounds": tuple(doc["empty_rounds"]),
                "txs": tuple(CommittedTx(**t) for t in doc["txs"]),
                "supply": tuple(doc["supply"]),
            }
        )
