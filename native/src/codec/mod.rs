//! The wire codec (docs/protocol.md §6): every message, transaction, block and
//! certificate as an immutable Python value, with one canonical encoding and a
//! strict decoder whose errors name the field.
//!
//! Decoding runs in two phases: the bytes are parsed into plain Rust values
//! (with the GIL released for large inputs), then the Python objects are made.
//! The transactions of a block or batch stay in one buffer; their Python
//! objects are made on first access. A decoded `gc_block` or `tx_batch`
//! references its input (`bytes` are held, not copied) for that buffer, so the
//! input lives as long as the decoded value; a `sync_response` copies each
//! block's transactions, so that one kept block does not hold the whole frame.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList};

/// The `#[pymethods]` of a value class `$ty`, around the class's own `$body`.
///
/// `fields(m) { name: expr, ... }` lists the class's fields in order, each an
/// expression of the value `m` whose type implements `pyvalue::PyField`. From
/// that list come a getter per field (doc comments carried over),
/// `__match_args__` (the names, in order) and `__repr__`
/// (`Class(name=value, ...)`). Also generated: `__reduce__`, which pickles the
/// value as `(Class.from_bytes, (encoding,))` (so `$ty` implements `Encode`
/// and has a `from_bytes`), and `__copy__`/`__deepcopy__`, which return the
/// value itself (it is immutable).
macro_rules! value_methods {
    (
        $ty:ident;
        fields($m:ident) { $($(#[$doc:meta])* $name:ident: $field:expr),+ $(,)? }
        $($body:tt)*
    ) => {
        #[pymethods]
        impl $ty {
            $($body)*

            #[classattr]
            fn __match_args__(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyTuple>> {
                pyo3::types::PyTuple::new(py, [$(stringify!($name)),+])
            }

            $(
                $(#[$doc])*
                #[getter]
                #[allow(clippy::wrong_self_convention)] // a getter is named after its field
                fn $name<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                    let $m = self;
                    $crate::codec::pyvalue::PyField::to_py(&$field, py)
                }
            )+

            pub fn __repr__(&self) -> String {
                let $m = self;
                let mut repr = $crate::codec::pyvalue::Repr::new(stringify!($ty));
                $(repr.field(stringify!($name), &$field);)+
                repr.finish()
            }

            fn __reduce__<'py>(
                slf: &Bound<'py, Self>,
            ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
                let from_bytes = slf.get_type().getattr("from_bytes")?;
                Ok((from_bytes, ($crate::codec::Encode::py_bytes(slf.get(), slf.py())?,)))
            }

            fn __copy__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
                slf
            }

            fn __deepcopy__<'py>(slf: Bound<'py, Self>, _memo: &Bound<'py, PyAny>) -> Bound<'py, Self> {
                slf
            }
        }
    };
}

/// `value_methods!` for a message class (it implements `Wire`), adding the
/// methods every message shares: `from_bytes` (the type byte must be the
/// class's) and `encode`.
macro_rules! message_methods {
    ($ty:ident; fields $m:tt $fields:tt $($body:tt)*) => {
        value_methods! {
            $ty;
            fields $m $fields
            $($body)*

            /// Decodes one message of this type (type byte included).
            #[classmethod]
            fn from_bytes<'py>(
                cls: &Bound<'py, pyo3::types::PyType>,
                data: &Bound<'py, PyAny>,
            ) -> PyResult<Py<PyAny>> {
                $crate::codec::decode_expecting(cls.py(), data, <$ty as $crate::codec::Wire>::CODE)
            }

            /// The message on the wire: its type byte and body (as `encode(msg)`).
            fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
                $crate::codec::Encode::py_bytes(self, py)
            }

            /// The type byte that starts this message on the wire (docs/protocol.md §6).
            #[classattr]
            #[pyo3(name = "CODE")]
            fn py_code() -> u8 {
                <$ty as $crate::codec::Wire>::CODE
            }
        }
    };
}

mod args;
mod block;
mod cert;
mod consensus;
mod network;
mod pyvalue;
mod tx;
pub mod wire;

pub use block::Block;
pub use cert::Certificate;
pub use consensus::{
    BbaSignature, BbaSubstitute, FinalVote, GcBlock, GcProposal, GcSignature, GcSubstitute,
};
pub use network::{FinalProof, Hello, HelloProof, SyncRequest, SyncResponse, TxBatch};
pub use tx::Transaction;

use wire::{code, DecodeErr, DecodeResult, Frame, FrameData, Put, Reader, MAX_FRAME};

pyo3::create_exception!(
    echorand.wire.messages,
    DecodeError,
    PyValueError,
    "Input that is not the one canonical encoding of a message; the text names the field."
);

/// Inputs at least this large are parsed with the GIL released.
pub(crate) const DETACH_BYTES: usize = 1 << 16;

/// A value with one canonical encoding.
pub trait Encode {
    fn encoded_len(&self) -> usize;
    fn write<P: Put>(&self, out: &mut P);
    /// The encoding as a new `bytes`.
    fn py_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        wire::new_bytes(py, self.encoded_len(), |w| self.write(w))
    }
}

/// A message type: an encoding that starts with the type byte `CODE`.
pub trait Wire: Encode {
    const CODE: u8;
}

/// A message parsed into Rust values, before its Python objects are made.
pub enum Parsed {
    GcBlock(consensus::GcBlockParts),
    GcSignature(GcSignature),
    GcProposal(GcProposal),
    BbaSignature(BbaSignature),
    GcSubstitute(GcSubstitute),
    BbaSubstitute(BbaSubstitute),
    FinalVote(FinalVote),
    TxBatch(TxBatch),
    Hello(Hello),
    HelloProof(HelloProof),
    SyncRequest(SyncRequest),
    SyncResponse(network::SyncResponseParts),
    FinalProof(FinalProof),
}

impl Parsed {
    fn code(&self) -> u8 {
        match self {
            Parsed::GcBlock(_) => code::GC_BLOCK,
            Parsed::GcSignature(_) => code::GC_SIGNATURE,
            Parsed::GcProposal(_) => code::GC_PROPOSAL,
            Parsed::BbaSignature(_) => code::BBA_SIGNATURE,
            Parsed::GcSubstitute(_) => code::GC_SUBSTITUTE,
            Parsed::BbaSubstitute(_) => code::BBA_SUBSTITUTE,
            Parsed::FinalVote(_) => code::FINAL_VOTE,
            Parsed::TxBatch(_) => code::TX_BATCH,
            Parsed::Hello(_) => code::HELLO,
            Parsed::HelloProof(_) => code::HELLO_PROOF,
            Parsed::SyncRequest(_) => code::SYNC_REQUEST,
            Parsed::SyncResponse(_) => code::SYNC_RESPONSE,
            Parsed::FinalProof(_) => code::FINAL_PROOF,
        }
    }

    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Parsed::GcBlock(parts) => Py::new(py, parts.into_message(py)?)?.into_any(),
            Parsed::GcSignature(m) => Py::new(py, m)?.into_any(),
            Parsed::GcProposal(m) => Py::new(py, m)?.into_any(),
            Parsed::BbaSignature(m) => Py::new(py, m)?.into_any(),
            Parsed::GcSubstitute(m) => Py::new(py, m)?.into_any(),
            Parsed::BbaSubstitute(m) => Py::new(py, m)?.into_any(),
            Parsed::FinalVote(m) => Py::new(py, m)?.into_any(),
            Parsed::TxBatch(m) => Py::new(py, m)?.into_any(),
            Parsed::Hello(m) => Py::new(py, m)?.into_any(),
            Parsed::HelloProof(m) => Py::new(py, m)?.into_any(),
            Parsed::SyncRequest(m) => Py::new(py, m)?.into_any(),
            Parsed::SyncResponse(parts) => Py::new(py, parts.into_message(py)?)?.into_any(),
            Parsed::FinalProof(m) => Py::new(py, m)?.into_any(),
        })
    }
}

/// Parses one message (type byte and body) that must fill the reader's input exactly.
pub fn parse_message(mut r: Reader<'_>) -> DecodeResult<Parsed> {
    if r.remaining() > MAX_FRAME {
        return Err(DecodeErr::new(format!(
            "frame: {} bytes over limit {MAX_FRAME}",
            r.remaining()
        )));
    }
    let r = &mut r;
    let parsed = match r.u8("type")? {
        code::GC_BLOCK => Parsed::GcBlock(consensus::GcBlockParts::parse(r)?),
        code::GC_SIGNATURE => Parsed::GcSignature(GcSignature::parse(r)?),
        code::GC_PROPOSAL => Parsed::GcProposal(GcProposal::parse(r)?),
        code::BBA_SIGNATURE => Parsed::BbaSignature(BbaSignature::parse(r)?),
        code::GC_SUBSTITUTE => Parsed::GcSubstitute(GcSubstitute::parse(r)?),
        code::BBA_SUBSTITUTE => Parsed::BbaSubstitute(BbaSubstitute::parse(r)?),
        code::FINAL_VOTE => Parsed::FinalVote(FinalVote::parse(r)?),
        code::TX_BATCH => Parsed::TxBatch(TxBatch::parse(r)?),
        code::HELLO => Parsed::Hello(Hello::parse(r)?),
        code::HELLO_PROOF => Parsed::HelloProof(HelloProof::parse(r)?),
        code::SYNC_REQUEST => Parsed::SyncRequest(SyncRequest::parse(r)?),
        code::SYNC_RESPONSE => Parsed::SyncResponse(network::SyncResponseParts::parse(r)?),
        code::FINAL_PROOF => Parsed::FinalProof(FinalProof::parse(r)?),
        other => {
            return Err(DecodeErr::new(format!(
                "type: unknown message type 0x{other:02x}"
            )));
        }
    };
    r.finish()?;
    Ok(parsed)
}

fn decode_error(err: &DecodeErr) -> PyErr {
    DecodeError::new_err(err.text())
}

/// One input to decode: read in place, or kept as a `Frame` when the message
/// holds transactions (a block's or a batch's stay in the frame, uncopied).
enum Source<'a> {
    Plain(Cow<'a, [u8]>),
    Framed(Frame),
}

fn holds_transactions(data: &[u8]) -> bool {
    matches!(data.first(), Some(&(code::GC_BLOCK | code::TX_BATCH)))
}

impl<'a> Source<'a> {
    fn of(obj: &'a Bound<'_, PyAny>, field: impl FnOnce() -> String) -> PyResult<Self> {
        if let Ok(bytes) = obj.cast::<PyBytes>() {
            if holds_transactions(bytes.as_bytes()) {
                let backed = PyBackedBytes::from(bytes.clone());
                return Ok(Source::Framed(Frame::new(FrameData::Python(backed))));
            }
            return Ok(Source::Plain(Cow::Borrowed(bytes.as_bytes())));
        }
        let copy = args::bytes_like(obj, field())?.into_owned();
        if holds_transactions(&copy) {
            return Ok(Source::Framed(Frame::new(FrameData::Rust(copy.into()))));
        }
        Ok(Source::Plain(Cow::Owned(copy)))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Source::Plain(data) => data,
            Source::Framed(frame) => frame,
        }
    }

    fn parse(&self) -> DecodeResult<Parsed> {
        match self {
            Source::Plain(data) => parse_message(Reader::new(data)),
            Source::Framed(frame) => parse_message(Reader::framed(frame)),
        }
    }

    /// Parses with the GIL released when the input is large.
    fn parse_detached(&self, py: Python<'_>) -> DecodeResult<Parsed> {
        if self.bytes().len() >= DETACH_BYTES {
            py.detach(|| self.parse())
        } else {
            self.parse()
        }
    }
}

/// The bytes of `obj` as a frame: a `bytes` is held without copying, any other buffer copied.
pub(crate) fn frame_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Frame> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Frame::new(FrameData::Python(PyBackedBytes::from(
            bytes.clone(),
        ))));
    }
    let copy = args::bytes_like(obj, field)?.into_owned();
    Ok(Frame::new(FrameData::Rust(copy.into())))
}

/// `decode` for one class's `from_bytes`: the type byte must be `expected`.
pub fn decode_expecting(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    expected: u8,
) -> PyResult<Py<PyAny>> {
    let source = Source::of(data, || "data".to_owned())?;
    match source.bytes().first() {
        Some(&t) if t != expected => {
            return Err(DecodeError::new_err(format!(
                "type: expected message type 0x{expected:02x}, got 0x{t:02x}"
            )))
        }
        _ => {}
    }
    let parsed = source.parse_detached(py).map_err(|e| decode_error(&e))?;
    debug_assert_eq!(parsed.code(), expected);
    parsed.into_py(py)
}

/// The encoding of any message object (type byte included).
fn message_bytes<'py>(msg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let py = msg.py();
    macro_rules! try_types {
        ($($ty:ty),*) => {
            $(if let Ok(m) = msg.cast::<$ty>() {
                return m.get().py_bytes(py);
            })*
        };
    }
    try_types!(
        BbaSignature,
        GcProposal,
        GcSignature,
        GcBlock,
        BbaSubstitute,
        GcSubstitute,
        FinalVote,
        TxBatch,
        Hello,
        HelloProof,
        SyncRequest,
        SyncResponse,
        FinalProof
    );
    let name = msg
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(PyTypeError::new_err(format!(
        "encode: not a message: {name}"
    )))
}

/// The message on the wire: its type byte and body.
#[pyfunction]
fn encode<'py>(msg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    message_bytes(msg)
}

/// `[encode(m) for m in messages]` in one call.
#[pyfunction]
fn encode_many<'py>(py: Python<'py>, messages: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for msg in messages.try_iter()? {
        out.append(message_bytes(&msg?)?)?;
    }
    Ok(out)
}

/// Decodes one message (any bytes-like object; `bytes` is read in place).
#[pyfunction]
fn decode(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let source = Source::of(data, || "data".to_owned())?;
    let parsed = source.parse_detached(py).map_err(|e| decode_error(&e))?;
    parsed.into_py(py)
}

/// Frames parsed per release of the GIL in `decode_many`.
const DECODE_CHUNK: usize = 512;

/// Decodes many frames in one call: each item is the message or the `DecodeError` for it.
///
/// Frames are parsed in chunks with the GIL released (when a chunk is large),
/// then each chunk's Python objects are made.
#[pyfunction]
fn decode_many<'py>(py: Python<'py>, frames: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let objects = frames.try_iter()?.collect::<PyResult<Vec<_>>>()?;
    let out = PyList::empty(py);
    let mut parsed = Vec::with_capacity(DECODE_CHUNK.min(objects.len()));
    for (c, chunk) in objects.chunks(DECODE_CHUNK).enumerate() {
        let sources = chunk
            .iter()
            .enumerate()
            .map(|(i, obj)| Source::of(obj, || format!("frames[{}]", c * DECODE_CHUNK + i)))
            .collect::<PyResult<Vec<_>>>()?;
        let total: usize = sources.iter().map(|s| s.bytes().len()).sum();
        let parse_all = |parsed: &mut Vec<_>| parsed.extend(sources.iter().map(Source::parse));
        if total >= DETACH_BYTES {
            py.detach(|| parse_all(&mut parsed));
        } else {
            parse_all(&mut parsed);
        }
        for result in parsed.drain(..) {
            match result {
                Ok(p) => out.append(p.into_py(py)?)?,
                Err(e) => out.append(decode_error(&e).into_value(py))?,
            }
        }
    }
    Ok(out)
}

fn frame_length(header: [u8; 4], max_frame: usize) -> PyResult<usize> {
    let n = u32::from_be_bytes(header) as usize;
    if n == 0 {
        return Err(DecodeError::new_err("frame.length: 0"));
    }
    if n > max_frame {
        return Err(DecodeError::new_err(format!(
            "frame.length: {n} over limit {max_frame}"
        )));
    }
    Ok(n)
}

/// Splits a stream of `u32be length || message` frames: the complete frames,
/// and how many bytes of `buffer` they used (the rest is an incomplete frame).
#[pyfunction]
#[pyo3(signature = (buffer, max_frame = MAX_FRAME))]
fn split_frames<'py>(
    py: Python<'py>,
    buffer: &Bound<'py, PyAny>,
    max_frame: usize,
) -> PyResult<(Bound<'py, PyList>, usize)> {
    if max_frame == 0 {
        return Err(PyValueError::new_err("max_frame: must be at least 1"));
    }
    // `bytes` is read in place; any other buffer (a bytearray, a memoryview)
    // is copied once, since it may change while we read it.
    let data = args::bytes_like(buffer, "buffer")?;
    let frames = PyList::empty(py);
    let mut pos = 0;
    while let Some(header) = data.get(pos..).and_then(|rest| rest.first_chunk::<4>()) {
        let n = frame_length(*header, max_frame)?;
        let Some(body) = data.get(pos + 4..pos + 4 + n) else {
            break;
        };
        frames.append(PyBytes::new(py, body))?;
        pos += 4 + n;
    }
    Ok((frames, pos))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add_class::<Transaction>()?;
    m.add_class::<Block>()?;
    m.add_class::<Certificate>()?;
    m.add_class::<GcBlock>()?;
    m.add_class::<GcSignature>()?;
    m.add_class::<GcProposal>()?;
    m.add_class::<BbaSignature>()?;
    m.add_class::<GcSubstitute>()?;
    m.add_class::<BbaSubstitute>()?;
    m.add_class::<FinalVote>()?;
    m.add_class::<TxBatch>()?;
    m.add_class::<Hello>()?;
    m.add_class::<HelloProof>()?;
    m.add_class::<SyncRequest>()?;
    m.add_class::<FinalProof>()?;
    m.add_class::<SyncResponse>()?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(encode_many, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(decode_many, m)?)?;
    m.add_function(wrap_pyfunction!(split_frames, m)?)?;
    m.add("MAX_FRAME", MAX_FRAME)?;
    m.add("MAX_BLOCK_TXS", wire::MAX_BLOCK_TXS)?;
    m.add("MAX_CERT_VOTES", wire::MAX_CERT_VOTES)?;
    m.add("MAX_BATCH_TXS", wire::MAX_BATCH_TXS)?;
    m.add("MAX_SYNC_BLOCKS", wire::MAX_SYNC_BLOCKS)?;
    m.add("NO_LEADER", wire::NO_LEADER)?;
    m.add("FINAL_STEP", wire::FINAL_STEP)?;
    Ok(())
}
