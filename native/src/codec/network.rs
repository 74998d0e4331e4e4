//! The network messages: transaction gossip, the handshake, and sync.
//!
//! ```text
//! tx_batch       0x10 count u32 || transaction * count
//! hello          0x20 version u32 || genesis_hash 32 || node_key 32 || tip_round u64 || listen_port u16
//! sync_request   0x21 from_round u64 || count u32
//! sync_response  0x22 count u32 || (block || certificate) * count
//! ```

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple};

use super::args::{self, hex_repr};
use super::block::Block;
use super::cert::Certificate;
use super::tx::TxList;
use super::wire::{
    code, DecodeResult, Put, Reader, HASH_SIZE, KEY_SIZE, MAX_BATCH_TXS, MAX_SYNC_BLOCKS, TX_SIZE,
};
use super::Wire;

// ---------------------------------------------------------------- tx_batch

/// `tx_batch`: transactions gossiped between peers on their way to a producer.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
#[derive(PartialEq)]
pub struct TxBatch {
    txs: TxList,
}

impl std::hash::Hash for TxBatch {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
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

impl Wire for TxBatch {
    const CODE: u8 = code::TX_BATCH;

    fn encoded_len(&self) -> usize {
        1 + 4 + self.txs.len() * TX_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u32(self.txs.len() as u32);
        self.txs.write(out);
    }
}

message_methods! {
    TxBatch;
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("transactions",)
    }

    #[new]
    #[pyo3(signature = (transactions))]
    fn py_new(transactions: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(TxBatch {
            txs: TxList::from_py(transactions, "tx_batch.transactions", MAX_BATCH_TXS)?,
        })
    }

    /// The transactions, as a tuple of `Transaction` (made on first access).
    #[getter]
    fn transactions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.txs.tuple(py)
    }

    #[getter]
    fn tx_count(&self) -> usize {
        self.txs.len()
    }

    fn __repr__(&self) -> String {
        match self.txs.len() {
            0 => "TxBatch(transactions=())".to_owned(),
            1 => "TxBatch(transactions=<1 transaction>)".to_owned(),
            n => format!("TxBatch(transactions=<{n} transactions>)"),
        }
    }
}

// ------------------------------------------------------------------- hello

/// `hello`: the handshake, first message on every connection.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
#[derive(PartialEq, Eq, Hash)]
pub struct Hello {
    version: u32,
    genesis_hash: [u8; HASH_SIZE],
    node_key: [u8; KEY_SIZE],
    tip_round: u64,
    listen_port: u16,
}

impl Hello {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(Hello {
            version: r.u32("hello.version")?,
            genesis_hash: r.array("hello.genesis_hash")?,
            node_key: r.array("hello.node_key")?,
            tip_round: r.u64("hello.tip_round")?,
            listen_port: r.u16("hello.listen_port")?,
        })
    }
}

impl Wire for Hello {
    const CODE: u8 = code::HELLO;

    fn encoded_len(&self) -> usize {
        1 + 4 + HASH_SIZE + KEY_SIZE + 8 + 2
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u32(self.version);
        out.put(&self.genesis_hash);
        out.put(&self.node_key);
        out.put_u64(self.tip_round);
        out.put_u16(self.listen_port);
    }
}

message_methods! {
    Hello;
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        (
            "version",
            "genesis_hash",
            "node_key",
            "tip_round",
            "listen_port",
        )
    }

    #[new]
    #[pyo3(signature = (version, genesis_hash, node_key, tip_round, listen_port))]
    fn py_new(
        version: &Bound<'_, PyAny>,
        genesis_hash: &Bound<'_, PyAny>,
        node_key: &Bound<'_, PyAny>,
        tip_round: &Bound<'_, PyAny>,
        listen_port: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(Hello {
            version: args::u32_arg(version, "hello.version")?,
            genesis_hash: args::fixed(genesis_hash, "hello.genesis_hash")?,
            node_key: args::fixed(node_key, "hello.node_key")?,
            tip_round: args::u64_arg(tip_round, "hello.tip_round")?,
            listen_port: args::u16_arg(listen_port, "hello.listen_port")?,
        })
    }

    #[getter]
    fn version(&self) -> u32 {
        self.version
    }

    #[getter]
    fn genesis_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.genesis_hash)
    }

    #[getter]
    fn node_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.node_key)
    }

    #[getter]
    fn tip_round(&self) -> u64 {
        self.tip_round
    }

    #[getter]
    fn listen_port(&self) -> u16 {
        self.listen_port
    }

    fn __repr__(&self) -> String {
        format!(
            "Hello(version={}, genesis_hash={}, node_key={}, tip_round={}, listen_port={})",
            self.version,
            hex_repr(&self.genesis_hash),
            hex_repr(&self.node_key),
            self.tip_round,
            self.listen_port
        )
    }
}

// ------------------------------------------------------------ sync_request

/// `sync_request`: asks a peer for the certified blocks from `from_round` on.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
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

impl Wire for SyncRequest {
    const CODE: u8 = code::SYNC_REQUEST;

    fn encoded_len(&self) -> usize {
        1 + 8 + 4
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u64(self.from_round);
        out.put_u32(self.count);
    }
}

message_methods! {
    SyncRequest;
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("from_round", "count")
    }

    #[new]
    #[pyo3(signature = (from_round, count))]
    fn py_new(from_round: &Bound<'_, PyAny>, count: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(SyncRequest {
            from_round: args::u64_arg(from_round, "sync_request.from_round")?,
            count: args::u32_arg(count, "sync_request.count")?,
        })
    }

    #[getter(from_round)]
    fn py_from_round(&self) -> u64 {
        self.from_round
    }

    #[getter]
    fn count(&self) -> u32 {
        self.count
    }

    fn __repr__(&self) -> String {
        format!(
            "SyncRequest(from_round={}, count={})",
            self.from_round, self.count
        )
    }
}

// ----------------------------------------------------------- sync_response

/// `sync_response`: certified blocks, each with the certificate that decided it.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
pub struct SyncResponse {
    blocks: Vec<(Py<Block>, Py<Certificate>)>,
    tuple: PyOnceLock<Py<PyTuple>>,
}

impl PartialEq for SyncResponse {
    fn eq(&self, other: &Self) -> bool {
        self.blocks.len() == other.blocks.len()
            && self
                .blocks
                .iter()
                .zip(&other.blocks)
                .all(|((b1, c1), (b2, c2))| b1.get() == b2.get() && c1.get() == c2.get())
    }
}

impl std::hash::Hash for SyncResponse {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for (b, c) in &self.blocks {
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
            blocks,
            tuple: PyOnceLock::new(),
        })
    }
}

impl Wire for SyncResponse {
    const CODE: u8 = code::SYNC_RESPONSE;

    fn encoded_len(&self) -> usize {
        let items: usize = self
            .blocks
            .iter()
            .map(|(b, c)| b.get().encoded_len() + c.get().encoded_len())
            .sum();
        1 + 4 + items
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put_u8(Self::CODE);
        out.put_u32(self.blocks.len() as u32);
        for (b, c) in &self.blocks {
            b.get().write(out);
            c.get().write(out);
        }
    }
}

fn pair_from_py(item: &Bound<'_, PyAny>, i: usize) -> PyResult<(Py<Block>, Py<Certificate>)> {
    let field = format!("sync_response.blocks[{i}]");
    let pair = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            PyTypeError::new_err(format!("{field}: expected a (Block, Certificate) tuple"))
        })?;
    let block = pair.get_item(0)?;
    let cert = pair.get_item(1)?;
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
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("blocks",)
    }

    #[new]
    #[pyo3(signature = (blocks))]
    fn py_new(blocks: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut list = Vec::new();
        for (i, item) in blocks.try_iter()?.enumerate() {
            if i == MAX_SYNC_BLOCKS {
                return Err(PyValueError::new_err(format!(
                    "sync_response.blocks: more than the limit of {MAX_SYNC_BLOCKS} blocks"
                )));
            }
            list.push(pair_from_py(&item?, i)?);
        }
        Ok(SyncResponse {
            blocks: list,
            tuple: PyOnceLock::new(),
        })
    }

    /// `((Block, Certificate), ...)`.
    #[getter]
    fn blocks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let tuple = self.tuple.get_or_try_init(py, || {
            let items = self
                .blocks
                .iter()
                .map(|(b, c)| {
                    PyTuple::new(py, [b.clone_ref(py).into_any(), c.clone_ref(py).into_any()])
                })
                .collect::<PyResult<Vec<_>>>()?;
            PyResult::Ok(PyTuple::new(py, items)?.unbind())
        })?;
        Ok(tuple.bind(py).clone())
    }

    fn __repr__(&self) -> String {
        match self.blocks.len() {
            0 => "SyncResponse(blocks=())".to_owned(),
            1 => "SyncResponse(blocks=<1 block>)".to_owned(),
            n => format!("SyncResponse(blocks=<{n} blocks>)"),
        }
    }
}
