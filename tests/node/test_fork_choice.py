"""One fork choice, two hosts: the same fork scenarios against the node (`Node.fork_choice`
through `NodeChains`, on the real LMDB `Ledger` in a temp dir) and the simulator
(`SimNode.fork_choice` through `SimChains`, on `SimNode.chain`), each node holding every
account's key of its genesis (the harnesses of test_executor.py).

Two nodes of one kind share rounds 1-2; then ours holds a proposed block and an empty one,
theirs an empty block and two proposed ones (more non-empty blocks: theirs wins the
whitepaper's rule). Every block is certified by the whole deciding committee of its round
on its own chain. Each scenario checks the chain the host holds afterwards, the driver's
counters, and the host calls the driver made (`Calls`): the same on both hosts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _chain import certificate, proposed_block
from test_executor import NodeHarness, SimHarness
from test_node_forks import gc_signature

from echorand.core.forkchoice import ChainHost, ForkChoice
from echorand.core.validate import DropReason
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.signing import sign_final
from echorand.tools.devnet import DEVNET_PARAMS
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import FINAL_STEP, Block, Certificate, FinalProof

CertifiedBlock = tuple[Block, Certificate]
PEER = 7
"""The peer every chain comes from (a node's network charges it; the simulator's, nobody)."""
ACTIONS = frozenset(
    {
        "stop_consensus",
        "restart_consensus",
        "rollback",
        "commit",
        "record_final",
        "rolled_back",
        "fork_evidence",
        "halt",
        "penalize",
    }
)
"""What the driver does through its host (the rest it reads)."""


@dataclass
class Calls:
    """A `ChainHost` that notes each action the driver asks of it, then passes it on."""

    host: ChainHost[Any]
    calls: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.host, name)
        if name not in ACTIONS:
            return attr

        def noted(*args: Any) -> Any:
            self.calls.append(name)
            return attr(*args)

        return noted


Harness = SimHarness | NodeHarness


@dataclass
class Side:
    """One node of the pair, its fork choice watched, and every account's key pair."""

    harness: Harness
    keypairs: dict[int, Keypair]

    @property
    def fork_choice(self) -> ForkChoice[Any]:
        return self.harness.node.fork_choice  # type: ignore[return-value]

    def watch(self) -> Calls:
        """From now on, note the driver's actions."""
        calls = Calls(self.fork_choice.host)
        self.fork_choice.host = calls
        return calls

    @property
    def host(self) -> ChainHost[Any]:
        return self.fork_choice.host

    def hashes(self) -> list[bytes]:
        return [block.hash for block, _ in self.harness.chain()]

    def blocks(self, first: int) -> list[CertifiedBlock]:
        return self.harness.chain()[first - 1 :]

    def from_floor(self, other: Side) -> list[CertifiedBlock]:
        """`other`'s chain from the first round this node could roll back (what it fetches)."""
        return other.blocks(self.host.chain.rollback_floor + 1)

    def extend(self, *, empty: bool = False) -> CertifiedBlock:
        """Commit the next block, certified by every member of its round's deciding
        committee on this node's chain (step 4 for a proposed block, 5 for the empty)."""
        host = self.host
        r = host.chain.tip + 1
        ctx = host.round_context(r)
        if empty:
            block = Block.empty(r, ctx.prev_hash)
        else:
            producer = min(a for a in self.keypairs if ctx.priority(a) is not None)
            block = proposed_block(
                r, ctx.prev_hash, ctx.seed, producer, self.keypairs[producer],
                prev_cert=ctx.carried, chain=host.genesis_hash,
                seed_mode=ctx.params.seed_mode,
            )  # fmt: skip
        step = 5 if empty else 4
        signers = [(a, self.keypairs[a]) for a in ctx.weights(step)]
        cert = certificate(block, signers, chain=host.genesis_hash)
        host.commit(block, cert)
        return block, cert

    def final(self, round: int, *, votes: int | None = None) -> FinalProof:
        """The final committee of `round` on this node's chain votes its block (the first
        `votes` of them only, if given)."""
        host = self.host
        ctx = host.round_context(round)
        block_hash = host.chain.hash(round)
        assert block_hash is not None
        signed = tuple(
            (a, sign_final(self.keypairs[a], host.genesis_hash, round, a, block_hash).signature)
            for a in sorted(ctx.weights(FINAL_STEP))
        )
        if votes is not None:
            weight = sum(ctx.weight(FINAL_STEP, a) for a, _ in signed[:votes])
            assert weight <= ctx.params.t_f, "precondition: too light to be final"
            signed = signed[:votes]
        return FinalCertificate(round, block_hash, signed).proof()


@pytest.fixture(scope="module")
def genesis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forkchoice") / "genesis"
    create_devnet(path, accounts=4, nodes=1, seed="forkchoice", params=DEVNET_PARAMS)
    return path


@dataclass
class Pair:
    ours: Side
    theirs: Side
    other: list[CertifiedBlock]
    """Their blocks from the fork round (3) on."""


@pytest.fixture(params=["sim", "node"])
def pair(request: pytest.FixtureRequest, genesis_dir: Path, tmp_path: Path) -> Iterator[Pair]:
    """Two nodes of one kind of host, on one genesis, forked at round 3."""
    if request.param == "sim":
        harnesses: list[Harness] = [SimHarness(), SimHarness()]
        keypairs = dict(harnesses[0].node.keys)  # type: ignore[union-attr]
    else:
        harnesses = [NodeHarness(tmp_path / name, genesis_dir) for name in ("a", "b")]
        keypairs = dict(load_node_keys(node_keys_path(genesis_dir, 0)).keypairs())
    ours, theirs = (Side(h, keypairs) for h in harnesses)  # type: ignore[arg-type]
    try:
        for _ in range(2):
            theirs.host.commit(*ours.extend())
        ours.extend()
        ours.extend(empty=True)
        other = [theirs.extend(empty=True), theirs.extend(), theirs.extend()]
        for harness in harnesses:
            harness.start()  # consensus runs on the tip (its timers never fire here)
        yield Pair(ours, theirs, other)
    finally:
        for harness in harnesses:
            harness.close()


def evidence_of(side: Side) -> list[int]:
    """The rounds of the fork evidence the host kept."""
    h = side.harness
    return [e.round for e in (h.node.forks if isinstance(h, NodeHarness) else h.node.evidence)]


def test_the_winning_chain_is_kept_and_the_fork_reported(pair: Pair) -> None:
    """Theirs wins the whitepaper's rule: their node keeps its chain, and our certificate of
    the fork round, checked in that round's context on its chain, is fork evidence."""
    side = pair.theirs
    before = side.hashes()
    calls = side.watch()
    assert side.fork_choice.on_fork(PEER, side.from_floor(pair.ours)) is False
    assert side.hashes() == before
    assert calls.calls == ["fork_evidence"]
    assert evidence_of(side) == [3]
    assert side.fork_choice.stats["rollbacks"] == 0 and side.harness.node.halted is None


def test_the_losing_node_switches_to_the_other_chain(pair: Pair) -> None:
    side = pair.ours
    calls = side.watch()
    assert side.fork_choice.on_fork(PEER, side.from_floor(pair.theirs)) is True
    assert side.hashes() == pair.theirs.hashes()
    assert calls.calls == [
        "stop_consensus", "rollback", "commit", "commit", "commit", "fork_evidence",
        "rolled_back", "restart_consensus",
    ]  # fmt: skip
    stats = side.fork_choice.stats
    assert (stats["rollbacks"], stats["rolled_back_blocks"]) == (1, 2)
    assert evidence_of(side) == [3]


def test_a_forged_certificate_in_their_chain_restores_ours(pair: Pair) -> None:
    """Their round-4 certificate does not verify: applied up to round 3 (whose certificate
    passed: evidence), then ours is restored."""
    side = pair.ours
    before = side.hashes()
    block, cert = pair.other[1]
    forged = Certificate(cert.round, cert.step, cert.b, cert.block_hash, cert.leader,
                         [(s, bytes(64)) for s, _ in cert.votes])  # fmt: skip
    chain = side.from_floor(pair.theirs)
    chain[chain.index((block, cert))] = (block, forged)
    calls = side.watch()
    assert side.fork_choice.on_fork(PEER, chain) is False
    assert side.hashes() == before
    assert calls.calls == [
        "stop_consensus", "rollback", "commit", "fork_evidence", "rollback", "commit",
        "commit", "rolled_back", "restart_consensus",
    ]  # fmt: skip
    assert evidence_of(side) == [3] and side.fork_choice.stats["rollbacks"] == 1


def test_a_final_proof_that_fails_on_their_chain_restores_ours_and_charges_the_peer(
    pair: Pair,
) -> None:
    """Our block of round 4 with final votes of valid signatures but too little weight in
    its final committee: the other node rolls back to judge it on our chain, refuses it,
    restores its own and charges the peer."""
    side = pair.theirs
    before = side.hashes()
    proof = pair.ours.final(4, votes=1)
    calls = side.watch()
    assert side.fork_choice.on_fork(PEER, side.from_floor(pair.ours), proof) is False
    assert side.hashes() == before and side.host.chain.final_round == 0
    assert calls.calls == [
        "stop_consensus", "rollback", "commit", "commit", "fork_evidence", "penalize",
        "rollback", "commit", "commit", "commit", "rolled_back", "restart_consensus",
    ]  # fmt: skip
    if isinstance(side.harness, NodeHarness):
        assert side.harness.outlet.penalized == [DropReason.BAD_CERTIFICATE]


def test_a_final_proof_that_holds_on_their_chain_wins_and_is_final_here(pair: Pair) -> None:
    """The same block with its whole final committee's votes: it beats the whitepaper's rule,
    and round 4 is final at the other node too."""
    side = pair.theirs
    proof = pair.ours.final(4)
    calls = side.watch()
    assert side.fork_choice.on_fork(PEER, side.from_floor(pair.ours), proof) is True
    assert side.hashes() == pair.ours.hashes() and side.host.chain.final_round == 4
    assert calls.calls == [
        "stop_consensus", "rollback", "commit", "commit", "fork_evidence", "record_final",
        "rolled_back", "restart_consensus",
    ]  # fmt: skip


def test_two_final_blocks_on_chains_that_part_halt(pair: Pair) -> None:
    """Our round 3 is final here, their round 3 (the fork round, whose context the chains
    share) proves final too: the adversary exceeded f."""
    side = pair.ours
    side.host.record_final(FinalCertificate.from_proof(side.final(3)))
    proof = pair.theirs.final(3)
    calls = side.watch()
    assert side.fork_choice.on_fork(PEER, pair.theirs.blocks(3), proof) is False
    assert calls.calls == ["halt"]
    halted = side.harness.node.halted
    assert halted is not None and "two final blocks" in halted
    assert side.fork_choice.stats["rollbacks"] == 0


def test_a_chain_that_does_not_attach_above_our_floor_is_refused(pair: Pair) -> None:
    """Ours is final at round 4; theirs from round 4 on does not extend our round 3: it
    parted below our last final block and can never reach it. Kept out, no halt."""
    side = pair.ours
    side.host.record_final(FinalCertificate.from_proof(side.final(4)))
    before = side.hashes()
    calls = side.watch()
    assert side.fork_choice.on_fork(PEER, pair.theirs.blocks(4), pair.theirs.final(4)) is False
    assert side.hashes() == before and calls.calls == []
    assert side.fork_choice.stats["refused_chains"] == 1 and side.harness.node.halted is None


def test_a_producer_message_on_another_chain_raises_the_suspicion(pair: Pair) -> None:
    """Of a round in (rollback floor, tip + 1], built on another H(B_{r-1}) than ours."""
    ours, theirs = pair.ours.host.chain, pair.theirs.host.chain
    another = pair.ours.fork_choice.another_chain
    assert another(gc_signature(5, theirs.hash(4)))  # our next round, their chain
    assert not another(gc_signature(5, ours.hash(4)))
    assert another(gc_signature(4, theirs.hash(3)))  # a round we hold, another chain
    assert not another(gc_signature(3, ours.hash(2)))  # the common prefix
    assert not another(gc_signature(6, theirs.hash(5)))  # ahead of us: sync finds out
    pair.ours.host.record_final(FinalCertificate.from_proof(pair.ours.final(4)))
    assert not another(gc_signature(4, theirs.hash(3)))  # at or below the floor: nothing
