"""Type stubs for the native extension `echorand._native` (Rust, PyO3), one section per module."""

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self, SupportsIndex, final

from typing_extensions import Buffer

# --- chain (native/src/chain.rs) ---------------------------------------------

HASH_SIZE: int
"""32: bytes in a seed and in every link of the chain."""
MAX_LINKS: int
"""The most links one `vrf_chain` call returns (2**22)."""

def vrf_chain(seed: bytes | bytearray, round: int, step: int, count: int) -> bytes:
    """VRF_0(r, s) .. VRF_{count-1}(r, s) of PROTOCOL §3, concatenated (count * 32 bytes).

    VRF_0 = H(seed || u64be(round) || u32be(step)), VRF_i = H(VRF_{i-1}).
    `seed` is 32 bytes; round is a u64, step a u32, 0 <= count <= MAX_LINKS.
    """

# --- stake (native/src/stake.rs) ---------------------------------------------

MAX_SEATS: int
"""The most seats one committee call draws (2**22)."""

@final
class StakeTable:
    """Balances by account id (dense, from 0) and their Fenwick tree (PROTOCOL §3).

    `balances` is either a buffer of native-endian 8-byte integers, one-dimensional
    and contiguous (`array('Q')`, `array('q')`, numpy `uint64`/`int64`; negative
    values refused), a bytes-like object of packed native-endian u64
    (`array('Q', ...).tobytes()`), or any iterable of ints (a list). The total
    must stay below 2**63. 8 bytes per account (the tree alone).
    """

    def __init__(self, balances: Buffer | Iterable[SupportsIndex]) -> None: ...
    def committee(self, seed: bytes | bytearray, round: int, step: int, size: int) -> list[int]:
        """The account id of each seat 0 .. size-1 of `step` of `round`.

        seat i = the smallest j with balance[0] + ... + balance[j] > int_be(VRF_i) mod W.
        `seed` is Q[round-1]; round >= 1, step >= 1, size <= MAX_SEATS.
        ValueError "stake table total is zero" when W == 0.
        """
    def weights(self, seed: bytes | bytearray, round: int, step: int, size: int) -> dict[int, int]:
        """Seats per account in the same committee, in order of first seat."""
    def update(self, mapping: Mapping[SupportsIndex, SupportsIndex]) -> None:
        """Set `{account_id: new_balance}` in place, O(log n) each; all or nothing.

        ValueError (naming the account) for an unknown account, a balance that is
        negative or over u64, or a new total >= 2**63; nothing is changed then.
        """
    def append(self, balance: SupportsIndex) -> int:
        """Add one account; return its id."""
    def extend(self, balances: Buffer | Iterable[SupportsIndex]) -> None:
        """Add accounts (anything the constructor takes); all or nothing."""
    def balance(self, account_id: SupportsIndex) -> int:
        """The balance of an account (ValueError when unknown); O(1) on average."""
    @property
    def total(self) -> int:
        """W: the sum of all balances."""
    @property
    def nbytes(self) -> int:
        """Bytes of memory the table holds."""
    def copy(self) -> StakeTable:
        """An independent snapshot."""
    def __copy__(self) -> StakeTable: ...
    def __deepcopy__(self, memo: Any) -> StakeTable: ...
    def __len__(self) -> int: ...

# --- codec (native/src/codec) -------------------------------------------------

MAX_FRAME: int
MAX_BLOCK_TXS: int
MAX_CERT_VOTES: int
MAX_BATCH_TXS: int
MAX_SYNC_BLOCKS: int
NO_LEADER: int
FINAL_STEP: int

class DecodeError(ValueError):
    """Input that is not the one canonical encoding of a message; the text names the field."""

class Transaction:
    TRANSFER: ClassVar[int]
    DELEGATION: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    def __init__(
        self,
        kind: int,
        sender: Buffer,
        recipient: Buffer,
        amount: int,
        fee: int,
        nonce: int,
        signature: Buffer,
    ) -> None: ...
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    @property
    def kind(self) -> int: ...
    @property
    def sender(self) -> bytes: ...
    @property
    def recipient(self) -> bytes: ...
    @property
    def amount(self) -> int: ...
    @property
    def fee(self) -> int: ...
    @property
    def nonce(self) -> int: ...
    @property
    def signature(self) -> bytes: ...
    @property
    def id(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Block:
    __match_args__: ClassVar[tuple[str, ...]]
    def __init__(
        self,
        round: int,
        prev_hash: Buffer,
        producer: int | None = None,
        seed_sig: Buffer | None = None,
        transactions: Iterable[Transaction] | None = None,
        signature: Buffer | None = None,
        prev_cert: Certificate | None = None,
    ) -> None: ...
    @classmethod
    def empty(cls, round: int, prev_hash: Buffer) -> Self: ...
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    @property
    def round(self) -> int: ...
    @property
    def prev_hash(self) -> bytes: ...
    @property
    def producer(self) -> int | None: ...
    @property
    def seed_sig(self) -> bytes | None: ...
    @property
    def transactions(self) -> tuple[Transaction, ...]: ...
    @property
    def tx_count(self) -> int: ...
    @property
    def signature(self) -> bytes | None: ...
    @property
    def prev_cert(self) -> Certificate | None:
        """CERT_{r-1}, carried after a proposed block (docs/protocol.md §16)."""
    @property
    def is_empty(self) -> bool: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def payload_hash(self) -> bytes | None: ...
    @property
    def header_body(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Certificate:
    __match_args__: ClassVar[tuple[str, ...]]
    def __init__(
        self,
        round: int,
        step: int,
        b: int,
        block_hash: Buffer,
        leader: int,
        votes: Iterable[tuple[int, Buffer]],
        substitutes: Iterable[tuple[int, int, int, Buffer]] | None = None,
    ) -> None: ...
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def b(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def leader(self) -> int: ...
    @property
    def value(self) -> tuple[bytes, int]: ...
    @property
    def votes(self) -> tuple[tuple[int, bytes], ...]: ...
    @property
    def signers(self) -> tuple[int, ...]: ...
    @property
    def substitutes(self) -> tuple[tuple[int, int, int, bytes], ...]:
        """`(principal, signer, mode, signature)`, principals strictly ascending (§16)."""
    @property
    def principals(self) -> tuple[int, ...]: ...
    def vote_signing_bytes(self, chain: bytes) -> bytes: ...
    def substitute_signing_bytes(self, chain: bytes, principal: int, mode: int) -> bytes: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class GcBlock:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self, round: int, step: int, sender: int, block: Block, signature: Buffer
    ) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sender(self) -> int: ...
    @property
    def block(self) -> Block: ...
    @property
    def signature(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...

class GcSignature:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        round: int,
        step: int,
        sender: int,
        rand: Buffer,
        block_hash: Buffer,
        prev_hash: Buffer,
        signature: Buffer,
    ) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sender(self) -> int: ...
    @property
    def rand(self) -> bytes: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def prev_hash(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...

class GcProposal:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        round: int,
        step: int,
        sender: int,
        block_hash: Buffer,
        leader: int,
        signature: Buffer,
    ) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sender(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def leader(self) -> int: ...
    @property
    def value(self) -> tuple[bytes, int]: ...
    @property
    def signature(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...

class BbaSignature:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        round: int,
        step: int,
        sender: int,
        b: int,
        block_hash: Buffer,
        leader: int,
        cert_sig: Buffer,
        signature: Buffer,
    ) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sender(self) -> int: ...
    @property
    def b(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def leader(self) -> int: ...
    @property
    def value(self) -> tuple[bytes, int]: ...
    @property
    def cert_sig(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...
    def cert_signing_bytes(self, chain: bytes) -> bytes: ...

class GcSubstitute:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        round: int,
        step: int,
        sender: int,
        principal: int,
        mode: int,
        block_hash: Buffer,
        leader: int,
        signature: Buffer,
    ) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sender(self) -> int: ...
    @property
    def principal(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def leader(self) -> int: ...
    @property
    def value(self) -> tuple[bytes, int]: ...
    @property
    def signature(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...

class BbaSubstitute:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        round: int,
        step: int,
        sender: int,
        principal: int,
        mode: int,
        b: int,
        block_hash: Buffer,
        leader: int,
        cert_sig: Buffer,
        signature: Buffer,
    ) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sender(self) -> int: ...
    @property
    def principal(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def b(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def leader(self) -> int: ...
    @property
    def value(self) -> tuple[bytes, int]: ...
    @property
    def cert_sig(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...
    def cert_signing_bytes(self, chain: bytes) -> bytes: ...

class FinalVote:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        round: int,
        step: int,
        sender: int,
        block_hash: Buffer,
        signature: Buffer,
    ) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sender(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...
    def signing_bytes(self, chain: bytes) -> bytes: ...

class TxBatch:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(self, transactions: Iterable[Transaction]) -> None: ...
    @property
    def transactions(self) -> tuple[Transaction, ...]: ...
    @property
    def tx_count(self) -> int: ...

class Hello:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        version: int,
        genesis_hash: Buffer,
        node_key: Buffer,
        nonce: Buffer,
        tip_round: int,
        listen_port: int,
    ) -> None: ...
    @property
    def version(self) -> int: ...
    @property
    def genesis_hash(self) -> bytes: ...
    @property
    def node_key(self) -> bytes: ...
    @property
    def nonce(self) -> bytes: ...
    @property
    def tip_round(self) -> int: ...
    @property
    def listen_port(self) -> int: ...

class HelloProof:
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(self, signature: Buffer) -> None: ...
    @property
    def signature(self) -> bytes: ...

class FinalProof:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(self, round: int, block_hash: Buffer, votes: Buffer) -> None: ...
    @property
    def round(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def votes(self) -> bytes: ...
    @property
    def vote_count(self) -> int: ...

class SyncRequest:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(self, from_round: int, count: int) -> None: ...
    @property
    def from_round(self) -> int: ...
    @property
    def count(self) -> int: ...

class SyncResponse:
    CODE: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    @classmethod
    def from_bytes(cls, data: Buffer) -> Self: ...
    def encode(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __init__(self, blocks: Iterable[tuple[Block, Certificate]]) -> None: ...
    @property
    def blocks(self) -> tuple[tuple[Block, Certificate], ...]: ...

_AnyMessage = (
    GcBlock
    | GcSignature
    | GcProposal
    | BbaSignature
    | GcSubstitute
    | BbaSubstitute
    | TxBatch
    | Hello
    | HelloProof
    | SyncRequest
    | SyncResponse
)

def encode(msg: _AnyMessage) -> bytes: ...
def encode_many(messages: Iterable[_AnyMessage]) -> list[bytes]: ...
def decode(data: Buffer) -> _AnyMessage: ...
def decode_many(frames: Sequence[Buffer]) -> list[_AnyMessage | DecodeError]: ...
def split_frames(buffer: Buffer, max_frame: int = ...) -> tuple[list[bytes], int]: ...

# --- end codec ------------------------------------------------------------------

# --- ed25519 (native/src/ed25519.rs) -----------------------------------------

def verify(public_key: Buffer, message: Buffer, signature: Buffer) -> bool:
    """ZIP 215 verification of one signature (PROTOCOL §2).

    `ValueError` when the key is not 32 bytes or the signature not 64.
    """

def verify_batch(
    public_keys: Sequence[Buffer],
    messages: Sequence[Buffer],
    signatures: Sequence[Buffer],
    threads: int | None = None,
    backend: str | None = None,
) -> list[bool]:
    """`verify` of each triple, by batch verification; the GIL is released.

    `ValueError` for sequences of different lengths, a key that is not 32
    bytes or a signature that is not 64 (naming the item). `threads`: None
    for all cores, 1 for the calling thread, n for a pool of n threads.
    `backend`: None as the CPU allows, or "portable" / "avx512ifma" to force
    one (for tests; `ValueError` for "avx512ifma" on a CPU without it).
    """

def is_valid_account_key(public_key: Buffer) -> bool:
    """False for a non-canonical encoding, a non-point or a small-order point."""

# --- vrf (native/src/vrf.rs) ---------------------------------------------------

VRF_SUITE: int
"""0x04: the suite_string of ECVRF-EDWARDS25519-SHA512-ELL2 (RFC 9381)."""
VRF_PROOF_SIZE: int
"""80: Gamma (32) || c (16) || s (32)."""
VRF_OUTPUT_SIZE: int
"""64: the output beta (SHA-512)."""

def vrf_prove(seed: Buffer, alpha: Buffer) -> bytes:
    """The 80-byte proof of `alpha` under the key of the 32-byte Ed25519 `seed` (RFC 9381 §5.1)."""

def vrf_proof_to_hash(proof: Buffer) -> bytes:
    """The 64-byte output of an 80-byte proof, unverified; ValueError when it does not decode."""

def vrf_verify(public_key: Buffer, alpha: Buffer, proof: Buffer) -> bytes | None:
    """The output when the proof is valid (RFC 9381 §5.3, validate_key, canonical points)."""

def vrf_verify_batch(
    public_keys: Sequence[Buffer],
    alphas: Sequence[Buffer],
    proofs: Sequence[Buffer],
    threads: int | None = None,
) -> list[bytes | None]:
    """`vrf_verify` of each triple, the GIL released; chunks share their compressions.

    `ValueError` for sequences of different lengths, a key that is not 32
    bytes or a proof that is not 80 (naming the item). `threads`: None for
    all cores, 1 for the calling thread, n for a pool of n threads.
    """

# --- grinding (native/src/grinding.rs) -------------------------------------------

GRINDING_MAX_CANDIDATES: int
"""2**20: the most signatures a coalition leader may try in one round."""

def grinding_signatures(seed: Buffer, message: Buffer, count: int) -> bytes:
    """`count` Ed25519 signatures of `message` (64 bytes each) with the nonces r0 + j.

    r0 is RFC 8032's nonce, so the first is the standard signature; all verify.
    """

@final
class GrindingStudy:
    """Rounds of leaders and seeds over a snapshot of a stake table (echorand sim grinding).

    The leader of round r is the account of seat 0 of step 1 from Q[r-1]. `kind`
    'signature': Q[r] = H(S || u64be(r)), S a signature of the seed payload
    ("echorand/seed" || 0x00 || genesis_hash || u64be(r) || Q[r-1]); a coalition
    leader tries `candidates` signatures and keeps the seed best for round r + 1 by
    `objective` ('lead': leading r + 1, then seats; 'seats': its seats in the
    committee of `step`, `seats` seats). `kind` 'vrf': Q[r] = H(beta || u64be(r)),
    beta the ECVRF output of the payload. `secrets`: 32-byte Ed25519 seeds by id.
    """

    def __init__(
        self,
        table: StakeTable,
        coalition: Iterable[int],
        secrets: Buffer,
        *,
        kind: str,
        candidates: int,
        objective: str,
        step: int,
        seats: int,
        genesis_hash: Buffer,
        seed: Buffer,
    ) -> None: ...
    def run(self, rounds: int) -> None:
        """Run `rounds` more rounds with the GIL released."""
    def trace(self, rounds: int) -> list[tuple[int, bytes, bytes]]:
        """Run `rounds` more rounds; (leader, S or beta, Q[r]) of each."""
    @property
    def rounds(self) -> int: ...
    @property
    def leaderships(self) -> int:
        """Rounds the coalition led."""
    @property
    def coalition_seats(self) -> int:
        """The coalition's seats in the committees of `step`, all rounds."""
    @property
    def ground_rounds(self) -> int:
        """Rounds whose seed the coalition chose among more than one candidate."""
    @property
    def seed(self) -> bytes:
        """Q of the next round."""
    @property
    def seats(self) -> int: ...
    @property
    def candidates(self) -> int: ...

def verify_backend() -> str:
    """The batch verifier on this CPU: "avx512ifma" (8 signatures per vector) or "portable"."""

def verify_differential(cases: int, seed: int = 1) -> dict[str, Any]:
    """The lane verifier against ed25519-zebra on >= `cases` generated signatures.

    Keys: `cases`, `batches`, `accepted`, `by_kind` (name -> (cases, accepted)),
    `disagreements` (dicts: kind, public_key, message, signature, zebra, lanes).
    `RuntimeError` without AVX-512 IFMA.
    """

# --- leader (native/src/leader.rs) -------------------------------------------

LEADER_MAX_VALIDATORS: int
"""256: the most validators `leader_order` and `LeaderStudy` handle (ids fit a byte)."""

def leader_order(
    n_validators: int, locked_ids: Iterable[int], height: int, seed: bytes | None = None
) -> list[int]:
    """The proposer order of `height` (PROTOCOL §7), as
    `echorand.protocol.leader.round_robin_order`.

    F = (N - 1) // 3; the ids 0 .. N-1 not in `locked_ids` (at most F), ascending,
    permuted by the T-th lexicographic permutation, T = int_be(H(u32be(height)))
    mod (N - F)! computed exactly; with `seed` (Q[r-1], 32 bytes; `height` is the
    round r, a u64) T = int_be(H(Q[r-1] || u64be(r))) mod (N - F)!.
    """

@final
class LeaderStudy:
    """The experiment of the round-robin study (seed 002), resumable.

    Validators 0 .. N-1, the first `byzantine` (F) Byzantine; each author is
    locked for the next F heights; the others are permuted with (N - F)!. The
    author is the first of the order, or with `slow_honest=K` the first Byzantine
    validator at a position <= K, else the first of the order. With `seed` (Q[0]),
    step i is round r = i + 1 with T = int_be(H(Q[r-1] || u64be(r))) and
    Q[r] = H(Q[r-1] || u64be(r)). 1 <= N <= 256, 0 <= F < N.
    """

    def __init__(
        self,
        n_validators: int,
        byzantine: int,
        *,
        slow_honest: int | None = None,
        seed: bytes | None = None,
    ) -> None: ...
    def run(self, blocks: int) -> bytes:
        """Run `blocks` more heights (the GIL released); their authors, one byte each.

        Unseeded heights stay below 2**32 (ValueError otherwise).
        """
    @property
    def height(self) -> int:
        """Heights run so far."""
    @property
    def n_validators(self) -> int: ...
    @property
    def byzantine(self) -> int: ...
    @property
    def slow_honest(self) -> int | None: ...
    @property
    def seed(self) -> bytes | None:
        """Q of the next step (seeded), else None."""
    @property
    def counts(self) -> list[list[int]]:
        """counts[v][p]: heights where validator v stood at position p < N - F."""
    @property
    def author_counts(self) -> list[int]:
        """Blocks authored by each validator."""
    @property
    def wait_histogram(self) -> dict[int, int]:
        """{wait: heights}: blocks from a height to the next block with an honest author."""
    @property
    def dropped_tail(self) -> int:
        """Heights with no later honest block yet (not in the histogram)."""

# --- state (native/src/state.rs) ----------------------------------------------

GENESIS_ENTRY_SIZE: int
"""40: one genesis account, `pk 32 || balance u64be`."""
RECORD_SIZE: int
"""56: one stored account, `pk 32 || balance u64be || nonce u64be || delegate u64be`."""
UNDO_ENTRY_SIZE: int
"""32: one undo entry, `id || balance || nonce || delegate` (u64be)."""
NO_DELEGATE: int
"""2**64 - 1: the delegate field of an account that has not delegated."""
REASONS: dict[str, str]
"""The reason texts of the transaction rules, by constant name (`NONCE_TOO_LOW`: ...)."""

_Transactions = Block | Buffer | Iterable[Transaction]

@final
class AccountState:
    """Keys, balances, nonces and delegates by account id, and the key -> id index.

    `AccountState(accounts, check_keys=True)`: from genesis entries (n * 40 bytes).
    """

    def __init__(self, accounts: Buffer, *, check_keys: bool = True) -> None: ...
    @staticmethod
    def from_records(records: Buffer) -> AccountState:
        """From stored 56-byte records in id order (keys not re-checked)."""
    def __len__(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def version(self) -> int:
        """How many times changes were committed."""
    def id_of(self, public_key: Buffer) -> int | None: ...
    def public_key(self, id: int) -> bytes: ...
    def account(self, id: int) -> tuple[int, int, int | None]:
        """(balance, nonce, delegate or None); ValueError when unknown."""
    def balance(self, id: int) -> int: ...
    def nonce(self, id: int) -> int: ...
    def balances(self, undos: Iterable[Buffer] | None = None) -> bytes:
        """Balances by id, packed native-endian u64; before the blocks of `undos` (newest first)."""
    def delegates(self, undos: Iterable[Buffer] | None = None) -> bytes:
        """Delegates by id, packed native-endian u64 (2**64 - 1: none; a created account starts
        with its registrar); before the blocks of `undos` (newest first)."""
    def public_keys(self) -> bytes: ...
    def records(self, start: int = 0, count: int | None = None) -> bytes: ...
    def items(self, start: int = 0, count: int | None = None) -> list[tuple[bytes, bytes]]:
        """(u64be(id), record) pairs for a key-value store."""
    def check(
        self, transactions: _Transactions, pending: _Transactions | None = None
    ) -> list[str | None]:
        """The reason each transaction is refused (None: accepted), in order, after `pending`."""
    def prepare(
        self,
        transactions: _Transactions,
        producer: int | None = None,
        credits: Iterable[tuple[int, int]] | None = None,
    ) -> Changes:
        """What a block changes, all or nothing (ValueError naming the first refused one);
        `credits` `(account, units)` are its rewards, minted after the fees."""
    def commit(self, changes: Changes) -> None: ...
    def apply(
        self,
        transactions: _Transactions,
        producer: int | None = None,
        credits: Iterable[tuple[int, int]] | None = None,
    ) -> Changes: ...

@final
class Changes:
    """What one block changes: changed accounts (old and new) and created accounts."""

    @property
    def accounts_before(self) -> int: ...
    @property
    def accounts_after(self) -> int: ...
    @property
    def tx_count(self) -> int: ...
    @property
    def fees(self) -> int: ...
    @property
    def minted(self) -> int:
        """The units the block's reward credits created."""
    @property
    def producer(self) -> int | None: ...
    @property
    def version(self) -> int: ...
    @property
    def new_keys(self) -> bytes: ...
    def new_accounts(self) -> list[tuple[bytes, int]]: ...
    def changed(self) -> bytes:
        """(id, balance, nonce, delegate) u64be per changed pre-existing account."""
    def records(self) -> list[tuple[bytes, bytes]]:
        """(u64be(id), record) of every changed and created account, ascending."""
    @property
    def undo(self) -> bytes: ...
    def balance_updates(self) -> dict[int, int]: ...
    def new_balances(self) -> bytes:
        """Balances of the created accounts, packed native-endian u64."""
    def __len__(self) -> int: ...

@final
class PendingState:
    """Each sender's account after its queued transactions in a mempool (state/pending.rs):
    nonce and balance, credits to recipients not counted."""

    def __init__(self) -> None: ...
    @property
    def version(self) -> int | None: ...
    def __len__(self) -> int: ...
    def rebuild(self, state: AccountState, queued: _Transactions) -> int: ...
    def redo(
        self, state: AccountState, senders: Iterable[Buffer], queued: _Transactions
    ) -> int: ...
    def check_and_add(
        self, state: AccountState, transactions: _Transactions
    ) -> list[str | None]: ...

def derive_public_keys(seeds: Buffer) -> bytes:
    """The Ed25519 public key of each 32-byte seed (n * 32 bytes in, n * 32 out)."""

def devnet_seeds(master: Buffer, count: int, first: int | None = None) -> bytes:
    """H("echorand/devnet-key" || 0x00 || master || u64be(i)) for i in first .. first + count."""

def valid_account_keys(public_keys: Buffer) -> list[bool]:
    """`is_valid_account_key` of each key of an n * 32-byte buffer."""

# --- end state ------------------------------------------------------------------

# --- pool (native/src/pool.rs) ----------------------------------------------------

POOL_REASONS: dict[str, str]
"""The mempool's own refusals by constant name (`ALREADY_QUEUED`, `FEE_TOO_LOW`,
`BAD_SIGNATURE`, `SENDER_LIMIT`, `MEMPOOL_FULL`)."""

@final
class MempoolQueue:
    """A mempool's queue over an `AccountState` (docs/protocol.md §13): transactions by
    id, per-sender chains of consecutive nonces, fee-order selection, the limits and
    eviction; each sender's account after its chain is cached for admission.
    `echorand.ledger.mempool.Mempool` is its facade."""

    def __init__(
        self, state: AccountState, *, capacity: int, max_per_sender: int, min_fee: int = 0
    ) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, tx_id: object) -> bool: ...
    @property
    def evicted(self) -> int:
        """Transactions evicted for better-paying ones so far."""
    def get(self, tx_id: object) -> Transaction | None: ...
    def pending(self, sender: object) -> list[Transaction]:
        """The queued transactions of `sender` (a public key), in nonce order."""
    def add(
        self,
        transactions: Iterable[Transaction],
        verified: Container[bytes] | None,
        refuted: Container[bytes] | None,
        verify: Callable[[list[Transaction]], Iterable[bool]],
    ) -> list[str | None]:
        """Admit a batch: each one's reason, None when queued. The signatures of those
        that pass every other check: bad when in `refuted`, good when in `verified`,
        else one call `verify(transactions)`."""
    def to_verify(
        self, transactions: Iterable[Transaction], verified: Container[bytes] | None
    ) -> list[Transaction]:
        """What `add` would verify (not queued, not repeated, minimum fee, not in
        `verified`, not refused by the account state). Nothing changes."""
    def select(self, limit: int) -> list[Transaction]:
        """At most `limit` for a block: fee order across senders, nonce order in each."""
    def recheck(self, senders: Iterable[bytes] | None = None) -> int:
        """After a block: drop what the state no longer accepts from the chains of
        `senders` (all when None), each chain alone; how many were dropped."""

# --- end pool -------------------------------------------------------------------
