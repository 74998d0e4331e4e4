"""No equivocation after a crash (PROTOCOL §6): what a node signed is re-sent, never re-signed;
after a rollback it abstains in the slots it filled on the other fork."""

from __future__ import annotations

import pytest
from _sandbox import CHAIN, PARAMS, Sandbox, key

from echorand.core.events import Send
from echorand.core.signed import Signed, SignedLog, slot, slot_key
from echorand.protocol.signing import NO_SIGNATURE, sign_final, sign_proposal
from echorand.wire.messages import Transaction, TxBatch


def own_sends(sb: Sandbox) -> list[Send]:
    return [a for a in sb.take() if isinstance(a, Send)]


def self_transfer(round: int) -> Transaction:
    """A payload a restarted node's mempool might offer instead (another block)."""
    pk = key(0).public_key
    draft = Transaction(0, pk, pk, 0, 0, round, NO_SIGNATURE)
    return Transaction(0, pk, pk, 0, 0, round, key(0).sign(draft.signing_bytes(CHAIN)))


def test_a_restarted_producer_sends_the_block_it_signed_not_a_new_one() -> None:
    first = Sandbox()
    sent = own_sends(first)
    assert [type(s.message).__name__ for s in sent] == ["GcBlock", "GcSignature"]
    assert all(s.prev_hash == first.ctx.prev_hash for s in sent)
    disk = [Signed(s.prev_hash, s.message) for s in sent]
    # a fresh node: its mempool now offers a transaction, so its block would differ ...
    fresh = Sandbox(payload=lambda r: (self_transfer(r),))
    assert own_sends(fresh)[0].message != sent[0].message
    # ... but the node that kept its records re-sends exactly what it signed
    restarted = Sandbox(signed=SignedLog(disk), payload=lambda r: (self_transfer(r),))
    assert own_sends(restarted) == sent


def test_a_restarted_voter_re_sends_its_step_2_proposal_whatever_it_would_say_now() -> None:
    sb = Sandbox()
    sb.take()
    sb.add_time(2 * PARAMS.lam_ms)  # step 2: our own block (the only one heard)
    step2 = own_sends(sb)
    assert step2 and all(s.message.step == 2 for s in step2)
    disk = [Signed(s.prev_hash, s.message) for s in (*own_sends(sb), *step2)]
    disk += [Signed(r.prev_hash, r.message) for r in sb.node.signed if r.message.step == 1]

    # After a restart the node hears a better producer first: anew it would propose that
    # block; with its records it proposes what it proposed before.
    def step2_after_hearing_a_better_producer(node: Sandbox) -> list:
        node.take()
        better = node.block(node.best_remote_producer())
        node.recv(node.gc_block(better))
        node.validated(better.hash)
        node.take()
        node.add_time(2 * PARAMS.lam_ms)
        return [s.message for s in own_sends(node) if s.message.step == 2]

    assert step2_after_hearing_a_better_producer(Sandbox()) != [s.message for s in step2]
    again = Sandbox(signed=SignedLog(disk))
    assert step2_after_hearing_a_better_producer(again) == [s.message for s in step2]


def test_after_a_rollback_the_node_abstains_in_the_slots_it_filled_on_the_other_fork() -> None:
    first = Sandbox()
    sent = own_sends(first)
    other_fork = bytes(31) + b"\x07"
    disk = [Signed(other_fork, s.message) for s in sent]
    again = Sandbox(signed=SignedLog(disk))
    assert own_sends(again) == []  # no block, no gc_signature: nothing signed twice


def test_the_log_refuses_a_second_message_for_a_filled_slot() -> None:
    log = SignedLog()
    a, v = 3, (b"\x01" * 32, 0)
    msg = sign_proposal(key(a), CHAIN, 1, 2, a, v)
    log.add(CHAIN, msg)
    log.add(CHAIN, msg)  # the same again is fine
    other = sign_proposal(key(a), CHAIN, 1, 2, a, (b"\x02" * 32, 0))
    with pytest.raises(RuntimeError, match="equivocate"):
        log.add(CHAIN, other)
    assert slot(msg) == (1, 2, msg.CODE, a, a) and len(slot_key(slot(msg))) == 29
    stored = Signed(CHAIN, msg)
    assert Signed.decode(stored.encode()) == stored
    final = Signed(CHAIN, sign_final(key(a), CHAIN, 1, a, b"\x01" * 32))
    assert Signed.decode(final.encode()) == final  # every consensus message, final votes too
    with pytest.raises(ValueError, match="not a vote"):
        Signed.decode(CHAIN + TxBatch([]).encode())


def test_signed_records_survive_a_ledger_reopen_and_are_pruned_with_the_undo_window(
    tmp_path,
) -> None:
    from _chain import certificate

    from echorand.ledger.ledger import Ledger
    from echorand.tools.genesis import create_devnet, node_keys_path
    from echorand.wire.keys import load_node_keys
    from echorand.wire.messages import Block

    genesis = create_devnet(tmp_path / "g", accounts=4, nodes=1, seed="signed", balance=1000)
    keypairs = [kp for _, kp in load_node_keys(node_keys_path(tmp_path / "g", 0)).keypairs()]
    msgs = [sign_proposal(keypairs[0], genesis.hash, r, 2, 0, (b"\x05" * 32, 1)) for r in (1, 2, 3)]
    with Ledger.open(tmp_path / "l", genesis, undo_rounds=2) as ledger:
        ledger.record_signed([Signed(genesis.hash, m) for m in msgs])
    with Ledger.open(tmp_path / "l", genesis, undo_rounds=2) as ledger:
        assert [r.message for r in ledger.signed_records()] == msgs
        for _ in range(3):
            empty = Block.empty(ledger.tip + 1, ledger.tip_hash)
            ledger.apply(
                empty, certificate(empty, list(enumerate(keypairs[:1])), chain=genesis.hash)
            )
        # at tip 3 with 2 undo rounds, rollback reaches round 2: records of rounds >= 2 stay
        assert [r.message.round for r in ledger.signed_records()] == [2, 3]
