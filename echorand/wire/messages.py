"""The wire format: every message, transaction, block and certificate (docs/protocol.md §6).

All classes are immutable values implemented in Rust (`echorand._native`): a keyword
constructor that checks every field (a `ValueError` naming the field), read-only
attributes, `==`, `hash`, a `repr`, pickling, and structural pattern matching. Each has
exactly one encoding; `decode` rejects anything else with a `DecodeError` naming the field
(short input, trailing bytes, counts over their limit, unknown types and kinds, flags
other than 0/1, a zero block hash with a non-zero leader, unsorted certificate signers, a
payload that does not match its hash).

The whitepaper's messages, in its words:

- `GcBlock` (`gc_block`, 0x01) -- "sent in step 1 by producers to propose a newly created
  block ... for addition to the distributed ledger": `{r, id_1, B_r, sig(B_r)}`. The
  sender's signature covers the block through its hash (`block.hash`).
- `GcSignature` (`gc_signature`, 0x02) -- "sent during step 1": the producer's seed
  signature `rand = sig(Q_{r-1})` and its block hash, `{r, id_1, sig(Q_{r-1}), H(B_r)}`,
  with the previous block hash. Not used under a `vrf` genesis (its `rand` is a signature).
- `GcProposal` (`gc_proposal`, 0x03) -- "Selection of a Leader and a Block", sent in steps 2
  and 3: a verifier's value `v = {block_hash, leader}` (the empty value is a zero hash and
  leader 0).
- `BbaSignature` (`bba_signature`, 0x04) -- "BBA Consensus Result", sent in step 4 and every
  later step: `{r, s, id, b, v, sig(b, v)}`; `cert_sig` is the vote that goes into the
  certificate `CERT_r`, signed over `(r, b, v)` (the empty value when `b = 1`).
- `FinalVote` (`final_vote`, 0x07) -- PROTOCOL §6: sent in the reserved step `2^32 - 1` by
  a verifier that decided from the first deciding step's votes before it voted again; a
  block with final votes of weight > t_f is *final* and is never rolled back.
- `GcSubstitute` (`gc_substitute`, 0x05) and `BbaSubstitute` (`bba_substitute`, 0x06) --
  docs/protocol.md §16: a `gc_proposal` or `bba_signature` that the sender signs in the
  seats of another account, `principal`, as its explicit delegate (`mode` 1) or its
  fallback (`mode` 2); the principal and the mode are inside both signatures.
- `Certificate` -- `CERT_r`, "a B_r block certificate formed out of a set of bba_signature
  messages": the `cert_sig` votes of the deciding step, signers strictly ascending.
- `Block` -- `B_r`, "a block created in round r": a producer's proposed block with its seed
  credential `seed_sig` (a 64-byte signature, or under a `vrf` genesis an 80-byte VRF proof:
  block kind 0x02, `echorand.protocol.seeds`) and payload `PAY_r`, or
  `Block.empty(r, prev_hash)`, the empty block.
- `Transaction` -- one entry of `PAY_r`: a transfer (kind 0) or a delegation (kind 1).

Network messages, outside the whitepaper: `TxBatch` (0x10, transaction gossip), `Hello`
(0x20) and `HelloProof` (0x23), the authenticated handshake, `SyncRequest` (0x21) and
`SyncResponse` (0x22, certified blocks for a node that is behind), and `FinalProof` (0x24,
the final votes of a block, sent after a sync answer that reaches it).

On a stream, each message travels as `u32be length || message`; `split_frames` cuts a
buffer into frames and rejects a length of 0 or over `MAX_FRAME` (the peer is dropped).
"""

from __future__ import annotations

from blake3 import blake3

from echorand._native import (
    FINAL_STEP,
    MAX_BATCH_TXS,
    MAX_BLOCK_TXS,
    MAX_CERT_VOTES,
    MAX_FRAME,
    MAX_SYNC_BLOCKS,
    NO_LEADER,
    BbaSignature,
    BbaSubstitute,
    Block,
    Certificate,
    DecodeError,
    FinalProof,
    FinalVote,
    GcBlock,
    GcProposal,
    GcSignature,
    GcSubstitute,
    Hello,
    HelloProof,
    SyncRequest,
    SyncResponse,
    Transaction,
    TxBatch,
    decode,
    decode_many,
    encode,
    encode_many,
    split_frames,
)

ConsensusMessage = (
    GcBlock | GcSignature | GcProposal | BbaSignature | GcSubstitute | BbaSubstitute | FinalVote
)
"""The messages of a round's steps, each signed by its sender (the substitutes in another
account's seats, §16; final votes in the reserved step, PROTOCOL §6)."""

CONSENSUS_TYPES: tuple[type, ...] = (
    GcBlock,
    GcSignature,
    GcProposal,
    BbaSignature,
    GcSubstitute,
    BbaSubstitute,
    FinalVote,
)
"""The classes of `ConsensusMessage`, in type-code order."""

NetworkMessage = TxBatch | Hello | HelloProof | SyncRequest | SyncResponse | FinalProof
"""The messages between peers outside consensus."""

Message = ConsensusMessage | NetworkMessage
"""Anything `decode` returns: one message of the wire format."""


def frame(msg: Message) -> bytes:
    """`u32be length || message`: one frame for a stream."""
    data = encode(msg)
    return len(data).to_bytes(4, "big") + data


def digest(frame: bytes) -> bytes:
    """The gossip identity of a frame: BLAKE3 of its bytes (32 bytes)."""
    return blake3(frame).digest()


__all__ = [
    "CONSENSUS_TYPES",
    "FINAL_STEP",
    "MAX_BATCH_TXS",
    "MAX_BLOCK_TXS",
    "MAX_CERT_VOTES",
    "MAX_FRAME",
    "MAX_SYNC_BLOCKS",
    "NO_LEADER",
    "BbaSignature",
    "BbaSubstitute",
    "Block",
    "Certificate",
    "ConsensusMessage",
    "DecodeError",
    "FinalProof",
    "FinalVote",
    "GcBlock",
    "GcProposal",
    "GcSignature",
    "GcSubstitute",
    "Hello",
    "HelloProof",
    "Message",
    "NetworkMessage",
    "SyncRequest",
    "SyncResponse",
    "Transaction",
    "TxBatch",
    "decode",
    "decode_many",
    "digest",
    "encode",
    "encode_many",
    "frame",
    "split_frames",
]
