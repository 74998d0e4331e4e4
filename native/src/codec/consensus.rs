//! The consensus messages of a round. Each carries `round u64 || step u32 ||
//! sender u64` and ends with the sender's signature over
//! `tag || 0x00 || genesis_hash || (everything before the signature, type byte included)`;
//! in `gc_block` the block inside that signed body is replaced by its hash.
//!
//! Values (PROTOCOL §5, revision 2): the empty value is `(H(B_ε), NO_LEADER)`, the hash of
//! the round's empty block with leader `2^64 - 1`. A BBA vote with `b = 0` carries a
//! non-empty value and one with `b = 1` the empty value; anything else is malformed. (Whether
//! an empty value's hash is the round's `H(B_ε)` needs the chain: validation checks it.)
//!
//! ```text
//! gc_block       0x01 round step sender || block                                     tag echorand/msg
//! gc_signature   0x02 round step sender || rand 64 || block_hash 32 || prev_hash 32  tag echorand/msg
//! gc_proposal    0x03 round step sender || v                                         tag echorand/gc_proposal
//! bba_signature  0x04 round step sender || b u8 || v || cert_sig 64                  tag echorand/bba
//! gc_substitute  0x05 round step sender || principal u64 || mode u8 || v              tag echorand/gc_proposal
//! bba_substitute 0x06 round step sender || principal u64 || mode u8 || b u8 || v || cert_sig 64  tag echorand/bba
//! ```
//!
//! The substitutes (docs/protocol.md §16) are votes the sender signs in the
//! seats of another account, the `principal`: as its explicit delegate
//! (`mode` 1) or its fallback (`mode` 2).

use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::args;
use super::block::Block;
use super::cert::{cert_signing_bytes, check_delegation, substitute_cert_signing_bytes};
use super::wire::{
    check_flag, code, signed_payload, tag, DecodeErr, DecodeResult, Dotted, Put, Reader,
    FINAL_STEP, HASH_SIZE, NO_LEADER, SIG_SIZE,
};
use super::{Encode, Wire};

/// `round u64 || step u32 || sender u64`: what every consensus message
/// carries after its type byte.
///
/// Packed to 4-byte alignment (20 bytes, not 24 with padding), so that a
/// message's one-byte field packs in beside it: a `BbaSignature` stays 192
/// bytes. (Unpacked it is 200, which puts its Python object in the next
/// allocator size class, and decoding 10 000 votes took ~20% longer.) Fields
/// are read by value (`head.round()`), never by reference.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, packed(4))]
struct Head {
    round: u64,
    step: u32,
    sender: u64,
}

/// The type byte and the head.
const HEAD_SIZE: usize = 1 + 8 + 4 + 8;

impl Head {
    /// Reads the head of message `msg` (e.g. `gc_block`; errors name `gc_block.round`).
    #[inline]
    fn parse(r: &mut Reader<'_>, msg: &str) -> DecodeResult<Self> {
        Ok(Head {
            round: r.u64(Dotted(msg, "round"))?,
            step: r.u32(Dotted(msg, "step"))?,
            sender: r.u64(Dotted(msg, "sender"))?,
        })
    }

    /// The head from constructor arguments of message `msg`.
    fn from_args(
        msg: &str,
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(Head {
            round: args::u64_arg(round, Dotted(msg, "round"))?,
            step: args::u32_arg(step, Dotted(msg, "step"))?,
            sender: args::u64_arg(sender, Dotted(msg, "sender"))?,
        })
    }

    /// Writes the type byte `code` and the head.
    fn write<P: Put>(&self, out: &mut P, code: u8) {
        out.put_u8(code);
        out.put_u64(self.round());
        out.put_u32(self.step());
        out.put_u64(self.sender());
    }

    fn round(&self) -> u64 {
        self.round
    }

    fn step(&self) -> u32 {
        self.step
    }

    fn sender(&self) -> u64 {
        self.sender
    }
}

/// A value `v = (block_hash, leader)`: a proposed block and its producer, or the empty
/// value `(H(B_ε), NO_LEADER)` of the round.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value {
    pub block_hash: [u8; HASH_SIZE],
    pub leader: u64,
}

impl Value {
    pub const SIZE: usize = HASH_SIZE + 8;

    /// Whether this is an empty value (its leader is `NO_LEADER`).
    pub fn is_empty(&self) -> bool {
        self.leader == NO_LEADER
    }

    /// The rule of a vote for bit `b` (message or certificate `msg`): `b = 0` carries a
    /// block's value, `b = 1` the empty value.
    pub fn check_vote(&self, msg: &str, b: u8) -> Result<(), String> {
        match (b, self.is_empty()) {
            (0, true) => Err(format!(
                "{msg}.leader: b = 0 needs a block's value, not the empty value"
            )),
            (1, false) => Err(format!(
                "{msg}.leader: b = 1 needs the empty value (leader 2^64 - 1), got leader {}",
                self.leader
            )),
            _ => Ok(()),
        }
    }

    /// Reads the value of message `msg`.
    #[inline]
    pub fn parse(r: &mut Reader<'_>, msg: &str) -> DecodeResult<Self> {
        Ok(Value {
            block_hash: r.array(Dotted(msg, "block_hash"))?,
            leader: r.u64(Dotted(msg, "leader"))?,
        })
    }

    /// The value from constructor arguments of message `msg`.
    pub fn from_args(
        msg: &str,
        block_hash: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(Value {
            block_hash: args::fixed(block_hash, Dotted(msg, "block_hash"))?,
            leader: args::u64_arg(leader, Dotted(msg, "leader"))?,
        })
    }

    pub fn write<P: Put>(&self, out: &mut P) {
        out.put(&self.block_hash);
        out.put_u64(self.leader);
    }

    /// `(block_hash, leader)` for Python.
    pub fn to_py<'py>(self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        (PyBytes::new(py, &self.block_hash), self.leader)
    }
}

/// `tag || 0x00 || chain || (the encoding before the signature)`: what the sender of
/// `gc_signature`, `gc_proposal` and `bba_signature` signs.
fn sign_prefix<W: Wire>(tag: &[u8], chain: &[u8; HASH_SIZE], msg: &W) -> Vec<u8> {
    let mut out = signed_payload(tag, chain, msg.encoded_len());
    msg.write(&mut out);
    out.truncate(out.len().saturating_sub(SIG_SIZE));
    out
}

// ---------------------------------------------------------------- gc_block

/// `gc_block`, step 1: a producer's block `B[r]`.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
pub struct GcBlock {
    head: Head,
    block: Py<Block>,
    signature: [u8; SIG_SIZE],
}

impl PartialEq for GcBlock {
    fn eq(&self, other: &Self) -> bool {
        (self.head, self.signature) == (other.head, other.signature)
            && self.block.get() == other.block.get()
    }
}

impl Hash for GcBlock {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.head, self.signature).hash(state);
        self.block.get().hash(state);
    }
}

/// A decoded `gc_block` whose block has no Python object yet.
pub struct GcBlockParts {
    head: Head,
    block: Block,
    signature: [u8; SIG_SIZE],
}

fn check_proposed(block: &Block) -> Result<(), String> {
    if block.is_empty_block() {
        return Err("gc_block.block: the empty block is never proposed".to_owned());
    }
    Ok(())
}

impl GcBlockParts {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let head = Head::parse(r, "gc_block")?;
        let block = Block::parse(r).map_err(|e| e.within("gc_block"))?;
        check_proposed(&block)?;
        let signature = r.array("gc_block.signature")?;
        Ok(GcBlockParts {
            head,
            block,
            signature,
        })
    }

    pub fn into_message(self, py: Python<'_>) -> PyResult<GcBlock> {
        Ok(GcBlock {
            head: self.head,
            block: Py::new(py, self.block)?,
            signature: self.signature,
        })
    }
}

impl Encode for GcBlock {
    fn encoded_len(&self) -> usize {
        HEAD_SIZE + self.block.get().encoded_len() + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        self.head.write(out, Self::CODE);
        self.block.get().write(out);
        out.put(&self.signature);
    }
}

impl Wire for GcBlock {
    const CODE: u8 = code::GC_BLOCK;
}

message_methods! {
    GcBlock;
    fields(m) {
        round: m.head.round(),
        step: m.head.step(),
        sender: m.head.sender(),
        block: m.block,
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (round, step, sender, block, signature))]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        block: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let head = Head::from_args("gc_block", round, step, sender)?;
        let block = block
            .cast::<Block>()
            .map_err(|_| PyTypeError::new_err("gc_block.block: expected Block"))?;
        check_proposed(block.get()).map_err(PyValueError::new_err)?;
        let signature = args::fixed::<SIG_SIZE>(signature, "gc_block.signature")?;
        Ok(GcBlock {
            head,
            block: block.clone().unbind(),
            signature,
        })
    }

    /// `"echorand/msg" || 0x00 || chain || 0x01 || round || step || sender || block.hash`.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = signed_payload(tag::MSG, &args::chain(chain)?, HEAD_SIZE + HASH_SIZE);
        self.head.write(&mut out, Self::CODE);
        out.put(self.block.get().block_hash());
        Ok(PyBytes::new(py, &out))
    }
}

// ------------------------------------------------------------ gc_signature

/// `gc_signature`, step 1: the producer's seed signature `rand` and its block hash.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct GcSignature {
    head: Head,
    rand: [u8; SIG_SIZE],
    block_hash: [u8; HASH_SIZE],
    prev_hash: [u8; HASH_SIZE],
    signature: [u8; SIG_SIZE],
}

impl GcSignature {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(GcSignature {
            head: Head::parse(r, "gc_signature")?,
            rand: r.array("gc_signature.rand")?,
            block_hash: r.array("gc_signature.block_hash")?,
            prev_hash: r.array("gc_signature.prev_hash")?,
            signature: r.array("gc_signature.signature")?,
        })
    }
}

impl Encode for GcSignature {
    fn encoded_len(&self) -> usize {
        HEAD_SIZE + SIG_SIZE + 2 * HASH_SIZE + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        self.head.write(out, Self::CODE);
        out.put(&self.rand);
        out.put(&self.block_hash);
        out.put(&self.prev_hash);
        out.put(&self.signature);
    }
}

impl Wire for GcSignature {
    const CODE: u8 = code::GC_SIGNATURE;
}

message_methods! {
    GcSignature;
    fields(m) {
        round: m.head.round(),
        step: m.head.step(),
        sender: m.head.sender(),
        /// The seed signature `S` of the producer.
        rand: m.rand,
        block_hash: m.block_hash,
        prev_hash: m.prev_hash,
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (round, step, sender, rand, block_hash, prev_hash, signature))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        rand: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        prev_hash: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(GcSignature {
            head: Head::from_args("gc_signature", round, step, sender)?,
            rand: args::fixed(rand, "gc_signature.rand")?,
            block_hash: args::fixed(block_hash, "gc_signature.block_hash")?,
            prev_hash: args::fixed(prev_hash, "gc_signature.prev_hash")?,
            signature: args::fixed(signature, "gc_signature.signature")?,
        })
    }

    /// `"echorand/msg" || 0x00 || chain || (the encoding before the signature)`.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &sign_prefix(tag::MSG, &args::chain(chain)?, self)))
    }
}

// ------------------------------------------------------------- gc_proposal

/// `gc_proposal`, steps 2 and 3: a verifier's value `v = (block_hash, leader)`.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct GcProposal {
    head: Head,
    value: Value,
    signature: [u8; SIG_SIZE],
}

impl GcProposal {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(GcProposal {
            head: Head::parse(r, "gc_proposal")?,
            value: Value::parse(r, "gc_proposal")?,
            signature: r.array("gc_proposal.signature")?,
        })
    }
}

impl Encode for GcProposal {
    fn encoded_len(&self) -> usize {
        HEAD_SIZE + Value::SIZE + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        self.head.write(out, Self::CODE);
        self.value.write(out);
        out.put(&self.signature);
    }
}

impl Wire for GcProposal {
    const CODE: u8 = code::GC_PROPOSAL;
}

message_methods! {
    GcProposal;
    fields(m) {
        round: m.head.round(),
        step: m.head.step(),
        sender: m.head.sender(),
        block_hash: m.value.block_hash,
        leader: m.value.leader,
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (round, step, sender, block_hash, leader, signature))]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(GcProposal {
            head: Head::from_args("gc_proposal", round, step, sender)?,
            value: Value::from_args("gc_proposal", block_hash, leader)?,
            signature: args::fixed(signature, "gc_proposal.signature")?,
        })
    }

    /// The value `v = (block_hash, leader)`.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        self.value.to_py(py)
    }

    /// `"echorand/gc_proposal" || 0x00 || chain || (the encoding before the signature)`.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &sign_prefix(tag::GC_PROPOSAL, &args::chain(chain)?, self)))
    }
}

// ----------------------------------------------------------- bba_signature

/// `bba_signature`, steps 4 and later: a verifier's bit `b`, its value `v` (the empty value
/// exactly when `b = 1`), and its certificate signature `cert_sig` on `(round, step, b, v)`.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct BbaSignature {
    head: Head,
    b: u8,
    value: Value,
    cert_sig: [u8; SIG_SIZE],
    signature: [u8; SIG_SIZE],
}

impl BbaSignature {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let head = Head::parse(r, "bba_signature")?;
        let b = r.u8("bba_signature.b")?;
        check_flag("bba_signature.b", b).map_err(DecodeErr::new)?;
        let value = Value::parse(r, "bba_signature")?;
        value.check_vote("bba_signature", b)?;
        Ok(BbaSignature {
            head,
            b,
            value,
            cert_sig: r.array("bba_signature.cert_sig")?,
            signature: r.array("bba_signature.signature")?,
        })
    }
}

impl Encode for BbaSignature {
    fn encoded_len(&self) -> usize {
        HEAD_SIZE + 1 + Value::SIZE + 2 * SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        self.head.write(out, Self::CODE);
        out.put_u8(self.b);
        self.value.write(out);
        out.put(&self.cert_sig);
        out.put(&self.signature);
    }
}

impl Wire for BbaSignature {
    const CODE: u8 = code::BBA_SIGNATURE;
}

message_methods! {
    BbaSignature;
    fields(m) {
        round: m.head.round(),
        step: m.head.step(),
        sender: m.head.sender(),
        b: m.b,
        block_hash: m.value.block_hash,
        leader: m.value.leader,
        cert_sig: m.cert_sig,
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (round, step, sender, b, block_hash, leader, cert_sig, signature))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
        cert_sig: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let head = Head::from_args("bba_signature", round, step, sender)?;
        let b = args::u8_arg(b, "bba_signature.b")?;
        check_flag("bba_signature.b", b).map_err(PyValueError::new_err)?;
        let value = Value::from_args("bba_signature", block_hash, leader)?;
        value
            .check_vote("bba_signature", b)
            .map_err(PyValueError::new_err)?;
        Ok(BbaSignature {
            head,
            b,
            value,
            cert_sig: args::fixed(cert_sig, "bba_signature.cert_sig")?,
            signature: args::fixed(signature, "bba_signature.signature")?,
        })
    }

    /// The value `v = (block_hash, leader)`: the empty value when `b = 1`.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        self.value.to_py(py)
    }

    /// `"echorand/bba" || 0x00 || chain || (the encoding before the signature)`.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &sign_prefix(tag::BBA, &args::chain(chain)?, self)))
    }

    /// `"echorand/cert" || 0x00 || chain || u64be(round) || u32be(step) || u8(b) ||
    /// block_hash || u64be(leader)`: what `cert_sig` signs.
    fn cert_signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (head, chain) = (self.head, args::chain(chain)?);
        let payload = cert_signing_bytes(&chain, head.round(), head.step(), self.b, &self.value);
        Ok(PyBytes::new(py, &payload))
    }
}

// ------------------------------------------------------------ substitutes

/// `principal u64 || mode u8` after the head of a substitute, checked against
/// the sender: mode 1 or 2, principal distinct from the sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, packed(4))]
struct Seat {
    principal: u64,
    mode: u8,
}

impl Seat {
    const SIZE: usize = 8 + 1;

    fn parse(r: &mut Reader<'_>, msg: &str, head: &Head) -> DecodeResult<Self> {
        let seat = Seat {
            principal: r.u64(Dotted(msg, "principal"))?,
            mode: r.u8(Dotted(msg, "mode"))?,
        };
        check_delegation(msg, head.sender(), seat.principal(), seat.mode())?;
        Ok(seat)
    }

    fn from_args(
        msg: &str,
        head: &Head,
        principal: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let seat = Seat {
            principal: args::u64_arg(principal, Dotted(msg, "principal"))?,
            mode: args::u8_arg(mode, Dotted(msg, "mode"))?,
        };
        check_delegation(msg, head.sender(), seat.principal(), seat.mode())
            .map_err(PyValueError::new_err)?;
        Ok(seat)
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u64(self.principal());
        out.put_u8(self.mode());
    }

    fn principal(&self) -> u64 {
        self.principal
    }

    fn mode(&self) -> u8 {
        self.mode
    }
}

/// `gc_substitute`, steps 2 and 3: a value `v` the sender proposes in `principal`'s seats.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct GcSubstitute {
    head: Head,
    seat: Seat,
    value: Value,
    signature: [u8; SIG_SIZE],
}

impl GcSubstitute {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let head = Head::parse(r, "gc_substitute")?;
        Ok(GcSubstitute {
            seat: Seat::parse(r, "gc_substitute", &head)?,
            head,
            value: Value::parse(r, "gc_substitute")?,
            signature: r.array("gc_substitute.signature")?,
        })
    }
}

impl Encode for GcSubstitute {
    fn encoded_len(&self) -> usize {
        HEAD_SIZE + Seat::SIZE + Value::SIZE + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        self.head.write(out, Self::CODE);
        self.seat.write(out);
        self.value.write(out);
        out.put(&self.signature);
    }
}

impl Wire for GcSubstitute {
    const CODE: u8 = code::GC_SUBSTITUTE;
}

message_methods! {
    GcSubstitute;
    fields(m) {
        round: m.head.round(),
        step: m.head.step(),
        sender: m.head.sender(),
        /// The account in whose seats the sender speaks.
        principal: m.seat.principal(),
        /// 1: the principal's explicit delegate; 2: its fallback.
        mode: m.seat.mode(),
        block_hash: m.value.block_hash,
        leader: m.value.leader,
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (round, step, sender, principal, mode, block_hash, leader, signature))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        principal: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let head = Head::from_args("gc_substitute", round, step, sender)?;
        Ok(GcSubstitute {
            seat: Seat::from_args("gc_substitute", &head, principal, mode)?,
            head,
            value: Value::from_args("gc_substitute", block_hash, leader)?,
            signature: args::fixed(signature, "gc_substitute.signature")?,
        })
    }

    /// The value `v = (block_hash, leader)`.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        self.value.to_py(py)
    }

    /// `"echorand/gc_proposal" || 0x00 || chain || (the encoding before the signature)`.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &sign_prefix(tag::GC_PROPOSAL, &args::chain(chain)?, self)))
    }
}

/// `bba_substitute`, steps 4 and later: a BBA vote `(b, v)` the sender casts in
/// `principal`'s seats, with its `cert_sig` over the principal and the mode.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct BbaSubstitute {
    head: Head,
    seat: Seat,
    b: u8,
    value: Value,
    cert_sig: [u8; SIG_SIZE],
    signature: [u8; SIG_SIZE],
}

impl BbaSubstitute {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let head = Head::parse(r, "bba_substitute")?;
        let seat = Seat::parse(r, "bba_substitute", &head)?;
        let b = r.u8("bba_substitute.b")?;
        check_flag("bba_substitute.b", b).map_err(DecodeErr::new)?;
        let value = Value::parse(r, "bba_substitute")?;
        value.check_vote("bba_substitute", b)?;
        Ok(BbaSubstitute {
            head,
            seat,
            b,
            value,
            cert_sig: r.array("bba_substitute.cert_sig")?,
            signature: r.array("bba_substitute.signature")?,
        })
    }
}

impl Encode for BbaSubstitute {
    fn encoded_len(&self) -> usize {
        HEAD_SIZE + Seat::SIZE + 1 + Value::SIZE + 2 * SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        self.head.write(out, Self::CODE);
        self.seat.write(out);
        out.put_u8(self.b);
        self.value.write(out);
        out.put(&self.cert_sig);
        out.put(&self.signature);
    }
}

impl Wire for BbaSubstitute {
    const CODE: u8 = code::BBA_SUBSTITUTE;
}

message_methods! {
    BbaSubstitute;
    fields(m) {
        round: m.head.round(),
        step: m.head.step(),
        sender: m.head.sender(),
        /// The account in whose seats the sender votes.
        principal: m.seat.principal(),
        /// 1: the principal's explicit delegate; 2: its fallback.
        mode: m.seat.mode(),
        b: m.b,
        block_hash: m.value.block_hash,
        leader: m.value.leader,
        cert_sig: m.cert_sig,
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (round, step, sender, principal, mode, b, block_hash, leader, cert_sig, signature))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        principal: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
        cert_sig: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let head = Head::from_args("bba_substitute", round, step, sender)?;
        let seat = Seat::from_args("bba_substitute", &head, principal, mode)?;
        let b = args::u8_arg(b, "bba_substitute.b")?;
        check_flag("bba_substitute.b", b).map_err(PyValueError::new_err)?;
        let value = Value::from_args("bba_substitute", block_hash, leader)?;
        value
            .check_vote("bba_substitute", b)
            .map_err(PyValueError::new_err)?;
        Ok(BbaSubstitute {
            head,
            seat,
            b,
            value,
            cert_sig: args::fixed(cert_sig, "bba_substitute.cert_sig")?,
            signature: args::fixed(signature, "bba_substitute.signature")?,
        })
    }

    /// The value `v = (block_hash, leader)`: the empty value when `b = 1`.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        self.value.to_py(py)
    }

    /// `"echorand/bba" || 0x00 || chain || (the encoding before the signature)`.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &sign_prefix(tag::BBA, &args::chain(chain)?, self)))
    }

    /// `"echorand/cert" || 0x00 || chain || u64be(round) || u32be(step) || u8(b) ||
    /// block_hash || u64be(leader) || u64be(principal) || u8(mode)`: what `cert_sig` signs.
    fn cert_signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (head, seat) = (self.head, self.seat);
        let payload = substitute_cert_signing_bytes(
            &args::chain(chain)?,
            head.round(),
            head.step(),
            self.b,
            &self.value,
            seat.principal(),
            seat.mode(),
        );
        Ok(PyBytes::new(py, &payload))
    }
}

// -------------------------------------------------------------- final_vote

/// `final_vote`, the reserved step `2^32 - 1` (PROTOCOL §6): a verifier that decided from the
/// first deciding step's votes (step 4 for `b = 0`, step 5 for `b = 1`) before it voted in any
/// later step says so, for the block it decided (`block_hash`: H(B_ε) for the empty block).
/// Its one signature is over `"echorand/final" || 0x00 || chain || u64be(round) || block_hash`.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct FinalVote {
    head: Head,
    block_hash: [u8; HASH_SIZE],
    signature: [u8; SIG_SIZE],
}

fn check_final_step(step: u32) -> Result<(), String> {
    if step != FINAL_STEP {
        return Err(format!(
            "final_vote.step: must be the reserved step 2^32 - 1, got {step}"
        ));
    }
    Ok(())
}

impl FinalVote {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let head = Head::parse(r, "final_vote")?;
        check_final_step(head.step())?;
        Ok(FinalVote {
            head,
            block_hash: r.array("final_vote.block_hash")?,
            signature: r.array("final_vote.signature")?,
        })
    }

    /// `"echorand/final" || 0x00 || chain || u64be(round) || block_hash`.
    fn payload(&self, chain: &[u8; HASH_SIZE]) -> Vec<u8> {
        let mut out = signed_payload(tag::FINAL, chain, 8 + HASH_SIZE);
        out.put_u64(self.head.round());
        out.put(&self.block_hash);
        out
    }
}

impl Encode for FinalVote {
    fn encoded_len(&self) -> usize {
        HEAD_SIZE + HASH_SIZE + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        self.head.write(out, Self::CODE);
        out.put(&self.block_hash);
        out.put(&self.signature);
    }
}

impl Wire for FinalVote {
    const CODE: u8 = code::FINAL_VOTE;
}

message_methods! {
    FinalVote;
    fields(m) {
        round: m.head.round(),
        step: m.head.step(),
        sender: m.head.sender(),
        block_hash: m.block_hash,
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (round, step, sender, block_hash, signature))]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let head = Head::from_args("final_vote", round, step, sender)?;
        check_final_step(head.step()).map_err(PyValueError::new_err)?;
        Ok(FinalVote {
            head,
            block_hash: args::fixed(block_hash, "final_vote.block_hash")?,
            signature: args::fixed(signature, "final_vote.signature")?,
        })
    }

    /// `"echorand/final" || 0x00 || chain || u64be(round) || block_hash`: what the
    /// signature is over.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.payload(&args::chain(chain)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_no_padding_for_their_head() {
        assert_eq!(std::mem::size_of::<Head>(), 20);
        assert_eq!(std::mem::size_of::<BbaSignature>(), 192);
        assert_eq!(std::mem::size_of::<GcProposal>(), 128);
    }
}
