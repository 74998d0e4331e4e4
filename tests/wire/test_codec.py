"""The wire codec (docs/protocol.md §6): round trips, an independent encoder, strict decoding."""

from __future__ import annotations

import copy
import hashlib
import pickle
import re
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echorand.wire.messages import (
    FINAL_STEP,
    MAX_BATCH_TXS,
    MAX_BLOCK_TXS,
    MAX_CERT_VOTES,
    MAX_FRAME,
    MAX_SYNC_BLOCKS,
    NO_LEADER,
    BbaSignature,
    Block,
    Certificate,
    DecodeError,
    FinalProof,
    FinalVote,
    GcBlock,
    GcProposal,
    GcSignature,
    Hello,
    HelloProof,
    Message,
    SyncRequest,
    SyncResponse,
    Transaction,
    TxBatch,
    decode,
    decode_many,
    encode,
    encode_many,
    frame,
    split_frames,
)

ZERO = bytes(32)
U64 = 2**64 - 1
CHAIN = hashlib.sha256(b"test_codec chain").digest()
"""The genesis hash every signed payload here is bound to (PROTOCOL §2)."""


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------- strategies

u8s = st.integers(0, 255)
u16s = st.integers(0, 2**16 - 1)
u32s = st.integers(0, 2**32 - 1)
u64s = st.integers(0, U64)
hashes = st.binary(min_size=32, max_size=32)
keys = hashes
sigs = st.binary(min_size=64, max_size=64)
block_values = st.tuples(hashes, st.integers(0, NO_LEADER - 1))
empty_values = st.tuples(hashes, st.just(NO_LEADER))
"""The empty value (H(B_ε), 2^64 - 1); the hash is checked against the round by validation."""
values = st.one_of(empty_values, block_values)


def deciding_steps(b: int) -> st.SearchStrategy[int]:
    """Steps whose votes decide for bit `b` (PROTOCOL §5): 4 + 3k for b = 0, 5 + 3k for b = 1."""
    return st.integers(0, (2**32 - 6) // 3).map(lambda k: 4 + b + 3 * k)


transfers = st.builds(
    Transaction, kind=st.just(0), sender=keys, recipient=keys,
    amount=u64s, fee=u64s, nonce=u64s, signature=sigs,
)  # fmt: skip
delegations = st.builds(
    Transaction, kind=st.just(1), sender=keys, recipient=keys,
    amount=st.just(0), fee=u64s, nonce=u64s, signature=sigs,
)  # fmt: skip
transactions = st.one_of(transfers, delegations)


@st.composite
def certificates(draw: st.DrawFn) -> Certificate:
    b = draw(st.integers(0, 1))
    block_hash, leader = draw(empty_values if b == 1 else block_values)
    signers = sorted(draw(st.sets(u64s, max_size=5)))
    votes = [(s, draw(sigs)) for s in signers]
    principals = sorted(draw(st.sets(u64s.filter(lambda p: p not in signers), max_size=3)))
    subs = [
        (p, draw(u64s.filter(lambda s, p=p: s != p)), draw(st.sampled_from((1, 2))), draw(sigs))
        for p in principals
    ]
    return Certificate(
        round=draw(u64s), step=draw(deciding_steps(b)), b=b, block_hash=block_hash,
        leader=leader, votes=votes, substitutes=subs,
    )  # fmt: skip


proposed_blocks = st.builds(
    Block, round=u64s, prev_hash=hashes, producer=u64s, seed_sig=sigs,
    transactions=st.lists(transactions, max_size=3), signature=sigs,
    prev_cert=st.one_of(st.none(), certificates()),
)  # fmt: skip
empty_blocks = st.builds(Block.empty, u64s, hashes)
blocks = st.one_of(proposed_blocks, empty_blocks)


@st.composite
def gc_proposals(draw: st.DrawFn) -> GcProposal:
    block_hash, leader = draw(values)
    return GcProposal(
        round=draw(u64s), step=draw(u32s), sender=draw(u64s),
        block_hash=block_hash, leader=leader, signature=draw(sigs),
    )  # fmt: skip


@st.composite
def bba_signatures(draw: st.DrawFn) -> BbaSignature:
    b = draw(st.integers(0, 1))
    block_hash, leader = draw(empty_values if b == 1 else block_values)
    return BbaSignature(
        round=draw(u64s), step=draw(u32s), sender=draw(u64s), b=b,
        block_hash=block_hash, leader=leader, cert_sig=draw(sigs), signature=draw(sigs),
    )  # fmt: skip


final_votes = st.builds(
    FinalVote, round=u64s, step=st.just(FINAL_STEP), sender=u64s, block_hash=hashes, signature=sigs
)
gc_blocks = st.builds(
    GcBlock, round=u64s, step=u32s, sender=u64s, block=proposed_blocks, signature=sigs
)
gc_signatures = st.builds(
    GcSignature, round=u64s, step=u32s, sender=u64s,
    rand=sigs, block_hash=hashes, prev_hash=hashes, signature=sigs,
)  # fmt: skip
tx_batches = st.builds(TxBatch, transactions=st.lists(transactions, max_size=4))
hellos = st.builds(
    Hello, version=u32s, genesis_hash=hashes, node_key=keys, nonce=hashes, tip_round=u64s,
    listen_port=u16s,
)  # fmt: skip
hello_proofs = st.builds(HelloProof, signature=sigs)
sync_requests = st.builds(SyncRequest, from_round=u64s, count=u32s)
sync_responses = st.builds(
    SyncResponse, blocks=st.lists(st.tuples(blocks, certificates()), max_size=3)
)
messages = st.one_of(
    gc_blocks, gc_signatures, gc_proposals(), bba_signatures(), final_votes,
    tx_batches, hellos, hello_proofs, sync_requests, sync_responses,
)  # fmt: skip


def sample_tx(i: int = 0, kind: int = 0) -> Transaction:
    return Transaction(
        kind=kind, sender=bytes([i]) * 32, recipient=bytes([i + 1]) * 32,
        amount=0 if kind else 1000 + i, fee=i, nonce=i + 7, signature=bytes([i + 2]) * 64,
    )  # fmt: skip


def sample_block(n_txs: int = 2, round: int = 9) -> Block:
    return Block(
        round=round, prev_hash=b"p" * 32, producer=4, seed_sig=b"s" * 64,
        transactions=[sample_tx(i, i % 2) for i in range(n_txs)], signature=b"g" * 64,
    )  # fmt: skip


def sample_cert(round: int = 9) -> Certificate:
    block = sample_block(round=round)
    return Certificate(
        round=round, step=7, b=0, block_hash=block.hash, leader=4,
        votes=[(1, b"a" * 64), (3, b"b" * 64), (10, b"c" * 64)],
    )  # fmt: skip


def sample_messages() -> list[Message]:
    block = sample_block()
    return [
        GcBlock(round=9, step=1, sender=4, block=block, signature=b"m" * 64),
        GcSignature(
            round=9,
            step=1,
            sender=4,
            rand=b"r" * 64,
            block_hash=block.hash,
            prev_hash=b"p" * 32,
            signature=b"m" * 64,
        ),
        GcProposal(round=9, step=2, sender=5, block_hash=block.hash, leader=4, signature=b"m" * 64),
        BbaSignature(
            round=9,
            step=5,
            sender=6,
            b=0,
            block_hash=block.hash,
            leader=4,
            cert_sig=b"c" * 64,
            signature=b"m" * 64,
        ),
        TxBatch(transactions=[sample_tx(1), sample_tx(2, 1)]),
        Hello(
            version=1,
            genesis_hash=b"G" * 32,
            node_key=b"K" * 32,
            nonce=b"N" * 32,
            tip_round=8,
            listen_port=4242,
        ),
        SyncRequest(from_round=3, count=5),
        SyncResponse(
            blocks=[(block, sample_cert()), (Block.empty(10, block.hash), empty_cert(10))]
        ),
        HelloProof(signature=b"P" * 64),
        FinalProof(round=9, block_hash=b"F" * 32, votes=_final_votes(2, 5, 11)),
    ]


def _final_votes(*signers: int) -> bytes:
    return b"".join(s.to_bytes(8, "big") + bytes([s]) * 64 for s in signers)


def empty_cert(round: int) -> Certificate:
    return Certificate(
        round=round, step=17, b=1, block_hash=b"E" * 32, leader=NO_LEADER, votes=[(2, b"e" * 64)]
    )


def raises(exc: type[Exception], text: str) -> pytest.RaisesExc:
    """pytest.raises(exc) whose message contains `text` (literally)."""
    return pytest.raises(exc, match=re.escape(text))


def reject(data: bytes, *fragments: str) -> str:
    """Decodes `data`, expecting a DecodeError whose text contains every fragment."""
    with pytest.raises(DecodeError) as info:
        decode(data)
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, text
    return text


# ------------------------------------------------------------- round trips


@given(messages)
def test_every_message_survives_encode_then_decode(msg: Message) -> None:
    data = encode(msg)
    assert data == msg.encode()
    back = decode(data)
    assert type(back) is type(msg)
    assert back == msg
    assert hash(back) == hash(msg)
    assert encode(back) == data
    assert type(msg).from_bytes(data) == msg


@given(st.one_of(transactions, blocks, certificates()))
def test_transactions_blocks_and_certificates_survive_encode_then_decode(value: object) -> None:
    data = value.encode()
    back = type(value).from_bytes(data)
    assert back == value
    assert hash(back) == hash(value)
    assert back.encode() == data


@given(messages, st.data())
def test_an_accepted_input_is_the_one_encoding_of_what_it_decodes_to(
    msg: Message, data: st.DataObject
) -> None:
    raw = bytearray(encode(msg))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(u8s)
    try:
        back = decode(bytes(raw))
    except DecodeError:
        return
    assert encode(back) == bytes(raw)


@given(messages)
def test_values_pickle_copy_and_compare(msg: Message) -> None:
    assert pickle.loads(pickle.dumps(msg)) == msg
    assert copy.copy(msg) == msg
    assert copy.deepcopy(msg) == msg
    assert msg != object()
    assert repr(msg).startswith(type(msg).__name__ + "(")


def test_fields_are_read_only() -> None:
    for msg in sample_messages():
        name = msg.__match_args__[0]
        with pytest.raises(AttributeError):
            setattr(msg, name, getattr(msg, name))


def test_keyword_construction_rebuilds_a_value_from_its_fields() -> None:
    for value in [
        *sample_messages(),
        sample_tx(),
        sample_block(),
        sample_cert(),
        Block.empty(1, ZERO),
    ]:
        fields = {name: getattr(value, name) for name in value.__match_args__}
        assert type(value)(**fields) == value


def test_messages_match_by_position_and_keyword() -> None:
    match decode(sample_messages()[3].encode()):
        case BbaSignature(9, 5, sender, b=0, leader=4):
            assert sender == 6
        case _:
            pytest.fail("no match")


def test_decode_reads_any_bytes_like_object() -> None:
    for msg in sample_messages():
        data = msg.encode()
        assert decode(bytearray(data)) == msg
        assert decode(memoryview(data)) == msg
        assert decode(memoryview(b"xx" + data)[2:]) == msg


def test_decode_rejects_what_is_not_bytes() -> None:
    with raises(TypeError, "data"):
        decode("text")  # type: ignore[arg-type]
    with raises(TypeError, "not a message"):
        encode(sample_tx())  # type: ignore[arg-type]


# --------------------------------------------- an independent encoder (struct)


def py_tx(tx: Transaction) -> bytes:
    return struct.pack(
        ">B32s32sQQQ64s",
        tx.kind, tx.sender, tx.recipient, tx.amount, tx.fee, tx.nonce, tx.signature,
    )  # fmt: skip


def py_block(block: Block) -> tuple[bytes, bytes]:
    """(encoding, header_body) of `block`."""
    if block.is_empty:
        enc = struct.pack(">BQ32s", 1, block.round, block.prev_hash)
        return enc, enc
    payload = struct.pack(">I", len(block.transactions))
    payload += b"".join(py_tx(tx) for tx in block.transactions)
    payload += b"\x00" if block.prev_cert is None else b"\x01" + py_cert(block.prev_cert)
    header = struct.pack(
        ">BQ32sQ64s32s", 0, block.round, block.prev_hash, block.producer, block.seed_sig, H(payload)
    )
    return header + block.signature + payload, header


def py_cert(cert: Certificate) -> bytes:
    head = struct.pack(
        ">QIB32sQI", cert.round, cert.step, cert.b, cert.block_hash, cert.leader, len(cert.votes)
    )
    own = b"".join(struct.pack(">Q64s", s, sig) for s, sig in cert.votes)
    subs = b"".join(struct.pack(">QQB64s", *entry) for entry in cert.substitutes)
    return head + own + struct.pack(">I", len(cert.substitutes)) + subs


def py_cert_payload(round: int, step: int, b: int, block_hash: bytes, leader: int) -> bytes:
    """PROTOCOL §5 (revision 2): `tag || 0x00 || genesis_hash || r || s || b || v`."""
    body = struct.pack(">QIB32sQ", round, step, b, block_hash, leader)
    return b"echorand/cert\x00" + CHAIN + body


def py_bba(m: BbaSignature) -> bytes:
    return struct.pack(
        ">BQIQB32sQ64s64s",
        4, m.round, m.step, m.sender, m.b, m.block_hash, m.leader, m.cert_sig, m.signature,
    )  # fmt: skip


def py_gc_proposal(m: GcProposal) -> bytes:
    return struct.pack(
        ">BQIQ32sQ64s", 3, m.round, m.step, m.sender, m.block_hash, m.leader, m.signature
    )


@given(transactions)
def test_transaction_bytes_agree_with_an_independent_encoder(tx: Transaction) -> None:
    enc = py_tx(tx)
    assert len(enc) == 153
    assert tx.encode() == enc
    assert tx.id == H(enc)
    assert tx.signing_bytes(CHAIN) == b"echorand/tx\x00" + CHAIN + enc[:89]


@given(blocks)
def test_block_bytes_agree_with_an_independent_encoder(block: Block) -> None:
    enc, header = py_block(block)
    assert block.encode() == enc
    assert block.header_body == header
    assert block.hash == H(header)
    if block.is_empty:
        assert len(enc) == 41
        assert block.payload_hash is None
        assert block.transactions == ()
        with raises(ValueError, "not signed"):
            block.signing_bytes(CHAIN)
    else:
        assert len(header) == 145
        assert block.payload_hash == header[-32:]
        assert block.signing_bytes(CHAIN) == b"echorand/block\x00" + CHAIN + header


@given(certificates())
def test_certificate_bytes_agree_with_an_independent_encoder(cert: Certificate) -> None:
    assert cert.encode() == py_cert(cert)
    assert cert.vote_signing_bytes(CHAIN) == py_cert_payload(
        cert.round, cert.step, cert.b, cert.block_hash, cert.leader
    )
    for principal, _, mode, _ in cert.substitutes:
        assert cert.substitute_signing_bytes(CHAIN, principal, mode) == py_cert_payload(
            cert.round, cert.step, cert.b, cert.block_hash, cert.leader
        ) + struct.pack(">QB", principal, mode)
    assert cert.signers == tuple(s for s, _ in cert.votes)
    assert cert.value == (cert.block_hash, cert.leader)


@given(bba_signatures())
def test_vote_bytes_agree_with_an_independent_encoder(m: BbaSignature) -> None:
    enc = py_bba(m)
    assert m.encode() == enc
    assert m.signing_bytes(CHAIN) == b"echorand/bba\x00" + CHAIN + enc[:-64]
    assert (m.leader == NO_LEADER) == (m.b == 1)  # b = 1 carries the empty value, b = 0 a block's
    assert m.cert_signing_bytes(CHAIN) == py_cert_payload(
        m.round, m.step, m.b, m.block_hash, m.leader
    )


@given(gc_proposals())
def test_gc_proposal_bytes_agree_with_an_independent_encoder(m: GcProposal) -> None:
    enc = py_gc_proposal(m)
    assert m.encode() == enc
    assert m.signing_bytes(CHAIN) == b"echorand/gc_proposal\x00" + CHAIN + enc[:-64]


@given(final_votes)
def test_final_vote_bytes_agree_with_an_independent_encoder(m: FinalVote) -> None:
    enc = struct.pack(">BQIQ32s64s", 7, m.round, m.step, m.sender, m.block_hash, m.signature)
    assert m.encode() == enc and decode(enc) == m
    # PROTOCOL §6: "echorand/final" over u64be(r) || block_hash, bound to the chain
    body = struct.pack(">Q32s", m.round, m.block_hash)
    assert m.signing_bytes(CHAIN) == b"echorand/final\x00" + CHAIN + body


def test_a_final_vote_is_only_of_the_reserved_step() -> None:
    enc = struct.pack(">BQIQ32s64s", 7, 1, 5, 0, b"h" * 32, bytes(64))
    assert reject(enc) == "final_vote.step: must be the reserved step 2^32 - 1, got 5"


@given(gc_blocks)
def test_gc_block_signs_the_block_hash_not_the_block(m: GcBlock) -> None:
    head = struct.pack(">BQIQ", 1, m.round, m.step, m.sender)
    assert m.encode() == head + py_block(m.block)[0] + m.signature
    assert m.signing_bytes(CHAIN) == b"echorand/msg\x00" + CHAIN + head + m.block.hash


@given(gc_signatures)
def test_gc_signature_bytes_agree_with_an_independent_encoder(m: GcSignature) -> None:
    enc = struct.pack(
        ">BQIQ64s32s32s64s",
        2, m.round, m.step, m.sender, m.rand, m.block_hash, m.prev_hash, m.signature,
    )  # fmt: skip
    assert m.encode() == enc
    assert m.signing_bytes(CHAIN) == b"echorand/msg\x00" + CHAIN + enc[:-64]


def test_network_messages_agree_with_an_independent_encoder() -> None:
    hello, request, response = sample_messages()[5:8]
    assert hello.encode() == struct.pack(
        ">BI32s32s32sQH", 0x20, 1, b"G" * 32, b"K" * 32, b"N" * 32, 8, 4242
    )
    assert sample_messages()[8].encode() == b"\x23" + b"P" * 64
    assert request.encode() == struct.pack(">BQI", 0x21, 3, 5)
    body = b"".join(py_block(b)[0] + py_cert(c) for b, c in response.blocks)
    assert response.encode() == struct.pack(">BI", 0x22, 2) + body
    batch = sample_messages()[4]
    txs = b"".join(py_tx(tx) for tx in batch.transactions)
    assert batch.encode() == struct.pack(">BI", 0x10, 2) + txs


# ----------------------------------------------------------- strict decoding


def test_every_proper_prefix_is_rejected_as_truncated() -> None:
    for msg in sample_messages():
        data = msg.encode()
        for n in range(len(data)):
            reject(data[:n], "truncated: ")


@given(messages)
def test_every_proper_prefix_of_any_message_is_rejected(msg: Message) -> None:
    data = msg.encode()
    for n in range(len(data)):
        with pytest.raises(DecodeError) as info:
            decode(data[:n])
        assert str(info.value).startswith("truncated: ")


def test_truncation_names_the_field_and_what_is_left() -> None:
    data = sample_messages()[0].encode()  # gc_block: head (21) || block kind, round, prev_hash...
    assert reject(data[: 21 + 9 + 5]) == (
        "truncated: block.prev_hash needs 32 bytes, 5 left (in gc_block)"
    )
    assert reject(b"") == "truncated: type needs 1 bytes, 0 left"


@pytest.mark.parametrize("extra", [1, 3, 64])
def test_trailing_bytes_are_rejected(extra: int) -> None:
    for msg in sample_messages():
        assert reject(msg.encode() + b"\x00" * extra) == f"trailing bytes: {extra}"


def test_from_bytes_rejects_trailing_bytes_too() -> None:
    with raises(DecodeError, "trailing bytes: 2"):
        Transaction.from_bytes(sample_tx().encode() + b"xx")
    with raises(DecodeError, "trailing bytes: 1"):
        Block.from_bytes(sample_block().encode() + b"x")
    with raises(DecodeError, "trailing bytes: 1"):
        Certificate.from_bytes(sample_cert().encode() + b"x")


def test_from_bytes_wants_its_own_type() -> None:
    with raises(DecodeError, "expected message type 0x03, got 0x04"):
        GcProposal.from_bytes(sample_messages()[3].encode())


@pytest.mark.parametrize(
    "code", sorted(set(range(256)) - {1, 2, 3, 4, 5, 6, 7, 0x10, 0x20, 0x21, 0x22, 0x23, 0x24})
)
def test_unknown_message_types_are_rejected(code: int) -> None:
    assert reject(bytes([code]) + bytes(200)) == f"type: unknown message type 0x{code:02x}"


def test_counts_over_their_limit_are_rejected_before_reading_items() -> None:
    over = MAX_BATCH_TXS + 1
    assert reject(struct.pack(">BI", 0x10, over)) == f"tx_batch.count: {over} over limit 10000"
    assert reject(struct.pack(">BI", 0x10, 20000)) == "tx_batch.count: 20000 over limit 10000"
    over = MAX_SYNC_BLOCKS + 1
    assert reject(struct.pack(">BI", 0x22, over)) == f"sync_response.count: {over} over limit 256"
    header = struct.pack(">BQ32sQ64s32s", 0, 1, ZERO, 1, bytes(64), ZERO) + bytes(64)
    gc_block = struct.pack(">BQIQ", 1, 1, 1, 1) + header + struct.pack(">I", MAX_BLOCK_TXS + 1)
    reject(gc_block, f"block.tx_count: {MAX_BLOCK_TXS + 1} over limit 100000", "(in gc_block)")
    cert = struct.pack(">QIB32sQI", 1, 4, 0, b"h" * 32, 1, MAX_CERT_VOTES + 1)
    response = struct.pack(">BI", 0x22, 1) + struct.pack(">BQ32s", 1, 1, ZERO) + cert
    reject(response, "certificate.count: 10001 over limit 10000", "sync_response.blocks[0]")


def test_the_largest_counts_are_accepted() -> None:
    txs = [sample_tx(i % 200) for i in range(MAX_BATCH_TXS)]
    assert decode(TxBatch(txs).encode()).tx_count == MAX_BATCH_TXS
    votes = [(i, b"v" * 64) for i in range(MAX_CERT_VOTES)]
    cert = Certificate(round=1, step=4, b=0, block_hash=b"h" * 32, leader=1, votes=votes)
    assert Certificate.from_bytes(cert.encode()) == cert


def test_constructors_enforce_the_limits() -> None:
    with raises(ValueError, "tx_batch.transactions: more than the limit of 10000"):
        TxBatch([sample_tx()] * (MAX_BATCH_TXS + 1))
    votes = [(i, b"v" * 64) for i in range(MAX_CERT_VOTES + 1)]
    with raises(ValueError, "certificate.votes: more than the limit of 10000"):
        Certificate(round=1, step=4, b=0, block_hash=b"h" * 32, leader=1, votes=votes)
    pair = (Block.empty(1, ZERO), empty_cert(1))
    with raises(ValueError, "sync_response.blocks: more than the limit of 256"):
        SyncResponse([pair] * (MAX_SYNC_BLOCKS + 1))


def test_frames_over_the_limit_are_rejected() -> None:
    assert reject(bytes(MAX_FRAME + 1)) == f"frame: {MAX_FRAME + 1} bytes over limit {MAX_FRAME}"


def batch_of(*raw_txs: bytes) -> bytes:
    return struct.pack(">BI", 0x10, len(raw_txs)) + b"".join(raw_txs)


@pytest.mark.parametrize("kind", range(2, 256))
def test_unknown_transaction_kinds_are_rejected(kind: int) -> None:
    bad = bytes([kind]) + sample_tx().encode()[1:]
    text = reject(batch_of(sample_tx().encode(), bad))
    assert text == f"transaction.kind: unknown kind {kind} (in tx_batch.transactions[1])"
    with raises(DecodeError, f"transaction.kind: unknown kind {kind}") as info:
        Transaction.from_bytes(bad)
    assert str(info.value) == f"transaction.kind: unknown kind {kind}"


def test_a_delegation_with_an_amount_is_rejected() -> None:
    raw = bytearray(sample_tx(3, kind=1).encode())
    raw[65:73] = (5).to_bytes(8, "big")
    reject(batch_of(bytes(raw)), "transaction.amount: a delegation must have amount 0, got 5")
    with raises(ValueError, "transaction.amount: a delegation must have amount 0"):
        Transaction(1, ZERO, ZERO, 5, 0, 0, bytes(64))


def test_transaction_kinds_inside_a_block_are_checked() -> None:
    tx = bytes([7]) + sample_tx().encode()[1:]
    payload = struct.pack(">I", 1) + tx
    header = struct.pack(">BQ32sQ64s32s", 0, 1, ZERO, 1, bytes(64), H(payload))
    with pytest.raises(DecodeError) as info:
        Block.from_bytes(header + bytes(64) + payload)
    assert str(info.value) == "transaction.kind: unknown kind 7 (in block.transactions[0])"


def test_a_block_with_a_vrf_seed_proof_is_kind_2_with_80_bytes() -> None:
    """docs/protocol.md §4: kind 0x02 = a proposed block whose seed field is an 80-byte proof;
    the header hash and the signed bytes cover it; other lengths are refused."""
    proof = bytes(range(80))
    block = Block(3, ZERO, 9, proof, [], bytes(64))
    payload = struct.pack(">I", 0) + b"\x00"
    header = struct.pack(">BQ32sQ80s32s", 2, 3, ZERO, 9, proof, H(payload))
    assert block.header_body == header and block.hash == H(header)
    assert block.encode() == header + bytes(64) + payload
    assert Block.from_bytes(block.encode()) == block and block.seed_sig == proof
    assert block.signing_bytes(ZERO).endswith(header)
    signature_block = Block(3, ZERO, 9, proof[:64], [], bytes(64))
    assert signature_block.encode()[0] == 0 and signature_block.hash != block.hash
    for size in (0, 63, 65, 79, 81):
        with pytest.raises(ValueError, match=r"must be 64 bytes .* or 80 bytes"):
            Block(3, ZERO, 9, bytes(size), [], bytes(64))
    # a kind-0 header with an 80-byte field is another block whose payload hash fails
    with pytest.raises(DecodeError):
        Block.from_bytes(b"\x00" + block.encode()[1:])
    with pytest.raises(DecodeError):
        Block.from_bytes(block.encode()[:-1])


@pytest.mark.parametrize("flag", range(2, 256))
def test_flags_other_than_0_and_1_are_rejected(flag: int) -> None:
    assert reject(struct.pack(">BQIQB", 4, 1, 5, 1, flag) + bytes(200)) == (
        f"bba_signature.b: non-canonical value {flag} (must be 0 or 1)"
    )
    if flag > 2:  # block kind 2: a proposed block with a VRF seed proof
        block = struct.pack(">BQ32s", flag, 1, ZERO)
        reject(
            struct.pack(">BI", 0x22, 1) + block + bytes(300),
            f"block.kind: non-canonical value {flag}",
        )
    cert = struct.pack(">QIB", 1, 5, flag) + bytes(100)
    reject(
        struct.pack(">BI", 0x22, 1) + struct.pack(">BQ32s", 1, 1, ZERO) + cert,
        f"certificate.b: non-canonical value {flag}",
        "(in sync_response.blocks[0])",
    )


@given(hashes, st.integers(0, NO_LEADER - 1))
def test_a_vote_carries_the_value_its_bit_needs(block_hash: bytes, leader: int) -> None:
    # PROTOCOL §5 (revision 2): b = 0 carries a block's value, b = 1 the empty value
    # (H(B_ε), 2^64 - 1); anything else is malformed
    for b, bad_leader, text in (
        (0, NO_LEADER, "b = 0 needs a block's value"),
        (1, leader, "b = 1 needs the empty value"),
    ):
        bba = struct.pack(
            ">BQIQB32sQ64s64s", 4, 1, 5, 3, b, block_hash, bad_leader, bytes(64), bytes(64)
        )
        assert reject(bba) == f"bba_signature.leader: {text}" + (
            f" (leader 2^64 - 1), got leader {bad_leader}" if b == 1 else ", not the empty value"
        )
        step = 4 + b
        cert = struct.pack(">QIB32sQI", 1, step, b, block_hash, bad_leader, 0) + bytes(4)
        with raises(DecodeError, f"certificate.leader: {text}"):
            Certificate.from_bytes(cert)
        with raises(ValueError, f"certificate.leader: {text}"):
            Certificate(round=1, step=step, b=b, block_hash=block_hash, leader=bad_leader, votes=[])
    good = BbaSignature(1, 6, 3, 0, block_hash, leader, bytes(64), bytes(64))
    assert decode(good.encode()).value == (block_hash, leader)


def test_the_empty_value_is_any_hash_with_no_leader() -> None:
    # which H(B_ε) is the round's needs the chain: validation checks it, not the codec
    proposal = struct.pack(">BQIQ32sQ64s", 3, 1, 2, 3, b"e" * 32, NO_LEADER, bytes(64))
    assert decode(proposal).value == (b"e" * 32, NO_LEADER)
    m = BbaSignature(1, 6, 3, 1, b"e" * 32, NO_LEADER, bytes(64), bytes(64))
    assert decode(m.encode()).value == (b"e" * 32, NO_LEADER)


@pytest.mark.parametrize("b, step", [(0, 5), (0, 6), (0, 3), (1, 4), (1, 6), (1, 2), (0, 0)])
def test_a_certificate_step_must_decide_its_bit(b: int, step: int) -> None:
    leader = NO_LEADER if b else 4
    cert = struct.pack(">QIB32sQI", 1, step, b, b"h" * 32, leader, 0) + bytes(4)
    with raises(DecodeError, f"certificate.step: votes b = {b} of step {step} decide nothing"):
        Certificate.from_bytes(cert)
    with raises(ValueError, "decide nothing"):
        Certificate(round=1, step=step, b=b, block_hash=b"h" * 32, leader=leader, votes=[])


def cert_with_signers(*signers: int) -> bytes:
    votes = b"".join(struct.pack(">Q64s", s, bytes(64)) for s in signers)
    return struct.pack(">QIB32sQI", 1, 4, 0, b"h" * 32, 4, len(signers)) + votes


@pytest.mark.parametrize("signers", [(2, 1), (1, 1), (1, 5, 5), (1, 9, 3), (U64, 0)])
def test_certificate_signers_must_be_strictly_ascending(signers: tuple[int, ...]) -> None:
    with raises(DecodeError, "certificate.votes: signers not strictly ascending"):
        Certificate.from_bytes(cert_with_signers(*signers))
    votes = [(s, bytes(64)) for s in signers]
    with raises(ValueError, "certificate.votes: signers not strictly ascending"):
        Certificate(round=1, step=4, b=0, block_hash=b"h" * 32, leader=4, votes=votes)


def test_a_payload_that_does_not_match_its_hash_is_rejected() -> None:
    data = bytearray(sample_messages()[0].encode())
    data[-70] ^= 1  # inside the last transaction's signature
    assert reject(bytes(data)) == "block.payload_hash: does not match payload (in gc_block)"
    data = bytearray(sample_block(0).encode())
    data[140] ^= 0x80  # in payload_hash itself (bytes 113..145)
    with raises(DecodeError, "block.payload_hash: does not match payload"):
        Block.from_bytes(bytes(data))


def test_a_carried_certificate_is_part_of_the_payload_and_decoded_strictly() -> None:
    cert = sample_cert(8)
    plain = sample_block(1)
    block = Block(
        round=9, prev_hash=b"p" * 32, producer=4, seed_sig=b"s" * 64,
        transactions=plain.transactions, signature=b"g" * 64, prev_cert=cert,
    )  # fmt: skip
    assert block.prev_cert == cert and plain.prev_cert is None
    assert block.payload_hash != plain.payload_hash and block.hash != plain.hash
    data = block.encode()
    assert Block.from_bytes(data) == block and Block.from_bytes(data).prev_cert == cert
    flag_at = len(plain.encode()) - 1
    assert data[flag_at] == 1 and plain.encode()[flag_at] == 0
    with raises(DecodeError, "block.has_prev_cert: non-canonical value 2"):
        Block.from_bytes(data[:flag_at] + b"\x02" + data[flag_at + 1 :])
    bad_b = bytearray(data)
    bad_b[flag_at + 1 + 8 + 4] = 1  # the carried certificate's b: 1 with a non-empty value
    message = "certificate.leader: b = 1 needs the empty value (leader 2^64 - 1), got leader 4"
    with raises(DecodeError, message):
        Block.from_bytes(bytes(bad_b))
    with raises(DecodeError, "trailing"):
        Block.from_bytes(plain.encode() + b"\x00")


def test_a_gc_block_never_carries_the_empty_block() -> None:
    data = struct.pack(">BQIQ", 1, 1, 1, 1) + struct.pack(">BQ32s", 1, 1, ZERO) + bytes(64)
    assert reject(data) == "gc_block.block: the empty block is never proposed"
    with raises(ValueError, "gc_block.block: the empty block is never proposed"):
        GcBlock(round=1, step=1, sender=1, block=Block.empty(1, ZERO), signature=bytes(64))


def test_a_proposed_block_may_have_no_transactions() -> None:
    block = sample_block(0)
    assert not block.is_empty
    assert Block.from_bytes(block.encode()) == block
    assert block != Block.empty(block.round, block.prev_hash)


# ------------------------------------------------------------- constructors


def good_args() -> dict[type, dict[str, object]]:
    block = sample_block(1)
    return {
        Transaction: dict(kind=0, sender=ZERO, recipient=ZERO, amount=1, fee=0, nonce=0,
                          signature=bytes(64)),
        Block: dict(round=1, prev_hash=ZERO, producer=1, seed_sig=bytes(64), transactions=(),
                    signature=bytes(64)),
        Certificate: dict(round=1, step=4, b=0, block_hash=b"h" * 32, leader=1, votes=()),
        GcBlock: dict(round=1, step=1, sender=1, block=block, signature=bytes(64)),
        GcSignature: dict(round=1, step=1, sender=1, rand=bytes(64), block_hash=ZERO,
                          prev_hash=ZERO, signature=bytes(64)),
        GcProposal: dict(round=1, step=2, sender=1, block_hash=ZERO, leader=0,
                         signature=bytes(64)),
        BbaSignature: dict(round=1, step=4, sender=1, b=0, block_hash=ZERO, leader=0,
                           cert_sig=bytes(64), signature=bytes(64)),
        Hello: dict(version=1, genesis_hash=ZERO, node_key=ZERO, nonce=ZERO, tip_round=0,
                    listen_port=1),
        HelloProof: dict(signature=bytes(64)),
        SyncRequest: dict(from_round=1, count=1),
    }  # fmt: skip


FIELD_NAMES = {
    Transaction: "transaction", Block: "block", Certificate: "certificate",
    GcBlock: "gc_block", GcSignature: "gc_signature", GcProposal: "gc_proposal",
    BbaSignature: "bba_signature", Hello: "hello", HelloProof: "hello_proof",
    SyncRequest: "sync_request",
}  # fmt: skip

INT_LIMITS = {
    "kind": 255, "b": 255, "step": 2**32 - 1, "version": 2**32 - 1,
    "count": 2**32 - 1, "listen_port": 2**16 - 1,
}  # fmt: skip


def test_constructors_accept_the_good_arguments() -> None:
    for cls, kwargs in good_args().items():
        value = cls(**kwargs)
        assert type(value).from_bytes(value.encode()) == value


@pytest.mark.parametrize("cls", list(FIELD_NAMES))
def test_constructors_reject_bad_lengths_naming_the_field(cls: type) -> None:
    kwargs = good_args()[cls]
    for name, good in kwargs.items():
        if not isinstance(good, bytes):
            continue
        for size in (0, len(good) - 1, len(good) + 1):
            bad = {**kwargs, name: bytes(size)}
            expected = f"{FIELD_NAMES[cls]}.{name}: must be {len(good)} bytes, got {size}"
            if (cls, name) == (Block, "seed_sig"):  # or an 80-byte VRF proof
                expected = (
                    "block.seed_sig: must be 64 bytes (a signature) or 80 bytes (a VRF proof),"
                    f" got {size}"
                )
            with pytest.raises(ValueError) as info:
                cls(**bad)
            assert str(info.value) == expected


@pytest.mark.parametrize("cls", list(FIELD_NAMES))
def test_constructors_reject_integers_out_of_range_naming_the_field(cls: type) -> None:
    kwargs = good_args()[cls]
    for name, good in kwargs.items():
        if not isinstance(good, int):
            continue
        limit = INT_LIMITS.get(name, U64)
        for bad_value in (-1, limit + 1):
            with raises(ValueError, f"{FIELD_NAMES[cls]}.{name}: must be in"):
                cls(**{**kwargs, name: bad_value})
        with raises(TypeError, f"{FIELD_NAMES[cls]}.{name}: expected int"):
            cls(**{**kwargs, name: "1"})


def test_constructors_reject_non_canonical_values() -> None:
    with raises(ValueError, "transaction.kind: unknown kind 2"):
        Transaction(**{**good_args()[Transaction], "kind": 2})
    with raises(ValueError, "bba_signature.b: non-canonical value 2"):
        BbaSignature(**{**good_args()[BbaSignature], "b": 2})
    with raises(ValueError, "certificate.b: non-canonical value 3"):
        Certificate(**{**good_args()[Certificate], "b": 3})
    with raises(ValueError, "bba_signature.leader: b = 1 needs the empty value"):
        BbaSignature(**{**good_args()[BbaSignature], "b": 1})


def test_a_proposed_block_needs_producer_seed_and_signature() -> None:
    kwargs = good_args()[Block]
    for name in ("producer", "seed_sig", "signature"):
        with raises(ValueError, f"block.{name}: required in a proposed block"):
            Block(**{**kwargs, name: None})
    with raises(ValueError, "block.transactions: the empty block has none"):
        Block(round=1, prev_hash=ZERO, transactions=[sample_tx()])
    with raises(ValueError, "block.prev_cert: the empty block carries none"):
        Block(round=1, prev_hash=ZERO, prev_cert=sample_cert(0))
    with raises(TypeError, "block.prev_cert must be a Certificate or None, not bytes"):
        Block(**{**kwargs, "prev_cert": b"cert"})
    assert Block(round=1, prev_hash=ZERO) == Block.empty(1, ZERO)


def test_containers_reject_the_wrong_item_types() -> None:
    with raises(TypeError, "tx_batch.transactions[1]: expected Transaction"):
        TxBatch([sample_tx(), b"x" * 153])
    with raises(TypeError, "certificate.votes[0]: expected a (signer, signature)"):
        Certificate(round=1, step=4, b=0, block_hash=b"h" * 32, leader=1, votes=[1])
    with raises(TypeError, "sync_response.blocks[0][1]: expected Certificate"):
        SyncResponse([(Block.empty(1, ZERO), Block.empty(1, ZERO))])
    with raises(TypeError, "gc_block.block: expected Block"):
        GcBlock(round=1, step=1, sender=1, block=b"block", signature=bytes(64))


def test_bytes_like_arguments_are_accepted() -> None:
    tx = Transaction(0, bytearray(32), memoryview(bytes(32)), 1, 2, 3, bytearray(64))
    assert tx.sender == ZERO and type(tx.sender) is bytes


# ------------------------------------------------------ blocks and their txs


def test_block_transactions_are_made_once_and_kept() -> None:
    block = Block.from_bytes(sample_block(5).encode())
    assert block.tx_count == 5
    txs = block.transactions
    assert txs is block.transactions
    assert [tx.encode() for tx in txs] == [sample_tx(i, i % 2).encode() for i in range(5)]


def test_a_constructed_block_keeps_the_given_transaction_objects() -> None:
    txs = [sample_tx(i) for i in range(3)]
    block = Block(1, ZERO, 1, bytes(64), txs, bytes(64))
    assert all(a is b for a, b in zip(block.transactions, txs, strict=True))


def test_transaction_ids_differ_by_signature() -> None:
    a = sample_tx(1)
    b = Transaction(**{**{n: getattr(a, n) for n in a.__match_args__}, "signature": bytes(64)})
    assert a.id != b.id
    assert a.signing_bytes(CHAIN) == b.signing_bytes(CHAIN)


# --------------------------------------------------------------- many frames


def test_decode_many_returns_a_message_or_an_error_for_each_frame() -> None:
    good = [m.encode() for m in sample_messages()]
    frames = [good[0], b"", good[3] + b"x", bytes([0x99]), bytearray(good[2]), good[7]]
    out = decode_many(frames)
    assert len(out) == len(frames)
    assert out[0] == sample_messages()[0]
    assert isinstance(out[1], DecodeError)
    assert str(out[1]) == "truncated: type needs 1 bytes, 0 left"
    assert isinstance(out[2], DecodeError) and str(out[2]) == "trailing bytes: 1"
    assert isinstance(out[3], DecodeError) and "unknown message type 0x99" in str(out[3])
    assert out[4] == sample_messages()[2]
    assert out[5] == sample_messages()[7]


def test_decode_many_agrees_with_decode_on_large_inputs() -> None:
    votes = [
        BbaSignature(5, 6, i, 0, b"h" * 32, 3 + i % 2, bytes([i % 256]) * 64, bytes(64)).encode()
        for i in range(2000)
    ]
    votes[777] = votes[777][:-1]
    out = decode_many(votes)
    assert isinstance(out[777], DecodeError)
    assert [m for i, m in enumerate(out) if i != 777] == [
        decode(v) for i, v in enumerate(votes) if i != 777
    ]
    assert decode_many([]) == []
    assert decode_many(iter(votes[:3])) == [decode(v) for v in votes[:3]]


def test_encode_many_matches_encode() -> None:
    msgs = sample_messages()
    assert encode_many(msgs) == [encode(m) for m in msgs]


# -------------------------------------------------------------------- frames


def test_split_frames_returns_complete_frames_and_what_they_used() -> None:
    msgs = sample_messages()
    stream = b"".join(frame(m) for m in msgs)
    ends = [0]
    for m in msgs:
        ends.append(ends[-1] + 4 + len(m.encode()))
    for cut in range(len(stream) + 1):
        frames, used = split_frames(stream[:cut])
        complete = max(i for i, end in enumerate(ends) if end <= cut)
        assert used == ends[complete]
        assert [decode(f) for f in frames] == msgs[:complete]


@settings(max_examples=50)
@given(st.lists(messages, min_size=1, max_size=4), st.lists(st.integers(1, 300), max_size=20))
def test_split_frames_reassembles_any_chunking(msgs: list[Message], sizes: list[int]) -> None:
    stream = b"".join(frame(m) for m in msgs)
    buffer = bytearray()
    seen: list[Message] = []
    pos = 0
    for size in [*sizes, len(stream)]:
        buffer += stream[pos : pos + size]
        pos += size
        frames, used = split_frames(buffer)
        del buffer[:used]
        seen += [decode(f) for f in frames]
    assert seen == msgs
    assert not buffer


def test_split_frames_rejects_bad_lengths() -> None:
    with raises(DecodeError, "frame.length: 0"):
        split_frames(frame(sample_messages()[6]) + b"\x00\x00\x00\x00")
    with raises(DecodeError, f"frame.length: {MAX_FRAME + 1} over limit {MAX_FRAME}"):
        split_frames((MAX_FRAME + 1).to_bytes(4, "big"))
    with raises(DecodeError, "frame.length: 101 over limit 100"):
        split_frames((101).to_bytes(4, "big") + bytes(101), max_frame=100)
    assert split_frames((100).to_bytes(4, "big") + bytes(100), max_frame=100)[1] == 104
    assert split_frames(b"\x00\x00\x00") == ([], 0)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)
    assert DecodeError.__module__ == "echorand.wire.messages"


def test_a_decoded_block_references_its_input_instead_of_copying_it() -> None:
    data = sample_messages()[0].encode()  # gc_block
    before = sys.getrefcount(data)
    msg = decode(data)
    assert sys.getrefcount(data) == before + 1  # held by the block's transactions
    del msg
    assert sys.getrefcount(data) == before
    block_data = sample_block(3).encode()
    block = Block.from_bytes(block_data)
    assert sys.getrefcount(block_data) == before + 1
    assert Block.from_bytes(bytearray(block_data)) == block
    assert Block.from_bytes(memoryview(block_data)) == block


def test_a_sync_response_does_not_hold_its_input() -> None:
    data = sample_messages()[7].encode()
    before = sys.getrefcount(data)
    msg = decode(data)
    assert sys.getrefcount(data) == before
    assert msg.blocks[0][0].tx_count == 2
