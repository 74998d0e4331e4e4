//! Blocks: a producer's proposed block, or the empty block of a round.
//!
//! ```text
//! header_body = 0x00 || round u64 || prev_hash 32 || producer u64 || seed_sig 64 || payload_hash 32
//!             | 0x02 || round u64 || prev_hash 32 || producer u64 || seed_proof 80 || payload_hash 32
//! payload     = tx_count u32 || transaction * tx_count || has_prev_cert u8 || certificate?
//! block       = header_body || signature 64 || payload
//! empty_block = 0x01 || round u64 || prev_hash 32
//! ```
//!
//! The seed credential of a proposed block is the leader's Ed25519 signature
//! of Q[r-1] (kind 0x00, a genesis with `seed_mode = "signature"`) or its
//! RFC 9381 VRF proof of the same input (kind 0x02, `seed_mode = "vrf"`).
//! The kind byte says which, so the codec needs no genesis and each block
//! still has one encoding; that the kind is the one its genesis uses is a
//! validation rule (docs/protocol.md §4).
//!
//! `certificate` (present when `has_prev_cert` is 1) is CERT[r-1], which a
//! proposed block carries when block r-1 was a proposed block too: its
//! signers are the verifiers the ledger rewards (docs/protocol.md §16). The
//! codec only decodes it; which blocks must carry one is the ledger's rule.

use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyType};
use sha2::{Digest, Sha256};

use super::args;
use super::cert::Certificate;
use super::pyvalue::PyField;
use super::tx::TxList;
use super::wire::{
    check_flag, sha256, signed_payload, tag, DecodeErr, DecodeResult, Frame, Put, Reader,
    HASH_SIZE, MAX_BLOCK_TXS, SIG_SIZE, VRF_PROOF_SIZE,
};
use super::{DecodeError, Encode};

const PROPOSED: u8 = 0x00;
const EMPTY: u8 = 0x01;
const PROPOSED_VRF: u8 = 0x02;
/// The header of a proposed block without its seed credential.
const PROPOSED_FIXED_SIZE: usize = 1 + 8 + HASH_SIZE + 8 + HASH_SIZE;
const EMPTY_SIZE: usize = 1 + 8 + HASH_SIZE;

/// The leader's seed credential over Q[r-1]: what Q[r] is computed from (PROTOCOL §4).
#[derive(PartialEq)]
enum Seed {
    /// An Ed25519 signature (block kind 0x00).
    Signature([u8; SIG_SIZE]),
    /// An RFC 9381 ECVRF proof `Gamma || c || s` (block kind 0x02).
    Vrf([u8; VRF_PROOF_SIZE]),
}

impl Seed {
    fn bytes(&self) -> &[u8] {
        match self {
            Seed::Signature(sig) => sig,
            Seed::Vrf(proof) => proof,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Seed::Signature(_) => PROPOSED,
            Seed::Vrf(_) => PROPOSED_VRF,
        }
    }

    /// A credential from Python: 64 bytes are a signature, 80 a VRF proof.
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let data = args::bytes_like(obj, "block.seed_sig")?;
        if let Ok(sig) = <[u8; SIG_SIZE]>::try_from(data.as_ref()) {
            return Ok(Seed::Signature(sig));
        }
        match <[u8; VRF_PROOF_SIZE]>::try_from(data.as_ref()) {
            Ok(proof) => Ok(Seed::Vrf(proof)),
            Err(_) => Err(PyValueError::new_err(format!(
                "block.seed_sig: must be {SIG_SIZE} bytes (a signature) or {VRF_PROOF_SIZE} bytes \
                 (a VRF proof), got {}",
                data.len()
            ))),
        }
    }
}

/// What only a proposed block has: its producer, seed and signed payload hash.
#[derive(PartialEq)]
struct Proposed {
    producer: u64,
    seed: Seed,
    payload_hash: [u8; HASH_SIZE],
    signature: [u8; SIG_SIZE],
}

impl Proposed {
    fn header_size(&self) -> usize {
        PROPOSED_FIXED_SIZE + self.seed.bytes().len()
    }
}

/// CERT[r-1] in a proposed block's payload; its Python object is made on first access.
struct Carried {
    cert: Certificate,
    object: PyOnceLock<Py<Certificate>>,
}

impl Carried {
    fn new(cert: Certificate) -> Self {
        Carried {
            cert,
            object: PyOnceLock::new(),
        }
    }
}

impl PartialEq for Carried {
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert
    }
}

/// A `Certificate` object (the same one at every access).
impl PyField for Carried {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let object = self
            .object
            .get_or_try_init(py, || Py::new(py, self.cert.clone()))?;
        Ok(object.bind(py).clone().into_any())
    }

    fn repr(&self, out: &mut String) {
        out.push_str(&self.cert.__repr__());
    }
}

/// A block `B[r]`: proposed by a producer (with its seed signature,
/// transactions and, after a proposed block, CERT[r-1]), or the empty block of round `r`.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq)]
pub struct Block {
    round: u64,
    prev_hash: [u8; HASH_SIZE],
    proposed: Option<Box<Proposed>>,
    /// No transactions in the empty block.
    txs: TxList,
    /// CERT[r-1]; never in the empty block.
    prev_cert: Option<Carried>,
    hash: [u8; HASH_SIZE],
}

impl Hash for Block {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The header hash commits to everything but the producer's signature.
        self.hash.hash(state);
        if let Some(p) = &self.proposed {
            p.signature.hash(state);
        }
    }
}

fn payload_hash(txs: &TxList, prev_cert: Option<&Certificate>) -> [u8; HASH_SIZE] {
    let mut hasher = Sha256::new();
    hasher.update((txs.len() as u32).to_be_bytes());
    hasher.update(txs.raw());
    match prev_cert {
        None => hasher.update([0]),
        Some(cert) => {
            let mut tail = Vec::with_capacity(1 + cert.encoded_len());
            tail.put_u8(1);
            cert.write(&mut tail);
            hasher.update(&tail);
        }
    }
    hasher.finalize().into()
}

impl Block {
    /// A block made here (not decoded): its hash is computed.
    fn new(
        round: u64,
        prev_hash: [u8; HASH_SIZE],
        proposed: Option<Proposed>,
        txs: TxList,
        prev_cert: Option<Certificate>,
    ) -> Self {
        let mut block = Block {
            round,
            prev_hash,
            proposed: proposed.map(Box::new),
            txs,
            prev_cert: prev_cert.map(Carried::new),
            hash: [0; HASH_SIZE],
        };
        block.hash = sha256(&block.header());
        block
    }

    /// `header_body` of a proposed block; the whole encoding of the empty block.
    fn header(&self) -> Vec<u8> {
        let size = self.proposed().map_or(EMPTY_SIZE, Proposed::header_size);
        let mut out = Vec::with_capacity(size);
        out.put_u8(self.proposed().map_or(EMPTY, |p| p.seed.kind()));
        out.put_u64(self.round);
        out.put(&self.prev_hash);
        if let Some(p) = &self.proposed {
            out.put_u64(p.producer);
            out.put(p.seed.bytes());
            out.put(&p.payload_hash);
        }
        out
    }

    pub fn block_hash(&self) -> &[u8; HASH_SIZE] {
        &self.hash
    }

    pub fn is_empty_block(&self) -> bool {
        self.proposed.is_none()
    }

    pub fn encoded_len(&self) -> usize {
        match &self.proposed {
            None => EMPTY_SIZE,
            Some(p) => {
                let cert = self.carried().map_or(0, Encode::encoded_len);
                p.header_size() + SIG_SIZE + 4 + self.txs.raw().len() + 1 + cert
            }
        }
    }

    pub fn write<P: Put>(&self, out: &mut P) {
        out.put(&self.header());
        if let Some(p) = &self.proposed {
            out.put(&p.signature);
            out.put_u32(self.txs.len() as u32);
            self.txs.write(out);
            match self.carried() {
                None => out.put_u8(0),
                Some(cert) => {
                    out.put_u8(1);
                    cert.write(out);
                }
            }
        }
    }

    /// The producer, None for the empty block.
    pub fn producer_id(&self) -> Option<u64> {
        self.proposed().map(|p| p.producer)
    }

    /// The encoded transactions, back to back (none in the empty block).
    pub fn tx_bytes(&self) -> &[u8] {
        self.txs.raw()
    }

    /// CERT[r-1], if the block carries it.
    pub fn carried(&self) -> Option<&Certificate> {
        self.prev_cert.as_ref().map(|c| &c.cert)
    }

    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let start = r.pos();
        let kind = r.u8("block.kind")?;
        if !matches!(kind, PROPOSED | EMPTY | PROPOSED_VRF) {
            return Err(DecodeErr::new(format!(
                "block.kind: non-canonical value {kind} (0 = proposed, 1 = empty, \
                 2 = proposed with a VRF seed)"
            )));
        }
        let round = r.u64("block.round")?;
        let prev_hash = r.array("block.prev_hash")?;
        if kind == EMPTY {
            let hash = sha256(r.since(start));
            return Ok(Block {
                round,
                prev_hash,
                proposed: None,
                txs: TxList::empty(),
                prev_cert: None,
                hash,
            });
        }
        let producer = r.u64("block.producer")?;
        let seed = if kind == PROPOSED_VRF {
            Seed::Vrf(r.array("block.seed_sig")?)
        } else {
            Seed::Signature(r.array("block.seed_sig")?)
        };
        let payload_hash = r.array("block.payload_hash")?;
        let hash = sha256(r.since(start));
        let signature = r.array("block.signature")?;
        let payload_start = r.pos();
        let count = r.count("block.tx_count", MAX_BLOCK_TXS)?;
        let txs = TxList::parse(r, count, "block.transactions")?;
        let has_cert = r.u8("block.has_prev_cert")?;
        check_flag("block.has_prev_cert", has_cert)?;
        let prev_cert = if has_cert == 1 {
            let cert = Certificate::parse(r).map_err(|e| e.within("block.prev_cert"))?;
            Some(Carried::new(cert))
        } else {
            None
        };
        if sha256(r.since(payload_start)) != payload_hash {
            return Err(DecodeErr::new("block.payload_hash: does not match payload"));
        }
        let proposed = Proposed {
            producer,
            seed,
            payload_hash,
            signature,
        };
        Ok(Block {
            round,
            prev_hash,
            proposed: Some(Box::new(proposed)),
            txs,
            prev_cert,
            hash,
        })
    }

    /// Decodes a whole frame holding one block; its transactions stay in the frame.
    pub fn decode(frame: &Frame) -> DecodeResult<Self> {
        let mut r = Reader::framed(frame);
        let block = Self::parse(&mut r)?;
        r.finish()?;
        Ok(block)
    }

    fn proposed(&self) -> Option<&Proposed> {
        self.proposed.as_deref()
    }
}

/// The same as the inherent `encoded_len` and `write` (which the ledger calls).
impl Encode for Block {
    fn encoded_len(&self) -> usize {
        Block::encoded_len(self)
    }

    fn write<P: Put>(&self, out: &mut P) {
        Block::write(self, out);
    }
}

/// A `Block` (inside a message), shown by its own repr.
impl PyField for Py<Block> {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.bind(py).clone().into_any())
    }

    fn repr(&self, out: &mut String) {
        out.push_str(&self.get().__repr__());
    }
}

fn missing(field: &str) -> PyErr {
    PyValueError::new_err(format!(
        "block.{field}: required in a proposed block (None only in the empty block)"
    ))
}

value_methods! {
    Block;
    fields(b) {
        round: b.round,
        prev_hash: b.prev_hash,
        producer: b.proposed().map(|p| p.producer),
        /// The seed credential: a 64-byte signature or an 80-byte VRF proof.
        seed_sig: b.proposed().map(|p| p.seed.bytes()),
        /// The transactions, as a tuple of `Transaction` (made on first access).
        transactions: b.txs,
        signature: b.proposed().map(|p| &p.signature),
        /// CERT[r-1] (a `Certificate`) when the block carries it, else None.
        prev_cert: b.prev_cert,
    }

    /// A proposed block; with producer, seed_sig and signature all None, no
    /// transactions and no prev_cert, the empty block (as `Block.empty`).
    #[new]
    #[pyo3(signature = (round, prev_hash, producer=None, seed_sig=None, transactions=None, signature=None, prev_cert=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        round: &Bound<'_, PyAny>,
        prev_hash: &Bound<'_, PyAny>,
        producer: Option<&Bound<'_, PyAny>>,
        seed_sig: Option<&Bound<'_, PyAny>>,
        transactions: Option<&Bound<'_, PyAny>>,
        signature: Option<&Bound<'_, PyAny>>,
        prev_cert: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let round = args::u64_arg(round, "block.round")?;
        let prev_hash = args::fixed::<HASH_SIZE>(prev_hash, "block.prev_hash")?;
        let txs = match transactions {
            Some(items) => TxList::from_py(items, "block.transactions", MAX_BLOCK_TXS)?,
            None => TxList::empty(),
        };
        let prev_cert = match prev_cert {
            None => None,
            Some(obj) if obj.is_none() => None,
            Some(obj) => Some(
                obj.cast::<Certificate>()
                    .map_err(|_| {
                        PyTypeError::new_err(format!(
                            "block.prev_cert must be a Certificate or None, not {}",
                            obj.get_type()
                                .name()
                                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
                        ))
                    })?
                    .get()
                    .clone(),
            ),
        };
        if producer.is_none() && seed_sig.is_none() && signature.is_none() {
            if txs.len() > 0 {
                return Err(PyValueError::new_err(
                    "block.transactions: the empty block has none (a proposed block needs producer, seed_sig and signature)",
                ));
            }
            if prev_cert.is_some() {
                return Err(PyValueError::new_err(
                    "block.prev_cert: the empty block carries none (a proposed block needs producer, seed_sig and signature)",
                ));
            }
            return Ok(Self::new(round, prev_hash, None, TxList::empty(), None));
        }
        let producer = args::u64_arg(
            producer.ok_or_else(|| missing("producer"))?,
            "block.producer",
        )?;
        let seed = Seed::from_py(seed_sig.ok_or_else(|| missing("seed_sig"))?)?;
        let signature = args::fixed::<SIG_SIZE>(
            signature.ok_or_else(|| missing("signature"))?,
            "block.signature",
        )?;
        let p = Proposed {
            producer,
            seed,
            payload_hash: payload_hash(&txs, prev_cert.as_ref()),
            signature,
        };
        Ok(Self::new(round, prev_hash, Some(p), txs, prev_cert))
    }

    /// The empty block of round `round`: no producer, no signature, no payload.
    #[classmethod]
    fn empty(
        _cls: &Bound<'_, PyType>,
        round: &Bound<'_, PyAny>,
        prev_hash: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let round = args::u64_arg(round, "block.round")?;
        let prev_hash = args::fixed::<HASH_SIZE>(prev_hash, "block.prev_hash")?;
        Ok(Self::new(round, prev_hash, None, TxList::empty(), None))
    }

    /// Decodes one block (proposed or empty).
    #[classmethod]
    fn from_bytes(cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let frame = super::frame_of(data, "data")?;
        if frame.len() >= super::DETACH_BYTES {
            cls.py().detach(|| Self::decode(&frame))
        } else {
            Self::decode(&frame)
        }
        .map_err(|e| DecodeError::new_err(e.text()))
    }

    /// The number of transactions, without making their objects.
    #[getter]
    fn tx_count(&self) -> usize {
        self.txs.len()
    }

    /// True for the empty block of the round.
    #[getter]
    fn is_empty(&self) -> bool {
        self.proposed.is_none()
    }

    /// `H(header_body)` (for the empty block, `H(empty_block)`).
    #[getter]
    fn hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.hash)
    }

    /// `H(payload)`, None for the empty block.
    #[getter]
    fn payload_hash<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.proposed().map(|p| PyBytes::new(py, &p.payload_hash))
    }

    /// The bytes `hash` is over: `header_body` of a proposed block, the whole empty block.
    #[getter]
    fn header_body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.header())
    }

    /// `"echorand/block" || 0x00 || chain || header_body`: what the producer signs.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let chain = args::chain(chain)?;
        if self.proposed.is_none() {
            return Err(PyValueError::new_err(
                "block.signature: the empty block is not signed",
            ));
        }
        let header = self.header();
        let mut out = signed_payload(tag::BLOCK, &chain, header.len());
        out.put(&header);
        Ok(PyBytes::new(py, &out))
    }

    fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Encode::py_bytes(self, py)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposed(seed: Seed) -> Block {
        let p = Proposed {
            producer: 7,
            seed,
            payload_hash: payload_hash(&TxList::empty(), None),
            signature: [3; SIG_SIZE],
        };
        Block::new(5, [1; HASH_SIZE], Some(p), TxList::empty(), None)
    }

    fn encoded(block: &Block) -> Vec<u8> {
        let mut out = Vec::with_capacity(block.encoded_len());
        block.write(&mut out);
        assert_eq!(out.len(), block.encoded_len());
        out
    }

    #[test]
    fn a_vrf_seed_is_kind_2_with_80_bytes_and_round_trips() {
        let vrf = proposed(Seed::Vrf([9; VRF_PROOF_SIZE]));
        let sig = proposed(Seed::Signature([9; SIG_SIZE]));
        let (v, s) = (encoded(&vrf), encoded(&sig));
        assert_eq!((v[0], s[0]), (PROPOSED_VRF, PROPOSED));
        assert_eq!(v.len(), s.len() + VRF_PROOF_SIZE - SIG_SIZE);
        assert_eq!(
            &v[1 + 8 + HASH_SIZE + 8..][..VRF_PROOF_SIZE],
            &[9; VRF_PROOF_SIZE]
        );
        match Block::parse(&mut Reader::new(&v)) {
            Ok(parsed) => assert!(parsed == vrf && parsed.hash == vrf.hash),
            Err(e) => panic!("does not decode: {}", e.text()),
        }
        assert!(vrf.hash != sig.hash);
    }

    #[test]
    fn a_seed_field_of_the_other_kind_does_not_decode() {
        // kind 0 over an 80-byte field reads 16 proof bytes as the payload hash
        let mut v = encoded(&proposed(Seed::Vrf([9; VRF_PROOF_SIZE])));
        v[0] = PROPOSED;
        assert!(Block::parse(&mut Reader::new(&v)).is_err());
        let mut s = encoded(&proposed(Seed::Signature([9; SIG_SIZE])));
        s[0] = PROPOSED_VRF;
        assert!(Block::parse(&mut Reader::new(&s)).is_err());
    }
}
