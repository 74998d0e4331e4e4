//! The consensus messages of a round. Each carries `round u64 || step u32 ||
//! sender u64` and ends with the sender's signature over
//! `tag || 0x00 || (everything before the signature, type byte included)`;
//! in `gc_block` the block inside that signed body is replaced by its hash.
//!
//! ```text
//! gc_block       0x01 round step sender || block                                     tag echorand/msg
//! gc_signature   0x02 round step sender || rand 64 || block_hash 32 || prev_hash 32  tag echorand/msg
//! gc_proposal    0x03 round step sender || v                                         tag echorand/gc_proposal
//! bba_signature  0x04 round step sender || b u8 || v || cert_sig 64                  tag echorand/bba
//! ```

use std::hash::{Hash, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::args::{self, hex_repr};
use super::block::Block;
use super::cert::cert_signing_bytes;
use super::wire::{
    check_flag, check_value, code, signed_payload, tag, DecodeErr, DecodeResult, Dotted, Put,
    Reader, HASH_SIZE, SIG_SIZE, ZERO_HASH,
};
use super::Wire;

const HEAD_SIZE: usize = 1 + 8 + 4 + 8;

fn put_head<P: Put>(out: &mut P, code: u8, round: u64, step: u32, sender: u64) {
    out.put_u8(code);
    out.put_u64(round);
    out.put_u32(step);
    out.put_u64(sender);
}

/// `tag || 0x00 || (the encoding before the signature)`: what the sender of
/// `gc_signature`, `gc_proposal` and `bba_signature` signs.
fn sign_prefix<W: Wire>(tag: &[u8], msg: &W) -> Vec<u8> {
    let mut out = signed_payload(tag, msg.encoded_len());
    msg.write(&mut out);
    out.truncate(out.len().saturating_sub(SIG_SIZE));
    out
}

fn head_args(
    name: &str,
    round: &Bound<'_, PyAny>,
    step: &Bound<'_, PyAny>,
    sender: &Bound<'_, PyAny>,
) -> PyResult<(u64, u32, u64)> {
    Ok((
        args::u64_arg(round, Dotted(name, "round"))?,
        args::u32_arg(step, Dotted(name, "step"))?,
        args::u64_arg(sender, Dotted(name, "sender"))?,
    ))
}

// ---------------------------------------------------------------- gc_block

/// `gc_block`, step 1: a producer's block `B[r]`.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
pub struct GcBlock {
    round: u64,
    step: u32,
    sender: u64,
    block: Py<Block>,
    signature: [u8; SIG_SIZE],
}

impl PartialEq for GcBlock {
    fn eq(&self, other: &Self) -> bool {
        (self.round, self.step, self.sender, self.signature)
            == (other.round, other.step, other.sender, other.signature)
            && self.block.get() == other.block.get()
    }
}

impl Hash for GcBlock {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.round, self.step, self.sender, self.signature).hash(state);
        self.block.get().hash(state);
    }
}

/// A decoded `gc_block` whose block has no Python object yet.
pub struct GcBlockParts {
    round: u64,
    step: u32,
    sender: u64,
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
        let round = r.u64("gc_block.round")?;
        let step = r.u32("gc_block.step")?;
        let sender = r.u64("gc_block.sender")?;
        let block = Block::parse(r).map_err(|e| e.within("gc_block"))?;
        check_proposed(&block)?;
        let signature = r.array("gc_block.signature")?;
        Ok(GcBlockParts {
            round,
            step,
            sender,
            block,
            signature,
        })
    }

    pub fn into_message(self, py: Python<'_>) -> PyResult<GcBlock> {
        let GcBlockParts {
            round,
            step,
            sender,
            block,
            signature,
        } = self;
        Ok(GcBlock {
            round,
            step,
            sender,
            block: Py::new(py, block)?,
            signature,
        })
    }
}

impl Wire for GcBlock {
    const CODE: u8 = code::GC_BLOCK;

    fn encoded_len(&self) -> usize {
        HEAD_SIZE + self.block.get().encoded_len() + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        put_head(out, Self::CODE, self.round, self.step, self.sender);
        self.block.get().write(out);
        out.put(&self.signature);
    }
}

message_methods! {
    GcBlock;
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        ("round", "step", "sender", "block", "signature")
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
        let (round, step, sender) = head_args("gc_block", round, step, sender)?;
        let block = block.cast::<Block>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err("gc_block.block: expected Block")
        })?;
        check_proposed(block.get()).map_err(PyValueError::new_err)?;
        let signature = args::fixed::<SIG_SIZE>(signature, "gc_block.signature")?;
        Ok(GcBlock {
            round,
            step,
            sender,
            block: block.clone().unbind(),
            signature,
        })
    }

    #[getter]
    fn round(&self) -> u64 {
        self.round
    }

    #[getter]
    fn step(&self) -> u32 {
        self.step
    }

    #[getter]
    fn sender(&self) -> u64 {
        self.sender
    }

    #[getter]
    fn block(&self, py: Python<'_>) -> Py<Block> {
        self.block.clone_ref(py)
    }

    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.signature)
    }

    /// `"echorand/msg" || 0x00 || 0x01 || round || step || sender || block.hash`.
    fn signing_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = signed_payload(tag::MSG, HEAD_SIZE + HASH_SIZE);
        put_head(&mut out, code::GC_BLOCK, self.round, self.step, self.sender);
        out.put(self.block.get().block_hash());
        PyBytes::new(py, &out)
    }

    fn __repr__(&self) -> String {
        format!(
            "GcBlock(round={}, step={}, sender={}, block={}, signature={})",
            self.round,
            self.step,
            self.sender,
            self.block.get().repr(),
            hex_repr(&self.signature)
        )
    }
}

// ------------------------------------------------------------ gc_signature

/// `gc_signature`, step 1: the producer's seed signature `rand` and its block hash.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct GcSignature {
    round: u64,
    step: u32,
    sender: u64,
    rand: [u8; SIG_SIZE],
    block_hash: [u8; HASH_SIZE],
    prev_hash: [u8; HASH_SIZE],
    signature: [u8; SIG_SIZE],
}

impl GcSignature {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(GcSignature {
            round: r.u64("gc_signature.round")?,
            step: r.u32("gc_signature.step")?,
            sender: r.u64("gc_signature.sender")?,
            rand: r.array("gc_signature.rand")?,
            block_hash: r.array("gc_signature.block_hash")?,
            prev_hash: r.array("gc_signature.prev_hash")?,
            signature: r.array("gc_signature.signature")?,
        })
    }
}

impl Wire for GcSignature {
    const CODE: u8 = code::GC_SIGNATURE;

    fn encoded_len(&self) -> usize {
        HEAD_SIZE + SIG_SIZE + 2 * HASH_SIZE + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        put_head(out, Self::CODE, self.round, self.step, self.sender);
        out.put(&self.rand);
        out.put(&self.block_hash);
        out.put(&self.prev_hash);
        out.put(&self.signature);
    }
}

message_methods! {
    GcSignature;
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        (
            "round",
            "step",
            "sender",
            "rand",
            "block_hash",
            "prev_hash",
            "signature",
        )
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
        let (round, step, sender) = head_args("gc_signature", round, step, sender)?;
        Ok(GcSignature {
            round,
            step,
            sender,
            rand: args::fixed(rand, "gc_signature.rand")?,
            block_hash: args::fixed(block_hash, "gc_signature.block_hash")?,
            prev_hash: args::fixed(prev_hash, "gc_signature.prev_hash")?,
            signature: args::fixed(signature, "gc_signature.signature")?,
        })
    }

    #[getter]
    fn round(&self) -> u64 {
        self.round
    }

    #[getter]
    fn step(&self) -> u32 {
        self.step
    }

    #[getter]
    fn sender(&self) -> u64 {
        self.sender
    }

    /// The seed signature `S` of the producer.
    #[getter]
    fn rand<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.rand)
    }

    #[getter]
    fn block_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.block_hash)
    }

    #[getter]
    fn prev_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.prev_hash)
    }

    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.signature)
    }

    /// `"echorand/msg" || 0x00 || (the encoding before the signature)`.
    fn signing_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &sign_prefix(tag::MSG, self))
    }

    fn __repr__(&self) -> String {
        format!(
            "GcSignature(round={}, step={}, sender={}, rand={}, block_hash={}, prev_hash={}, signature={})",
            self.round,
            self.step,
            self.sender,
            hex_repr(&self.rand),
            hex_repr(&self.block_hash),
            hex_repr(&self.prev_hash),
            hex_repr(&self.signature)
        )
    }
}

// ------------------------------------------------------------- gc_proposal

/// `gc_proposal`, steps 2 and 3: a verifier's value `v = (block_hash, leader)`.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct GcProposal {
    round: u64,
    step: u32,
    sender: u64,
    block_hash: [u8; HASH_SIZE],
    leader: u64,
    signature: [u8; SIG_SIZE],
}

impl GcProposal {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let round = r.u64("gc_proposal.round")?;
        let step = r.u32("gc_proposal.step")?;
        let sender = r.u64("gc_proposal.sender")?;
        let block_hash = r.array("gc_proposal.block_hash")?;
        let leader = r.u64("gc_proposal.leader")?;
        check_value("gc_proposal", &block_hash, leader)?;
        let signature = r.array("gc_proposal.signature")?;
        Ok(GcProposal {
            round,
            step,
            sender,
            block_hash,
            leader,
            signature,
        })
    }
}

impl Wire for GcProposal {
    const CODE: u8 = code::GC_PROPOSAL;

    fn encoded_len(&self) -> usize {
        HEAD_SIZE + HASH_SIZE + 8 + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        put_head(out, Self::CODE, self.round, self.step, self.sender);
        out.put(&self.block_hash);
        out.put_u64(self.leader);
        out.put(&self.signature);
    }
}

message_methods! {
    GcProposal;
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        (
            "round",
            "step",
            "sender",
            "block_hash",
            "leader",
            "signature",
        )
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
        let (round, step, sender) = head_args("gc_proposal", round, step, sender)?;
        let block_hash = args::fixed(block_hash, "gc_proposal.block_hash")?;
        let leader = args::u64_arg(leader, "gc_proposal.leader")?;
        check_value("gc_proposal", &block_hash, leader).map_err(PyValueError::new_err)?;
        let signature = args::fixed(signature, "gc_proposal.signature")?;
        Ok(GcProposal {
            round,
            step,
            sender,
            block_hash,
            leader,
            signature,
        })
    }

    #[getter]
    fn round(&self) -> u64 {
        self.round
    }

    #[getter]
    fn step(&self) -> u32 {
        self.step
    }

    #[getter]
    fn sender(&self) -> u64 {
        self.sender
    }

    #[getter]
    fn block_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.block_hash)
    }

    #[getter]
    fn leader(&self) -> u64 {
        self.leader
    }

    /// The value `v = (block_hash, leader)`.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        (PyBytes::new(py, &self.block_hash), self.leader)
    }

    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.signature)
    }

    /// `"echorand/gc_proposal" || 0x00 || (the encoding before the signature)`.
    fn signing_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &sign_prefix(tag::GC_PROPOSAL, self))
    }

    fn __repr__(&self) -> String {
        format!(
            "GcProposal(round={}, step={}, sender={}, block_hash={}, leader={}, signature={})",
            self.round,
            self.step,
            self.sender,
            hex_repr(&self.block_hash),
            self.leader,
            hex_repr(&self.signature)
        )
    }
}

// ----------------------------------------------------------- bba_signature

/// `bba_signature`, steps 4..mu: a verifier's bit `b`, its value `v`, and its
/// certificate signature `cert_sig` on `(round, b, v)` (the empty value when `b = 1`).
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct BbaSignature {
    round: u64,
    step: u32,
    sender: u64,
    b: u8,
    block_hash: [u8; HASH_SIZE],
    leader: u64,
    cert_sig: [u8; SIG_SIZE],
    signature: [u8; SIG_SIZE],
}

impl BbaSignature {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let round = r.u64("bba_signature.round")?;
        let step = r.u32("bba_signature.step")?;
        let sender = r.u64("bba_signature.sender")?;
        let b = r.u8("bba_signature.b")?;
        check_flag("bba_signature.b", b).map_err(DecodeErr::new)?;
        let block_hash = r.array("bba_signature.block_hash")?;
        let leader = r.u64("bba_signature.leader")?;
        check_value("bba_signature", &block_hash, leader)?;
        let cert_sig = r.array("bba_signature.cert_sig")?;
        let signature = r.array("bba_signature.signature")?;
        Ok(BbaSignature {
            round,
            step,
            sender,
            b,
            block_hash,
            leader,
            cert_sig,
            signature,
        })
    }

    /// The `echorand/cert` payload `cert_sig` is over.
    fn cert_payload(&self) -> Vec<u8> {
        if self.b == 1 {
            cert_signing_bytes(self.round, 1, &ZERO_HASH, 0)
        } else {
            cert_signing_bytes(self.round, self.b, &self.block_hash, self.leader)
        }
    }
}

impl Wire for BbaSignature {
    const CODE: u8 = code::BBA_SIGNATURE;

    fn encoded_len(&self) -> usize {
        HEAD_SIZE + 1 + HASH_SIZE + 8 + 2 * SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        put_head(out, Self::CODE, self.round, self.step, self.sender);
        out.put_u8(self.b);
        out.put(&self.block_hash);
        out.put_u64(self.leader);
        out.put(&self.cert_sig);
        out.put(&self.signature);
    }
}

message_methods! {
    BbaSignature;
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        (
            "round",
            "step",
            "sender",
            "b",
            "block_hash",
            "leader",
            "cert_sig",
            "signature",
        )
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
        let (round, step, sender) = head_args("bba_signature", round, step, sender)?;
        let b = args::u8_arg(b, "bba_signature.b")?;
        check_flag("bba_signature.b", b).map_err(PyValueError::new_err)?;
        let block_hash = args::fixed(block_hash, "bba_signature.block_hash")?;
        let leader = args::u64_arg(leader, "bba_signature.leader")?;
        check_value("bba_signature", &block_hash, leader).map_err(PyValueError::new_err)?;
        let cert_sig = args::fixed(cert_sig, "bba_signature.cert_sig")?;
        let signature = args::fixed(signature, "bba_signature.signature")?;
        Ok(BbaSignature {
            round,
            step,
            sender,
            b,
            block_hash,
            leader,
            cert_sig,
            signature,
        })
    }

    #[getter]
    fn round(&self) -> u64 {
        self.round
    }

    #[getter]
    fn step(&self) -> u32 {
        self.step
    }

    #[getter]
    fn sender(&self) -> u64 {
        self.sender
    }

    #[getter]
    fn b(&self) -> u8 {
        self.b
    }

    #[getter]
    fn block_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.block_hash)
    }

    #[getter]
    fn leader(&self) -> u64 {
        self.leader
    }

    /// The value `v = (block_hash, leader)` (kept even when `b = 1`).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        (PyBytes::new(py, &self.block_hash), self.leader)
    }

    #[getter]
    fn cert_sig<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.cert_sig)
    }

    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.signature)
    }

    /// `"echorand/bba" || 0x00 || (the encoding before the signature)`.
    fn signing_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &sign_prefix(tag::BBA, self))
    }

    /// `"echorand/cert" || 0x00 || u64be(round) || u8(b) || block_hash || u64be(leader)`,
    /// with the empty value when `b = 1`: what `cert_sig` signs.
    fn cert_signing_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.cert_payload())
    }

    fn __repr__(&self) -> String {
        format!(
            "BbaSignature(round={}, step={}, sender={}, b={}, block_hash={}, leader={}, cert_sig={}, signature={})",
            self.round,
            self.step,
            self.sender,
            self.b,
            hex_repr(&self.block_hash),
            self.leader,
            hex_repr(&self.cert_sig),
            hex_repr(&self.signature)
        )
    }
}
