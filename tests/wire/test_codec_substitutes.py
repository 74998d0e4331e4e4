"""The substitute messages of §16 in the native codec: the bytes of the former Python
encoders (echorand.protocol.delegation before the move, kept here as the reference), round
trips, and strict decoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echorand.wire.constants import BBA_TAG, CERT_TAG, GC_PROPOSAL_TAG
from echorand.wire.messages import (
    MAX_CERT_VOTES,
    NO_LEADER,
    BbaSubstitute,
    Block,
    Certificate,
    DecodeError,
    GcSubstitute,
    SyncResponse,
    decode,
    decode_many,
    encode,
    encode_many,
)

ZERO = bytes(32)
U64 = 2**64 - 1
CHAIN = bytes(range(32))
"""The genesis hash the signed payloads here are bound to (PROTOCOL §2)."""

u32s = st.integers(0, 2**32 - 1)
u64s = st.integers(0, U64)
hashes = st.binary(min_size=32, max_size=32)
sigs = st.binary(min_size=64, max_size=64)
block_values = st.tuples(hashes, st.integers(0, NO_LEADER - 1))
empty_values = st.tuples(hashes, st.just(NO_LEADER))
values = st.one_of(empty_values, block_values)
modes = st.sampled_from((1, 2))


@st.composite
def seats(draw: st.DrawFn) -> tuple[int, int, int]:
    """(sender, principal, mode) with principal != sender."""
    sender = draw(u64s)
    principal = draw(u64s.filter(lambda p: p != sender))
    return sender, principal, draw(modes)


@st.composite
def gc_substitutes(draw: st.DrawFn) -> GcSubstitute:
    sender, principal, mode = draw(seats())
    h, leader = draw(values)
    return GcSubstitute(draw(u64s), draw(u32s), sender, principal, mode, h, leader, draw(sigs))


@st.composite
def bba_substitutes(draw: st.DrawFn) -> BbaSubstitute:
    sender, principal, mode = draw(seats())
    b = draw(st.sampled_from((0, 1)))
    h, leader = draw(empty_values if b == 1 else block_values)
    return BbaSubstitute(
        draw(u64s), draw(u32s), sender, principal, mode, b, h, leader, draw(sigs), draw(sigs)
    )


substitutes = st.one_of(gc_substitutes(), bba_substitutes())


# --- the former Python encoders (echorand/protocol/delegation.py), byte for byte ---------------

_HEAD = struct.Struct(">BQIQQB")  # type, round, step, sender, principal, mode
_VALUE = struct.Struct(">32sQ")


def py_gc_body(m: GcSubstitute) -> bytes:
    head = _HEAD.pack(0x05, m.round, m.step, m.sender, m.principal, m.mode)
    return head + _VALUE.pack(m.block_hash, m.leader)


def py_bba_body(m: BbaSubstitute) -> bytes:
    head = _HEAD.pack(0x06, m.round, m.step, m.sender, m.principal, m.mode)
    return head + bytes([m.b]) + _VALUE.pack(m.block_hash, m.leader) + m.cert_sig


def py_cert_signing_bytes(
    round: int, step: int, b: int, value: tuple[bytes, int], principal: int, mode: int
) -> bytes:
    """PROTOCOL §5 (revision 2): the own vote's body with its step, then principal and mode."""
    block_hash, leader = value
    body = struct.pack(">QIB32sQQB", round, step, b, block_hash, leader, principal, mode)
    return CERT_TAG + b"\x00" + CHAIN + body


@given(gc_substitutes())
def test_gc_substitute_bytes_equal_the_former_python_encoder(m: GcSubstitute) -> None:
    assert m.encode() == encode(m) == py_gc_body(m) + m.signature
    assert m.signing_bytes(CHAIN) == GC_PROPOSAL_TAG + b"\x00" + CHAIN + py_gc_body(m)
    assert len(m.encode()) == 1 + 8 + 4 + 8 + 8 + 1 + 40 + 64


@given(bba_substitutes())
def test_bba_substitute_bytes_equal_the_former_python_encoder(m: BbaSubstitute) -> None:
    assert m.encode() == encode(m) == py_bba_body(m) + m.signature
    assert m.signing_bytes(CHAIN) == BBA_TAG + b"\x00" + CHAIN + py_bba_body(m)
    expected = py_cert_signing_bytes(m.round, m.step, m.b, m.value, m.principal, m.mode)
    assert m.cert_signing_bytes(CHAIN) == expected
    assert len(expected) == len(CERT_TAG) + 1 + 32 + 62


@settings(max_examples=50)
@given(substitutes)
def test_substitutes_survive_encode_then_decode(m: GcSubstitute | BbaSubstitute) -> None:
    data = m.encode()
    assert decode(data) == m
    assert type(m).from_bytes(data) == m
    assert decode_many([data]) == [m]
    assert encode_many([m, m]) == [data, data]
    assert hash(decode(data)) == hash(m)


@settings(max_examples=20)
@given(substitutes)
def test_every_proper_prefix_and_any_extra_byte_is_rejected(
    m: GcSubstitute | BbaSubstitute,
) -> None:
    data = m.encode()
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:n])
    with pytest.raises(DecodeError, match="trailing"):
        decode(data + b"\x00")


def _gc(mode: int = 1, principal: int = 7, sender: int = 3) -> GcSubstitute:
    return GcSubstitute(1, 2, sender, principal, mode, b"\x11" * 32, 5, b"\x22" * 64)


def _bba(b: int = 0) -> BbaSubstitute:
    leader = NO_LEADER if b == 1 else 5
    return BbaSubstitute(1, 4, 3, 7, 2, b, b"\x11" * 32, leader, b"\x33" * 64, b"\x22" * 64)


MODE_AT = 1 + 8 + 4 + 8 + 8
PRINCIPAL_AT = 1 + 8 + 4 + 8


@pytest.mark.parametrize("make", [_gc, _bba])
@pytest.mark.parametrize("mode", [0, 3, 255])
def test_a_mode_other_than_1_or_2_is_rejected(make, mode: int) -> None:
    data = bytearray(make().encode())
    data[MODE_AT] = mode
    name = "gc_substitute" if data[0] == 5 else "bba_substitute"
    with pytest.raises(DecodeError, match=rf"^{name}\.mode: must be 1 \(explicit\) or 2"):
        decode(bytes(data))


@pytest.mark.parametrize("make", [_gc, _bba])
def test_a_principal_equal_to_the_sender_is_rejected(make) -> None:
    data = bytearray(make().encode())
    data[PRINCIPAL_AT : PRINCIPAL_AT + 8] = (3).to_bytes(8, "big")
    with pytest.raises(DecodeError, match=r"substitute\.principal: must differ"):
        decode(bytes(data))


def test_a_non_canonical_value_or_flag_is_rejected() -> None:
    bba = bytearray(_bba().encode())  # b = 0 with the empty value
    bba[MODE_AT + 2 + 32 : MODE_AT + 2 + 40] = NO_LEADER.to_bytes(8, "big")
    with pytest.raises(DecodeError, match=r"^bba_substitute\.leader: b = 0 needs a block"):
        decode(bytes(bba))
    bba = bytearray(_bba().encode())
    bba[MODE_AT + 1] = 2
    with pytest.raises(DecodeError, match=r"^bba_substitute\.b"):
        decode(bytes(bba))


def test_substitutes_are_not_own_messages_and_from_bytes_wants_its_type() -> None:
    gc, bba = _gc(), _bba()
    with pytest.raises(DecodeError, match="expected message type 0x05, got 0x06"):
        GcSubstitute.from_bytes(bba.encode())
    with pytest.raises(DecodeError, match="expected message type 0x06, got 0x05"):
        BbaSubstitute.from_bytes(gc.encode())
    assert gc.encode()[0] == 0x05 and bba.encode()[0] == 0x06


def test_constructors_check_the_seat_and_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"gc_substitute\.mode: must be 1"):
        _gc(mode=0)
    with pytest.raises(ValueError, match=r"gc_substitute\.principal: must differ"):
        _gc(principal=3)
    with pytest.raises(ValueError, match=r"bba_substitute\.b"):
        _bba(b=2)
    with pytest.raises(ValueError, match=r"bba_substitute\.cert_sig: must be 64 bytes"):
        BbaSubstitute(1, 4, 3, 7, 2, 0, b"\x11" * 32, 5, b"\x33" * 63, b"\x22" * 64)
    with pytest.raises(ValueError, match=r"bba_substitute\.leader: b = 1 needs the empty"):
        BbaSubstitute(1, 5, 3, 7, 2, 1, b"\x11" * 32, 5, b"\x33" * 64, b"\x22" * 64)
    with pytest.raises(ValueError, match=r"gc_substitute\.principal: must be in"):
        GcSubstitute(1, 2, 3, -1, 1, ZERO, 0, bytes(64))


def test_fields_match_args_value_and_pickle() -> None:
    import pickle

    bba = _bba()
    assert BbaSubstitute.__match_args__ == (
        "round", "step", "sender", "principal", "mode", "b",
        "block_hash", "leader", "cert_sig", "signature",
    )  # fmt: skip
    assert GcSubstitute.__match_args__ == (
        "round", "step", "sender", "principal", "mode", "block_hash", "leader", "signature",
    )  # fmt: skip
    assert bba.value == (b"\x11" * 32, 5)
    assert pickle.loads(pickle.dumps(bba)) == bba
    assert "principal=7" in repr(bba)
    # b = 1 carries, and signs, the empty value
    one = _bba(b=1)
    assert one.value == (b"\x11" * 32, NO_LEADER)
    assert one.cert_signing_bytes(CHAIN) == py_cert_signing_bytes(1, 4, 1, one.value, 7, 2)


# --- the certificate's substitute section -----------------------------------------------

_ENTRY = struct.Struct(">QQB64s")


def _cert(votes=((2, b"a" * 64), (9, b"b" * 64)), subs=()) -> Certificate:
    return Certificate(1, 4, 0, b"h" * 32, 4, list(votes), list(subs))


def py_delegated_cert(cert: Certificate) -> bytes:
    """The former Python encoder: own certificate, then `scount || entries`."""
    head = struct.pack(
        ">QIB32sQI", cert.round, cert.step, cert.b, cert.block_hash, cert.leader, len(cert.votes)
    )
    own = b"".join(struct.pack(">Q64s", s, sig) for s, sig in cert.votes)
    entries = b"".join(_ENTRY.pack(*e) for e in cert.substitutes)
    return head + own + len(cert.substitutes).to_bytes(4, "big") + entries


def test_a_certificate_carries_its_substitutes_in_the_trailing_section() -> None:
    subs = [(3, 7, 1, b"s" * 64), (11, 2, 2, b"t" * 64)]
    cert = _cert(subs=subs)
    data = cert.encode()
    assert data == py_delegated_cert(cert)
    assert data[-(4 + 2 * _ENTRY.size) :][:4] == (2).to_bytes(4, "big")
    assert Certificate.from_bytes(data) == cert
    assert cert.substitutes == tuple(subs) and cert.principals == (3, 11)
    assert cert.signers == (2, 9)
    assert cert != _cert()
    assert cert.substitute_signing_bytes(CHAIN, 3, 1) == py_cert_signing_bytes(
        1, 4, 0, cert.value, 3, 1
    )


def test_a_certificate_without_substitutes_ends_with_scount_0() -> None:
    cert = _cert()
    data = cert.encode()
    assert data[-4:] == bytes(4) and cert.substitutes == ()
    assert Certificate.from_bytes(data) == cert
    with pytest.raises(DecodeError, match=r"certificate\.scount"):
        Certificate.from_bytes(data[:-4])  # the section is always there


def _with_entries(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    own = _cert().encode()[:-4]
    return own + len(entries).to_bytes(4, "big") + b"".join(_ENTRY.pack(*e) for e in entries)


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([(3, 7, 0, bytes(64))], r"certificate\.substitutes\[0\]\.mode: must be 1"),
        ([(3, 7, 3, bytes(64))], r"certificate\.substitutes\[0\]\.mode: must be 1"),
        ([(3, 3, 1, bytes(64))], r"certificate\.substitutes\[0\]\.principal: must differ"),
        ([(5, 7, 1, bytes(64)), (4, 7, 1, bytes(64))], r"principals not strictly ascending"),
        ([(5, 7, 1, bytes(64)), (5, 8, 2, bytes(64))], r"principals not strictly ascending"),
        ([(3, 7, 1, bytes(64)), (9, 7, 1, bytes(64))], r"\[1\]\.principal: 9 is also an own"),
    ],
)
def test_a_bad_substitute_section_is_rejected_naming_the_entry(entries, error: str) -> None:
    with pytest.raises(DecodeError, match=error):
        Certificate.from_bytes(_with_entries(entries))
    with pytest.raises(ValueError, match=error):
        _cert(subs=entries)


def test_a_truncated_section_names_the_field() -> None:
    data = _with_entries([(3, 7, 1, b"s" * 64)])
    with pytest.raises(DecodeError, match=r"certificate\.substitutes\[0\]\.signature"):
        Certificate.from_bytes(data[:-1])
    with pytest.raises(DecodeError, match="trailing"):
        Certificate.from_bytes(data + b"\x00")


def test_own_and_substitute_votes_together_stay_within_the_limit() -> None:
    votes = [(2 * i, b"v" * 64) for i in range(MAX_CERT_VOTES - 1)]
    ok = Certificate(1, 4, 0, b"h" * 32, 4, votes, [(1, 0, 1, b"s" * 64)])
    assert Certificate.from_bytes(ok.encode()) == ok
    two = [(1, 0, 1, b"s" * 64), (3, 0, 1, b"s" * 64)]
    with pytest.raises(ValueError, match=r"certificate\.substitutes: more than the limit of 1"):
        Certificate(1, 4, 0, b"h" * 32, 4, votes, two)
    data = ok.encode()[:-85] + (2).to_bytes(4, "big") + b"".join(_ENTRY.pack(*e) for e in two)
    with pytest.raises(DecodeError, match=r"certificate\.scount: 2 over limit 1"):
        Certificate.from_bytes(data)


def test_substitute_entries_must_be_4_tuples() -> None:
    with pytest.raises(TypeError, match=r"certificate\.substitutes\[0\]: expected a"):
        _cert(subs=[(3, 7, 1)])


def test_a_sync_response_carries_certificates_with_substitutes() -> None:
    cert = Certificate(1, 5, 1, ZERO, NO_LEADER, [(2, b"a" * 64)], [(3, 7, 2, b"s" * 64)])
    response = SyncResponse([(Block.empty(1, b"p" * 32), cert)])
    back = decode(response.encode())
    assert back == response and back.blocks[0][1].substitutes == ((3, 7, 2, b"s" * 64),)
