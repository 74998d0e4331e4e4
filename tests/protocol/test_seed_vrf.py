"""The `vrf` seed mode (docs/protocol.md §4): a leader's block carries an RFC 9381 proof over
the seed payload, Q[r] is the hash of its output, and a block whose proof is wrong (or that
carries a signature instead) is refused on every path: live (gc_block), a certified block
from a peer (the core's check and the node's sync check), a block carrying CERT_{r-1}, and
the ledger's seed chain."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import _ecvrf_model as model
import pytest
from _chain import certificate, proposed_block
from _sandbox import CHAIN, PARAMS, Sandbox, key
from test_round import certificate_for

from echorand._native import GrindingStudy
from echorand.core.events import Commit
from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger, LedgerError
from echorand.node.config import NodeConfig
from echorand.node.node import Node
from echorand.protocol.certificate import SeedProofError, check_certificate
from echorand.protocol.seeds import next_seed, seed_credential, seed_signing_bytes
from echorand.protocol.signing import NO_SIGNATURE
from echorand.protocol.sortition import StakeTable
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire import vrf
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import Block

VRF_PARAMS = replace(PARAMS, seed_mode="vrf")


def with_credential(block: Block, credential: bytes) -> Block:
    """`block` with another seed credential, signed again by its producer."""
    assert block.producer is not None
    fields = (block.round, block.prev_hash, block.producer, credential, block.transactions)
    draft = Block(*fields, NO_SIGNATURE, block.prev_cert)
    signature = key(block.producer).sign(draft.signing_bytes(CHAIN))
    return Block(*fields, signature, block.prev_cert)


def wrong_credentials(sb: Sandbox, producer: int) -> dict[str, bytes]:
    """Seed credentials that are not `producer`'s proof over this round's seed payload."""
    ctx, k = sb.ctx, key(producer)
    proof = seed_credential(k, "vrf", CHAIN, ctx.seed, ctx.round)
    return {
        "another round": seed_credential(k, "vrf", CHAIN, ctx.seed, ctx.round + 1),
        "another chain": seed_credential(k, "vrf", bytes(32), ctx.seed, ctx.round),
        "another key": seed_credential(key(producer + 1), "vrf", CHAIN, ctx.seed, ctx.round),
        "a flipped bit": proof[:50] + bytes([proof[50] ^ 4]) + proof[51:],
        "a signature": seed_credential(k, "signature", CHAIN, ctx.seed, ctx.round),
    }


def test_a_vrf_node_proves_its_seed_and_takes_q_r_from_the_output() -> None:
    sb = Sandbox(params=VRF_PARAMS)
    sb.take()
    ctx = sb.ctx
    block = sb.block(sb.best_remote_producer())
    assert block.encode()[0] == 2 and block.seed_sig is not None and len(block.seed_sig) == 80
    sb.certified((block, certificate_for(sb, block)))
    assert any(isinstance(a, Commit) for a in sb.take())
    payload = seed_signing_bytes(CHAIN, ctx.seed, 1)
    beta = model.verify(key(block.producer).public_key, payload, block.seed_sig)
    assert beta is not None  # the independent model of RFC 9381 agrees
    assert sb.node.tip.seed == hashlib.sha256(beta + (1).to_bytes(8, "big")).digest()


@pytest.mark.parametrize("wrong", ["another round", "another chain", "another key",
                                   "a flipped bit", "a signature"])  # fmt: skip
def test_live_a_gc_block_with_a_wrong_seed_proof_is_dropped(wrong: str) -> None:
    sb = Sandbox(params=VRF_PARAMS)
    sb.take()
    producer = sb.best_remote_producer()
    good = sb.block(producer)
    bad = with_credential(good, wrong_credentials(sb, producer)[wrong])
    sb.recv(sb.gc_block(bad))
    assert sb.node.stats["bad seed proof"] == 1 and sb.node.stats["accepted"] == 0
    sb.recv(sb.gc_block(good))
    assert sb.node.stats["accepted"] == 1


def test_live_a_gc_signature_is_dropped_under_vrf() -> None:
    """Its `rand` holds a 64-byte signature: under `vrf` the proof travels in the gc_block."""
    sb = Sandbox(params=VRF_PARAMS)
    sb.take()
    producer = sb.best_remote_producer()
    signed = with_credential(sb.block(producer), wrong_credentials(sb, producer)["a signature"])
    sb.recv(sb.gc_signature(signed))
    assert sb.node.stats["bad seed proof"] == 1 and sb.node.stats["accepted"] == 0


def test_a_certified_block_with_a_wrong_seed_proof_is_refused_even_with_votes() -> None:
    """Votes for the block (the adversary holds their keys here) cannot make a wrong proof
    acceptable: the core's check of a peer's certified block refuses it, as sync does."""
    sb = Sandbox(params=VRF_PARAMS)
    sb.take()
    ctx = sb.ctx
    producer = sb.best_remote_producer()
    bad = with_credential(sb.block(producer), wrong_credentials(sb, producer)["another round"])
    cert = certificate_for(sb, bad)
    with pytest.raises(SeedProofError, match="bad seed proof"):
        check_certificate(cert, bad, ctx, sb.ledger.public_key, sb.verifier)
    sb.certified((bad, cert))
    assert sb.take() == [] and sb.node.stats["bad certificate"] == 1
    assert sb.node.current_round == 1


def test_a_block_carrying_cert_r_minus_1_with_a_wrong_seed_proof_is_dropped() -> None:
    """Round 2 after a proposed block: blocks carry CERT_1; one with a valid certificate and
    a wrong proof is dropped for its proof, the right one is accepted."""
    sb = Sandbox(params=VRF_PARAMS)
    sb.take()
    first = sb.block(sb.best_remote_producer())
    sb.certified((first, certificate_for(sb, first)))
    assert any(isinstance(a, Commit) for a in sb.take())
    assert sb.ctx.round == 2 and sb.ctx.carried is not None
    producer = sb.best_remote_producer()
    good = sb.block(producer)
    assert good.prev_cert == sb.ctx.carried
    for n, wrong in enumerate(wrong_credentials(sb, producer).values(), start=1):
        sb.recv(sb.gc_block(with_credential(good, wrong)))
        assert sb.node.stats["bad seed proof"] == n
    assert sb.node.stats["accepted"] == 0
    sb.recv(sb.gc_block(good))
    assert sb.node.stats["accepted"] == 1


def vrf_devnet(tmp_path: Path) -> tuple[Path, bytes, dict[int, Keypair]]:
    params = replace(VRF_PARAMS, insecure_committee=True)
    genesis_dir = tmp_path / "genesis"
    chain = create_devnet(genesis_dir, accounts=8, nodes=2, seed="vrf", params=params).hash
    keypairs: dict[int, Keypair] = {}
    for n in range(2):
        keypairs.update(load_node_keys(node_keys_path(genesis_dir, n)).keypairs())
    return genesis_dir, chain, keypairs


def test_sync_refuses_a_block_with_a_wrong_seed_proof(tmp_path: Path) -> None:
    """A node that is not running consensus checks a synced block in its round's context:
    its proof must verify; the right block is applied, and the ledger's seed is H(β || r)."""
    genesis_dir, chain, keypairs = vrf_devnet(tmp_path)
    node = Node(NodeConfig(data_dir=tmp_path / "node0", genesis=genesis_dir))
    try:
        ledger = node.ledger
        ctx = node.round_context(1)
        producer = min((p, a) for a in keypairs if (p := ctx.priority(a)) is not None)[1]
        kp = keypairs[producer]

        def block(seed_mode: str, prev_seed: bytes, round: int = 1) -> Block:
            made = proposed_block(
                1, ledger.tip_hash, prev_seed, producer, kp, chain=chain, seed_mode=seed_mode
            )
            if round == 1:
                return made
            proof = seed_credential(kp, "vrf", chain, prev_seed, round)
            fields = (1, made.prev_hash, producer, proof, ())
            draft = Block(*fields, NO_SIGNATURE)
            return Block(*fields, kp.sign(draft.signing_bytes(chain)))

        voters = sorted(keypairs.items())
        good = block("vrf", ledger.tip_seed)
        for bad in (
            block("vrf", ledger.tip_seed, round=2),
            block("vrf", hashlib.sha256(b"another seed").digest()),
            block("signature", ledger.tip_seed),
        ):
            assert not node._sync_apply(bad, certificate(bad, voters, chain=chain))
            assert ledger.tip == 0
        prev_seed = ledger.tip_seed
        assert node._sync_apply(good, certificate(good, voters, chain=chain))
        assert ledger.tip == 1
        beta = model.proof_to_hash(good.seed_sig or b"")
        assert beta is not None
        assert ledger.tip_seed == hashlib.sha256(beta + (1).to_bytes(8, "big")).digest()
        assert ledger.tip_seed != prev_seed
    finally:
        node.ledger.close()


def test_the_ledger_keeps_the_vrf_seed_chain_and_refuses_the_other_kind(tmp_path: Path) -> None:
    """The ledger takes Q[r] = H(β || r) from a proof, H(Q[r-1] || r) after the empty block,
    and refuses a block whose seed credential is a signature under a `vrf` genesis."""
    genesis_dir, chain, keypairs = vrf_devnet(tmp_path)
    genesis = Genesis.load(genesis_dir)
    voters = sorted(keypairs.items())
    with Ledger.open(tmp_path / "ledger", genesis) as ledger:
        signed = proposed_block(1, ledger.tip_hash, ledger.tip_seed, 3, keypairs[3], chain=chain)
        with pytest.raises(LedgerError, match="needs 80 bytes"):
            ledger.apply(signed, certificate(signed, voters, chain=chain))
        empty = Block.empty(1, ledger.tip_hash)
        q0 = ledger.tip_seed
        ledger.apply(empty, certificate(empty, voters, chain=chain))
        assert ledger.tip_seed == hashlib.sha256(q0 + (1).to_bytes(8, "big")).digest()
        q1 = ledger.tip_seed
        proved = proposed_block(
            2, ledger.tip_hash, q1, 3, keypairs[3], chain=chain, seed_mode="vrf"
        )
        ledger.apply(proved, certificate(proved, voters, chain=chain))
        payload = seed_signing_bytes(chain, q1, 2)
        beta = model.verify(keypairs[3].public_key, payload, proved.seed_sig or b"")
        assert beta is not None
        assert ledger.tip_seed == hashlib.sha256(beta + (2).to_bytes(8, "big")).digest()


def test_the_grinding_study_under_vrf_follows_the_protocols_seed_chain() -> None:
    """`echorand sim grinding --seed-kind vrf` measures the rule the chain runs: each Q[r]
    of its trace is `next_seed` of the leader's proof over the seed payload."""
    secrets = [hashlib.sha256(b"study %d" % i).digest() for i in range(6)]
    genesis_hash, q = hashlib.sha256(b"study chain").digest(), hashlib.sha256(b"q0").digest()
    study = GrindingStudy(
        StakeTable([100, 200, 300, 400, 500, 600]),
        [],
        b"".join(secrets),
        kind="vrf",
        candidates=1,
        objective="lead",
        step=2,
        seats=10,
        genesis_hash=genesis_hash,
        seed=q,
    )
    for r, (leader, beta, seed) in enumerate(study.trace(5), start=1):
        proof = vrf.prove(secrets[leader], seed_signing_bytes(genesis_hash, q, r))
        assert vrf.proof_to_hash(proof) == beta
        assert seed == next_seed(q, r, proof)
        q = seed
