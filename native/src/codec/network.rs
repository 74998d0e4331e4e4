//! The network messages: transaction gossip, the handshake, and sync.
//!
//! ```text
//! tx_batch       0x10 count u32 || transaction * count
//! hello          0x20 version u32 || genesis_hash 32 || node_key 32 || nonce 32 || tip_round u64 || listen_port u16
//! sync_request   0x21 from_round u64 || count u32
//! sync_response  0x22 count u32 || (block || certificate) * count
//! hello_proof    0x23 signature 64
//! final_proof    0x24 round u64 || block_hash 32 || count u32 || (signer u64 || signature 64) * count
//! ```

use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::args;
use super::block::Block;
use super::cert::Certificate;
use super::pyvalue::{Item, Items};
use super::tx::TxList;
use super::wire::{
    code, DecodeErr, DecodeResult, Put, Reader, HASH_SIZE, KEY_SIZE, MAX_BATCH_TXS, MAX_CERT_VOTES,
    MAX_SYNC_BLOCKS, SIG_SIZE, TX_SIZE,
};
use super::{Encode, Wire};

// ---------------------------------------------------------------- tx_batch

/// `tx_batch`: transactions gossiped between peers on their way to a producer.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq)]
pub struct TxBatch {
    txs: TxList,
}

impl Hash for TxBatch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal batches hash alike; the count and the first and last transactions stand
        // for the rest.
        let raw = self.txs.raw();
        (
            raw.len(),
            raw.first_chunk::<TX_SIZE>(),
            raw.last_chunk::<TX_SIZE>(),
        )
            .hash(state);
    }
}

impl TxBatch {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let count = r.count("tx_batch.count", MAX_BATCH_TXS)?;
        Ok(TxBatch {
            txs: TxList::parse(r, count, "tx_batch.transactions")?,
        })
    }
}

impl Encode for TxBatch {
    fn encoded_len(&self) -> usize {
        1 + 4 + self.txs.len() * TX_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u32(self.txs.len() as u32);
        self.txs.write(out);
    }
}

impl Wire for TxBatch {
    const CODE: u8 = code::TX_BATCH;
}

message_methods! {
    TxBatch;
    fields(m) {
        /// The transactions, as a tuple of `Transaction` (made on first access).
        transactions: m.txs,
    }

    #[new]
    #[pyo3(signature = (transactions))]
    fn py_new(transactions: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(TxBatch {
            txs: TxList::from_py(transactions, "tx_batch.transactions", MAX_BATCH_TXS)?,
        })
    }

    #[getter]
    fn tx_count(&self) -> usize {
        self.txs.len()
    }
}

// ------------------------------------------------------------------- hello

/// Bytes of the fresh random challenge in a `hello`.
pub const NONCE_SIZE: usize = 32;

/// `hello`: the handshake, first message on every connection: who we say we are and a
/// fresh nonce that the other side must sign over (its `hello_proof`).
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct Hello {
    version: u32,
    genesis_hash: [u8; HASH_SIZE],
    node_key: [u8; KEY_SIZE],
    nonce: [u8; NONCE_SIZE],
    tip_round: u64,
    listen_port: u16,
}

impl Hello {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(Hello {
            version: r.u32("hello.version")?,
            genesis_hash: r.array("hello.genesis_hash")?,
            node_key: r.array("hello.node_key")?,
            nonce: r.array("hello.nonce")?,
            tip_round: r.u64("hello.tip_round")?,
            listen_port: r.u16("hello.listen_port")?,
        })
    }
}

impl Encode for Hello {
    fn encoded_len(&self) -> usize {
        1 + 4 + HASH_SIZE + KEY_SIZE + NONCE_SIZE + 8 + 2
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u32(self.version);
        out.put(&self.genesis_hash);
        out.put(&self.node_key);
        out.put(&self.nonce);
        out.put_u64(self.tip_round);
        out.put_u16(self.listen_port);
    }
}

impl Wire for Hello {
    const CODE: u8 = code::HELLO;
}

message_methods! {
    Hello;
    fields(m) {
        version: m.version,
        genesis_hash: m.genesis_hash,
        node_key: m.node_key,
        nonce: m.nonce,
        tip_round: m.tip_round,
        listen_port: m.listen_port,
    }

    #[new]
    #[pyo3(signature = (version, genesis_hash, node_key, nonce, tip_round, listen_port))]
    fn py_new(
        version: &Bound<'_, PyAny>,
        genesis_hash: &Bound<'_, PyAny>,
        node_key: &Bound<'_, PyAny>,
        nonce: &Bound<'_, PyAny>,
        tip_round: &Bound<'_, PyAny>,
        listen_port: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(Hello {
            version: args::u32_arg(version, "hello.version")?,
            genesis_hash: args::fixed(genesis_hash, "hello.genesis_hash")?,
            node_key: args::fixed(node_key, "hello.node_key")?,
            nonce: args::fixed(nonce, "hello.nonce")?,
            tip_round: args::u64_arg(tip_round, "hello.tip_round")?,
            listen_port: args::u16_arg(listen_port, "hello.listen_port")?,
        })
    }
}

// ------------------------------------------------------------- hello_proof

/// `hello_proof`: the second message on every connection, the proof that the sender
/// holds the secret of the node key its `hello` named: its signature over both sides'
/// keys and nonces (the payload is made in Python, `echorand.net.peer.proof_payload`).
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct HelloProof {
    signature: [u8; SIG_SIZE],
}

impl HelloProof {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(HelloProof {
            signature: r.array("hello_proof.signature")?,
        })
    }
}

impl Encode for HelloProof {
    fn encoded_len(&self) -> usize {
        1 + SIG_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put(&self.signature);
    }
}

impl Wire for HelloProof {
    const CODE: u8 = code::HELLO_PROOF;
}

message_methods! {
    HelloProof;
    fields(m) {
        signature: m.signature,
    }

    #[new]
    #[pyo3(signature = (signature))]
    fn py_new(signature: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(HelloProof {
            signature: args::fixed(signature, "hello_proof.signature")?,
        })
    }
}

// ------------------------------------------------------------ sync_request

/// `sync_request`: asks a peer for the certified blocks from `from_round` on.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct SyncRequest {
    from_round: u64,
    count: u32,
}

impl SyncRequest {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(SyncRequest {
            from_round: r.u64("sync_request.from_round")?,
            count: r.u32("sync_request.count")?,
        })
    }
}

impl Encode for SyncRequest {
    fn encoded_len(&self) -> usize {
        1 + 8 + 4
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u64(self.from_round);
        out.put_u32(self.count);
    }
}

impl Wire for SyncRequest {
    const CODE: u8 = code::SYNC_REQUEST;
}

message_methods! {
    SyncRequest;
    fields(m) {
        from_round: m.from_round,
        count: m.count,
    }

    #[new]
    #[pyo3(signature = (from_round, count))]
    fn py_new(from_round: &Bound<'_, PyAny>, count: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(SyncRequest {
            from_round: args::u64_arg(from_round, "sync_request.from_round")?,
            count: args::u32_arg(count, "sync_request.count")?,
        })
    }
}

// ----------------------------------------------------------- sync_response

/// A certified block: `(Block, Certificate)`.
type Certified = (Py<Block>, Py<Certificate>);

impl Item for Certified {
    const NOUN: &'static str = "block";

    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (b, c) = self;
        Ok(PyTuple::new(py, [b.clone_ref(py).into_any(), c.clone_ref(py).into_any()])?.into_any())
    }
}

/// `sync_response`: certified blocks, each with the certificate that decided it.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
pub struct SyncResponse {
    blocks: Items<Certified>,
}

impl PartialEq for SyncResponse {
    fn eq(&self, other: &Self) -> bool {
        let (ours, theirs) = (self.blocks.as_slice(), other.blocks.as_slice());
        ours.len() == theirs.len()
            && ours
                .iter()
                .zip(theirs)
                .all(|((b1, c1), (b2, c2))| b1.get() == b2.get() && c1.get() == c2.get())
    }
}

impl Hash for SyncResponse {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for (b, c) in self.blocks.as_slice() {
            b.get().hash(state);
            c.get().hash(state);
        }
    }
}

/// A decoded `sync_response` whose blocks have no Python objects yet.
pub struct SyncResponseParts {
    blocks: Vec<(Block, Certificate)>,
}

impl SyncResponseParts {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let count = r.count("sync_response.count", MAX_SYNC_BLOCKS)?;
        let mut blocks = Vec::with_capacity(count);
        for i in 0..count {
            let block =
                Block::parse(r).map_err(|e| e.within(format!("sync_response.blocks[{i}]")))?;
            let cert = Certificate::parse(r)
                .map_err(|e| e.within(format!("sync_response.blocks[{i}]")))?;
            blocks.push((block, cert));
        }
        Ok(SyncResponseParts { blocks })
    }

    pub fn into_message(self, py: Python<'_>) -> PyResult<SyncResponse> {
        let blocks = self
            .blocks
            .into_iter()
            .map(|(b, c)| Ok((Py::new(py, b)?, Py::new(py, c)?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(SyncResponse {
            blocks: Items::new(blocks),
        })
    }
}

impl Encode for SyncResponse {
    fn encoded_len(&self) -> usize {
        let items: usize = self
            .blocks
            .as_slice()
            .iter()
            .map(|(b, c)| b.get().encoded_len() + c.get().encoded_len())
            .sum();
        1 + 4 + items
    }

    fn write<P: Put>(&self, out: &mut P) {
        let blocks = self.blocks.as_slice();
        out.put_u8(Self::CODE);
        out.put_u32(blocks.len() as u32);
        for (b, c) in blocks {
            b.get().write(out);
            c.get().write(out);
        }
    }
}

impl Wire for SyncResponse {
    const CODE: u8 = code::SYNC_RESPONSE;
}

fn certified_from_py(item: &Bound<'_, PyAny>, i: usize) -> PyResult<Certified> {
    let field = format!("sync_response.blocks[{i}]");
    let (block, cert) = args::pair(item, &field, "(Block, Certificate)")?;
    let block = block
        .cast::<Block>()
        .map_err(|_| PyTypeError::new_err(format!("{field}[0]: expected Block")))?;
    let cert = cert
        .cast::<Certificate>()
        .map_err(|_| PyTypeError::new_err(format!("{field}[1]: expected Certificate")))?;
    Ok((block.clone().unbind(), cert.clone().unbind()))
}

message_methods! {
    SyncResponse;
    fields(m) {
        /// `((Block, Certificate), ...)`.
        blocks: m.blocks,
    }

    #[new]
    #[pyo3(signature = (blocks))]
    fn py_new(blocks: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(SyncResponse {
            blocks: Items::from_py(blocks, "sync_response.blocks", MAX_SYNC_BLOCKS, certified_from_py)?,
        })
    }
}

// ------------------------------------------------------------- final_proof

/// Bytes of one final vote in a `final_proof`: `signer u64 || signature 64`.
const FINAL_VOTE_SIZE: usize = 8 + SIG_SIZE;

/// `final_proof`: the final votes (weight above `t_f`) that make block `block_hash` of
/// `round` final (PROTOCOL §6), sent to a peer found on a chain that parts below it.
/// Signers strictly ascending, at most `MAX_CERT_VOTES`: one encoding per proof.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct FinalProof {
    round: u64,
    block_hash: [u8; HASH_SIZE],
    votes: Vec<u8>,
}

/// Why `votes` (`(signer u64 || signature 64) * n`) is not a canonical list, if it is not.
fn final_votes_problem(votes: &[u8]) -> Option<String> {
    let mut last: Option<u64> = None;
    for (i, vote) in votes.chunks_exact(FINAL_VOTE_SIZE).enumerate() {
        let mut id = [0u8; 8];
        id.copy_from_slice(&vote[..8]);
        let signer = u64::from_be_bytes(id);
        if last.is_some_and(|prev| signer <= prev) {
            return Some(format!(
                "final_proof.votes[{i}]: signer {signer} not above the one before"
            ));
        }
        last = Some(signer);
    }
    None
}

impl FinalProof {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let round = r.u64("final_proof.round")?;
        let block_hash = r.array("final_proof.block_hash")?;
        let count = r.count("final_proof.count", MAX_CERT_VOTES)?;
        let votes = r
            .take(count * FINAL_VOTE_SIZE, "final_proof.votes")?
            .to_vec();
        if let Some(problem) = final_votes_problem(&votes) {
            return Err(DecodeErr::new(problem));
        }
        Ok(FinalProof {
            round,
            block_hash,
            votes,
        })
    }
}

impl Encode for FinalProof {
    fn encoded_len(&self) -> usize {
        1 + 8 + HASH_SIZE + 4 + self.votes.len()
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u64(self.round);
        out.put(&self.block_hash);
        out.put_u32((self.votes.len() / FINAL_VOTE_SIZE) as u32);
        out.put(&self.votes);
    }
}

impl Wire for FinalProof {
    const CODE: u8 = code::FINAL_PROOF;
}

message_methods! {
    FinalProof;
    fields(m) {
        round: m.round,
        block_hash: m.block_hash,
        /// `(signer u64be || signature 64) * n`, signers strictly ascending.
        votes: m.votes.as_slice(),
    }

    #[new]
    #[pyo3(signature = (round, block_hash, votes))]
    fn py_new(
        round: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        votes: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let votes = args::bytes_like(votes, "final_proof.votes")?.into_owned();
        if votes.len() % FINAL_VOTE_SIZE != 0 || votes.len() / FINAL_VOTE_SIZE > MAX_CERT_VOTES {
            return Err(PyValueError::new_err(format!(
                "final_proof.votes: {} bytes is not a whole number of {FINAL_VOTE_SIZE}-byte \
                 votes, at most {MAX_CERT_VOTES}",
                votes.len()
            )));
        }
        if let Some(problem) = final_votes_problem(&votes) {
            return Err(PyValueError::new_err(problem));
        }
        Ok(FinalProof {
            round: args::u64_arg(round, "final_proof.round")?,
            block_hash: args::fixed(block_hash, "final_proof.block_hash")?,
            votes,
        })
    }

    #[getter]
    fn vote_count(&self) -> usize {
        self.votes.len() / FINAL_VOTE_SIZE
    }
}
