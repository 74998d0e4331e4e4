//! Byte-level building blocks of the wire format (docs/protocol.md §1, §6):
//! sizes, limits, type codes, signing tags, a bounds-checked reader whose
//! errors name the field, and big-endian writers.

use std::fmt::{self, Display};
use std::ops::Deref;
use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};

pub const HASH_SIZE: usize = 32;
pub const KEY_SIZE: usize = 32;
pub const SIG_SIZE: usize = 64;
/// An RFC 9381 ECVRF proof: a block's seed credential when its genesis says `vrf`.
pub const VRF_PROOF_SIZE: usize = crate::vrf::PROOF_SIZE;
/// A transaction: kind 1 + sender 32 + recipient 32 + amount 8 + fee 8 + nonce 8 + signature 64.
pub const TX_SIZE: usize = 153;
/// The signed part of a transaction: everything before its signature.
pub const TX_SIGNED_SIZE: usize = TX_SIZE - SIG_SIZE;
/// A certificate vote on the wire: signer u64 + signature 64.
pub const VOTE_SIZE: usize = 8 + SIG_SIZE;

pub const MAX_FRAME: usize = 32 << 20;
pub const MAX_BLOCK_TXS: usize = 100_000;
pub const MAX_CERT_VOTES: usize = 10_000;
pub const MAX_BATCH_TXS: usize = 10_000;
pub const MAX_SYNC_BLOCKS: usize = 256;

/// The leader of the empty value `(H(B_ε), NO_LEADER)` (PROTOCOL §5, revision 2): no
/// account has this id (ids are dense from 0), so it marks a vote for the empty block.
pub const NO_LEADER: u64 = u64::MAX;
/// The reserved step of final votes (PROTOCOL §6): `2^32 - 1`, never a step of a round.
pub const FINAL_STEP: u32 = u32::MAX;

/// Message type codes: the first byte of every message.
pub mod code {
    pub const GC_BLOCK: u8 = 0x01;
    pub const GC_SIGNATURE: u8 = 0x02;
    pub const GC_PROPOSAL: u8 = 0x03;
    pub const BBA_SIGNATURE: u8 = 0x04;
    pub const GC_SUBSTITUTE: u8 = 0x05;
    pub const BBA_SUBSTITUTE: u8 = 0x06;
    pub const FINAL_VOTE: u8 = 0x07;
    pub const TX_BATCH: u8 = 0x10;
    pub const HELLO: u8 = 0x20;
    pub const SYNC_REQUEST: u8 = 0x21;
    pub const SYNC_RESPONSE: u8 = 0x22;
    pub const HELLO_PROOF: u8 = 0x23;
    pub const FINAL_PROOF: u8 = 0x24;
}

/// Signing domains: every signed payload is `tag || 0x00 || body`.
pub mod tag {
    pub const BLOCK: &[u8] = b"echorand/block";
    pub const TX: &[u8] = b"echorand/tx";
    pub const MSG: &[u8] = b"echorand/msg";
    pub const GC_PROPOSAL: &[u8] = b"echorand/gc_proposal";
    pub const BBA: &[u8] = b"echorand/bba";
    pub const CERT: &[u8] = b"echorand/cert";
    pub const FINAL: &[u8] = b"echorand/final";
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; HASH_SIZE] {
    Sha256::digest(data).into()
}

/// Why a decoder rejected its input: the message names the field; `within`
/// records where the failing structure sat (outermost last).
#[derive(Debug)]
pub struct DecodeErr(Box<ErrInner>);

#[derive(Debug)]
struct ErrInner {
    message: String,
    within: Vec<String>,
}

impl DecodeErr {
    pub fn new(message: impl Into<String>) -> Self {
        DecodeErr(Box::new(ErrInner {
            message: message.into(),
            within: Vec::new(),
        }))
    }

    /// Records that the failing structure sat at `segment` (e.g. `block.transactions[3]`).
    pub fn within(mut self, segment: impl Into<String>) -> Self {
        self.0.within.push(segment.into());
        self
    }

    /// The full text: `field: problem (in outer.path)`.
    pub fn text(&self) -> String {
        if self.0.within.is_empty() {
            return self.0.message.clone();
        }
        let path: Vec<&str> = self.0.within.iter().rev().map(String::as_str).collect();
        format!("{} (in {})", self.0.message, path.join("."))
    }
}

impl From<String> for DecodeErr {
    fn from(message: String) -> Self {
        DecodeErr::new(message)
    }
}

pub type DecodeResult<T> = Result<T, DecodeErr>;

/// `msg.field` (e.g. `gc_block.round`): how errors name a field of a part
/// that several messages share; formatted only when an error needs it.
#[derive(Clone, Copy)]
pub struct Dotted<'a>(pub &'a str, pub &'a str);

impl Display for Dotted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// An input kept alive by the values decoded from it, so that large parts (the
/// transactions of a block) are referenced rather than copied: a Python `bytes`
/// held without copying, or a copy of any other buffer.
pub enum FrameData {
    Python(PyBackedBytes),
    Rust(Box<[u8]>),
}

impl Deref for FrameData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FrameData::Python(b) => b,
            FrameData::Rust(b) => b,
        }
    }
}

pub type Frame = Arc<FrameData>;

/// A cursor over input bytes; every read names the field it is for, so a short
/// input is reported as `truncated: block.prev_hash needs 32 bytes, 5 left`.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    frame: Option<&'a Frame>,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            frame: None,
        }
    }

    /// A reader over `frame` whose values may keep references into it.
    pub fn framed(frame: &'a Frame) -> Self {
        Reader {
            buf: frame,
            pos: 0,
            frame: Some(frame),
        }
    }

    /// The frame being read, when values may reference it (positions are the same).
    pub fn frame(&self) -> Option<&'a Frame> {
        self.frame
    }

    /// Stops or restarts sharing the frame (a value may prefer its own copy).
    pub fn set_frame(&mut self, frame: Option<&'a Frame>) {
        self.frame = frame;
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes read since position `start` (an earlier `pos()`).
    pub fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    /// The error of a short read; out of line, so the reads stay small.
    #[cold]
    #[inline(never)]
    fn truncated(&self, field: &dyn Display, n: usize) -> DecodeErr {
        DecodeErr::new(format!(
            "truncated: {field} needs {n} bytes, {} left",
            self.remaining()
        ))
    }

    #[inline]
    pub fn take(&mut self, n: usize, field: impl Display) -> DecodeResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(self.truncated(&field, n)),
        }
    }

    #[inline]
    pub fn array<const N: usize>(&mut self, field: impl Display) -> DecodeResult<[u8; N]> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.first_chunk::<N>() {
            Some(chunk) => {
                self.pos += N;
                Ok(*chunk)
            }
            None => Err(self.truncated(&field, N)),
        }
    }

    #[inline]
    pub fn u8(&mut self, field: impl Display) -> DecodeResult<u8> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }

    #[inline]
    pub fn u16(&mut self, field: impl Display) -> DecodeResult<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    #[inline]
    pub fn u32(&mut self, field: impl Display) -> DecodeResult<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    #[inline]
    pub fn u64(&mut self, field: impl Display) -> DecodeResult<u64> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A `u32` count, rejected when over `limit` (before any item is read).
    pub fn count(&mut self, field: impl Display, limit: usize) -> DecodeResult<usize> {
        let n = self.u32(&field)? as usize;
        if n > limit {
            return Err(DecodeErr::new(format!("{field}: {n} over limit {limit}")));
        }
        Ok(n)
    }

    /// The input must end here.
    pub fn finish(&self) -> DecodeResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeErr::new(format!("trailing bytes: {n}"))),
        }
    }
}

/// A flag byte: only 0 and 1 are canonical.
pub fn check_flag(field: &str, value: u8) -> Result<(), String> {
    if value > 1 {
        return Err(format!(
            "{field}: non-canonical value {value} (must be 0 or 1)"
        ));
    }
    Ok(())
}

/// Big-endian writers on a growing buffer.
pub trait Put {
    fn put(&mut self, bytes: &[u8]);
    fn put_u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn put_u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
}

impl Put for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes into a fixed buffer (a new Python `bytes`); notes any overflow instead of panicking.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl Put for SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
            }
            None => self.overflow = true,
        }
    }
}

/// A new `bytes` of exactly `len` bytes filled by `write`, without an intermediate buffer.
pub fn new_bytes<'py>(
    py: Python<'py>,
    len: usize,
    write: impl FnOnce(&mut SliceWriter<'_>),
) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, len, |buf| {
        let mut w = SliceWriter {
            buf,
            pos: 0,
            overflow: false,
        };
        write(&mut w);
        if w.overflow || w.pos != len {
            return Err(PyRuntimeError::new_err(format!(
                "codec bug: encoding is not the expected {len} bytes"
            )));
        }
        Ok(())
    })
}

/// `tag || 0x00 || chain`, the start of every signed payload (PROTOCOL §2, revision 2:
/// `chain` is the genesis hash, so a signature of one network never verifies on another),
/// with room for `body_len` more bytes.
pub fn signed_payload(tag: &[u8], chain: &[u8; HASH_SIZE], body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 1 + HASH_SIZE + body_len);
    out.put(tag);
    out.put_u8(0);
    out.put(chain);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_names_the_field_when_short() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8("a").ok(), Some(1));
        let err = r.array::<32>("block.prev_hash").err().map(|e| e.text());
        assert_eq!(
            err.as_deref(),
            Some("truncated: block.prev_hash needs 32 bytes, 2 left")
        );
        assert_eq!(
            r.finish().err().map(|e| e.text()).as_deref(),
            Some("trailing bytes: 2")
        );
    }

    #[test]
    fn take_does_not_overflow() {
        let mut r = Reader::new(&[0; 4]);
        assert!(r.take(usize::MAX, "x").is_err());
        assert_eq!(r.take(4, "x").map(<[u8]>::len).ok(), Some(4));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn counts_over_their_limit_are_rejected_before_reading() {
        let mut r = Reader::new(&[0, 0, 0x4e, 0x20]);
        let err = r.count("tx_batch.count", 10_000).err().map(|e| e.text());
        assert_eq!(
            err.as_deref(),
            Some("tx_batch.count: 20000 over limit 10000")
        );
    }

    #[test]
    fn errors_carry_their_path() {
        let e = DecodeErr::new("transaction.kind: unknown kind 7")
            .within("block.transactions[3]")
            .within("gc_block");
        assert_eq!(
            e.text(),
            "transaction.kind: unknown kind 7 (in gc_block.block.transactions[3])"
        );
    }
}
