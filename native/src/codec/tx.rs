//! Transactions (153 bytes) and compact lists of them.
//!
//! ```text
//! kind u8 || sender pk 32 || recipient pk 32 || amount u64 || fee u64 || nonce u64 || signature 64
//! ```

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple, PyType};

use super::args;
use super::pyvalue::{count_repr, PyField};
use super::wire::{
    sha256, tag, DecodeErr, DecodeResult, Frame, Put, Reader, HASH_SIZE, KEY_SIZE, SIG_SIZE,
    TX_SIGNED_SIZE, TX_SIZE,
};
use super::{DecodeError, Encode};

pub const TRANSFER: u8 = 0;
pub const DELEGATION: u8 = 1;

const SENDER: usize = 1;
const RECIPIENT: usize = SENDER + KEY_SIZE;
const AMOUNT: usize = RECIPIENT + KEY_SIZE;
const FEE: usize = AMOUNT + 8;
const NONCE: usize = FEE + 8;
const SIGNATURE: usize = NONCE + 8;

fn be_u64(raw: &[u8; TX_SIZE], at: usize) -> u64 {
    let bytes = raw.get(at..).and_then(|s| s.first_chunk::<8>());
    bytes.map_or(0, |b| u64::from_be_bytes(*b))
}

fn field(raw: &[u8; TX_SIZE], at: usize, len: usize) -> &[u8] {
    raw.get(at..at + len).unwrap_or_default()
}

/// The canonical rules of one encoded transaction: a known kind, and amount 0
/// for a delegation.
pub fn check_raw(raw: &[u8; TX_SIZE]) -> Result<(), String> {
    match raw[0] {
        TRANSFER => Ok(()),
        DELEGATION if be_u64(raw, AMOUNT) == 0 => Ok(()),
        DELEGATION => Err(format!(
            "transaction.amount: a delegation must have amount 0, got {}",
            be_u64(raw, AMOUNT)
        )),
        kind => Err(format!("transaction.kind: unknown kind {kind}")),
    }
}

/// A signed transfer (kind 0) or delegation (kind 1). Stored as its 153-byte
/// encoding; the fields are read from it, the id is computed once on demand.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
pub struct Transaction {
    raw: [u8; TX_SIZE],
    id: OnceLock<[u8; HASH_SIZE]>,
}

impl PartialEq for Transaction {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Hash for Transaction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl Transaction {
    /// A transaction from its encoding, checked.
    pub fn from_raw(raw: [u8; TX_SIZE]) -> Result<Self, String> {
        check_raw(&raw)?;
        Ok(Self::trusted(raw))
    }

    /// A transaction from an encoding already checked by `check_raw`.
    fn trusted(raw: [u8; TX_SIZE]) -> Self {
        Transaction {
            raw,
            id: OnceLock::new(),
        }
    }

    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let raw = r.array::<TX_SIZE>("transaction")?;
        Ok(Self::from_raw(raw)?)
    }

    pub fn raw(&self) -> &[u8; TX_SIZE] {
        &self.raw
    }

    pub fn tx_id(&self) -> &[u8; HASH_SIZE] {
        self.id.get_or_init(|| sha256(&self.raw))
    }

    fn u64_at(&self, at: usize) -> u64 {
        be_u64(&self.raw, at)
    }

    fn bytes_at(&self, at: usize, len: usize) -> &[u8] {
        field(&self.raw, at, len)
    }
}

impl Encode for Transaction {
    fn encoded_len(&self) -> usize {
        TX_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        out.put(&self.raw);
    }

    fn py_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.raw))
    }
}

value_methods! {
    Transaction;
    fields(t) {
        kind: t.raw[0],
        sender: t.bytes_at(SENDER, KEY_SIZE),
        recipient: t.bytes_at(RECIPIENT, KEY_SIZE),
        amount: t.u64_at(AMOUNT),
        fee: t.u64_at(FEE),
        nonce: t.u64_at(NONCE),
        signature: t.bytes_at(SIGNATURE, SIG_SIZE),
    }

    #[classattr]
    const TRANSFER: u8 = TRANSFER;
    #[classattr]
    const DELEGATION: u8 = DELEGATION;

    #[new]
    #[pyo3(signature = (kind, sender, recipient, amount, fee, nonce, signature))]
    fn py_new(
        kind: &Bound<'_, PyAny>,
        sender: &Bound<'_, PyAny>,
        recipient: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
        fee: &Bound<'_, PyAny>,
        nonce: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let mut raw = Vec::with_capacity(TX_SIZE);
        raw.put_u8(args::u8_arg(kind, "transaction.kind")?);
        raw.put(&args::fixed::<KEY_SIZE>(sender, "transaction.sender")?);
        raw.put(&args::fixed::<KEY_SIZE>(
            recipient,
            "transaction.recipient",
        )?);
        raw.put_u64(args::u64_arg(amount, "transaction.amount")?);
        raw.put_u64(args::u64_arg(fee, "transaction.fee")?);
        raw.put_u64(args::u64_arg(nonce, "transaction.nonce")?);
        raw.put(&args::fixed::<SIG_SIZE>(
            signature,
            "transaction.signature",
        )?);
        let raw: [u8; TX_SIZE] = raw
            .try_into()
            .map_err(|_| PyValueError::new_err("transaction: internal size error"))?;
        Self::from_raw(raw).map_err(PyValueError::new_err)
    }

    /// Decodes one 153-byte transaction.
    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let data = args::bytes_like(data, "data")?;
        let mut r = Reader::new(&data);
        let tx = Self::parse(&mut r).and_then(|tx| r.finish().map(|()| tx));
        tx.map_err(|e| DecodeError::new_err(e.text()))
    }

    /// The transaction id: H of the 153-byte encoding.
    #[getter]
    fn id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.tx_id())
    }

    /// `"echorand/tx" || 0x00 || chain || kind .. nonce` (the first 89 bytes): what the
    /// sender signs.
    fn signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let chain = super::args::chain(chain)?;
        let mut out = super::wire::signed_payload(tag::TX, &chain, TX_SIGNED_SIZE);
        out.put(field(&self.raw, 0, TX_SIGNED_SIZE));
        Ok(PyBytes::new(py, &out))
    }

    /// The 153-byte encoding.
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.raw)
    }
}

/// Where a list's encoded transactions live: in a buffer of its own, or in
/// the frame they were decoded from (referenced, not copied).
enum TxBytes {
    Owned(Box<[u8]>),
    Shared {
        frame: Frame,
        start: usize,
        end: usize,
    },
}

/// Transactions stored as one buffer of 153-byte encodings (each already
/// checked); the Python `Transaction` objects are made on first access.
pub struct TxList {
    bytes: TxBytes,
    objects: PyOnceLock<Py<PyTuple>>,
}

impl PartialEq for TxList {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl TxList {
    pub fn empty() -> Self {
        TxList {
            bytes: TxBytes::Owned(Box::default()),
            objects: PyOnceLock::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.raw().len() / TX_SIZE
    }

    /// The concatenated encodings.
    pub fn raw(&self) -> &[u8] {
        match &self.bytes {
            TxBytes::Owned(b) => b,
            TxBytes::Shared { frame, start, end } => frame.get(*start..*end).unwrap_or_default(),
        }
    }

    /// Reads `count` transactions; errors name the index within `path` (e.g. `block.transactions`).
    /// When the reader shares its frame, the list references it instead of copying.
    pub fn parse(r: &mut Reader<'_>, count: usize, path: &str) -> DecodeResult<Self> {
        let start = r.pos();
        let bytes = r.take(count.saturating_mul(TX_SIZE), path)?;
        for (i, chunk) in bytes.chunks_exact(TX_SIZE).enumerate() {
            if let Some(raw) = chunk.first_chunk::<TX_SIZE>() {
                check_raw(raw).map_err(|e| DecodeErr::new(e).within(format!("{path}[{i}]")))?;
            }
        }
        let bytes = match r.frame() {
            Some(frame) => TxBytes::Shared {
                frame: frame.clone(),
                start,
                end: r.pos(),
            },
            None => TxBytes::Owned(bytes.into()),
        };
        Ok(TxList {
            bytes,
            objects: PyOnceLock::new(),
        })
    }

    /// From Python `Transaction` objects, keeping them as the cached tuple.
    pub fn from_py(items: &Bound<'_, PyAny>, path: &str, limit: usize) -> PyResult<Self> {
        let py = items.py();
        let mut raw = Vec::new();
        let mut objects = Vec::new();
        for (i, item) in items.try_iter()?.enumerate() {
            let item = item?;
            let tx = item.cast::<Transaction>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{path}[{i}]: expected Transaction, got {}",
                    item.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            if objects.len() == limit {
                return Err(PyValueError::new_err(format!(
                    "{path}: more than the limit of {limit} transactions"
                )));
            }
            raw.extend_from_slice(&tx.get().raw);
            objects.push(tx.clone());
        }
        let cache = PyOnceLock::new();
        let _ = cache.set(py, PyTuple::new(py, objects)?.unbind());
        Ok(TxList {
            bytes: TxBytes::Owned(raw.into()),
            objects: cache,
        })
    }

    /// The transactions as a tuple of `Transaction`, made once.
    pub fn tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let tuple = self.objects.get_or_try_init(py, || {
            let items = self
                .raw()
                .chunks_exact(TX_SIZE)
                .filter_map(|chunk| chunk.first_chunk::<TX_SIZE>())
                .map(|raw| Py::new(py, Transaction::trusted(*raw)))
                .collect::<PyResult<Vec<_>>>()?;
            PyResult::Ok(PyTuple::new(py, items)?.unbind())
        })?;
        Ok(tuple.bind(py).clone())
    }

    pub fn write<P: Put>(&self, out: &mut P) {
        out.put(self.raw());
    }
}

/// A tuple of `Transaction` (made on first access); its count in a repr.
impl PyField for TxList {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.tuple(py)?.into_any())
    }

    fn repr(&self, out: &mut String) {
        count_repr(out, self.len(), "transaction");
    }
}
