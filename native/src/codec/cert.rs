//! Certificates `CERT[r]`: the `echorand/cert` signatures of the step that decided.
//!
//! ```text
//! round u64 || step u32 || b u8 || block_hash 32 || leader u64 || count u32 || (signer u64 || signature 64) * count
//! ```

use std::hash::{Hash, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use pyo3::IntoPyObjectExt;

use super::args;
use super::consensus::Value;
use super::pyvalue::{Item, Items};
use super::wire::{
    check_flag, signed_payload, tag, DecodeErr, DecodeResult, Put, Reader, HASH_SIZE,
    MAX_CERT_VOTES, SIG_SIZE, VOTE_SIZE,
};
use super::{DecodeError, Encode};

/// The body every certificate vote signs: `u64be(round) || u8(b) || block_hash || u64be(leader)`.
pub fn cert_signing_bytes(round: u64, b: u8, value: &Value) -> Vec<u8> {
    let mut out = signed_payload(tag::CERT, 8 + 1 + Value::SIZE);
    out.put_u64(round);
    out.put_u8(b);
    value.write(&mut out);
    out
}

/// What a substitute's `cert_sig` signs: the body of [`cert_signing_bytes`]
/// followed by `u64be(principal) || u8(mode)` (58 bytes of body, an own vote's is 49).
pub fn substitute_cert_signing_bytes(
    round: u64,
    b: u8,
    value: &Value,
    principal: u64,
    mode: u8,
) -> Vec<u8> {
    let mut out = cert_signing_bytes(round, b, value);
    out.put_u64(principal);
    out.put_u8(mode);
    out
}

/// The rules of a substitute's seat (§16), for field paths under `path`:
/// `mode` is 1 (explicit) or 2 (fallback), and `principal` is not the signer.
pub fn check_delegation(path: &str, signer: u64, principal: u64, mode: u8) -> Result<(), String> {
    if mode != 1 && mode != 2 {
        return Err(format!(
            "{path}.mode: must be 1 (explicit) or 2 (fallback), got {mode}"
        ));
    }
    if principal == signer {
        return Err(format!(
            "{path}.principal: must differ from the signer ({signer})"
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub signer: u64,
    pub signature: [u8; SIG_SIZE],
}

/// `(signer, signature)`.
impl Item for Vote {
    const NOUN: &'static str = "vote";

    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        (self.signer, PyBytes::new(py, &self.signature)).into_bound_py_any(py)
    }
}

/// The certificate of a round: which value step `step` decided, and the
/// verifiers' `echorand/cert` signatures on it, signers strictly ascending.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
#[derive(PartialEq)]
pub struct Certificate {
    round: u64,
    step: u32,
    b: u8,
    value: Value,
    votes: Items<Vote>,
}

impl Hash for Certificate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal certificates hash alike; the first and last votes stand for the rest.
        (self.round, self.step, self.b, self.value).hash(state);
        let votes = self.votes.as_slice();
        (votes.len(), votes.first(), votes.last()).hash(state);
    }
}

/// The canonical rules shared by the constructor and the decoder.
fn check(b: u8, value: &Value) -> Result<(), String> {
    check_flag("certificate.b", b)?;
    value.check("certificate")?;
    if b == 1 && *value != Value::EMPTY {
        return Err("certificate.block_hash: b = 1 requires the empty value".to_owned());
    }
    Ok(())
}

fn check_ascending(votes: &[Vote]) -> Result<(), String> {
    for (i, pair) in votes.windows(2).enumerate() {
        if let [a, b] = pair {
            if b.signer <= a.signer {
                return Err(format!(
                    "certificate.votes: signers not strictly ascending ({} after {} at index {})",
                    b.signer,
                    a.signer,
                    i + 1
                ));
            }
        }
    }
    Ok(())
}

impl Certificate {
    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let round = r.u64("certificate.round")?;
        let step = r.u32("certificate.step")?;
        let b = r.u8("certificate.b")?;
        check_flag("certificate.b", b)?;
        let value = Value::parse(r, "certificate")?;
        check(b, &value)?;
        let count = r.count("certificate.count", MAX_CERT_VOTES)?;
        let bytes = r.take(count * VOTE_SIZE, "certificate.votes")?;
        let votes: Vec<Vote> = bytes
            .chunks_exact(VOTE_SIZE)
            .filter_map(|chunk| chunk.split_first_chunk::<8>())
            .filter_map(|(signer, sig)| {
                let signature = sig.try_into().ok()?;
                Some(Vote {
                    signer: u64::from_be_bytes(*signer),
                    signature,
                })
            })
            .collect();
        if votes.len() != count {
            return Err(DecodeErr::new("certificate.votes: malformed"));
        }
        check_ascending(&votes)?;
        Ok(Certificate {
            round,
            step,
            b,
            value,
            votes: Items::new(votes),
        })
    }

    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        let mut r = Reader::new(data);
        let cert = Self::parse(&mut r)?;
        r.finish()?;
        Ok(cert)
    }

    fn vote_from_py(item: &Bound<'_, PyAny>, i: usize) -> PyResult<Vote> {
        let field = format!("certificate.votes[{i}]");
        let (signer, signature) = args::pair(item, &field, "(signer, signature)")?;
        let signer = args::u64_arg(&signer, format!("{field}.signer"))?;
        let signature = args::fixed::<SIG_SIZE>(&signature, format!("{field}.signature"))?;
        Ok(Vote { signer, signature })
    }
}

impl Encode for Certificate {
    fn encoded_len(&self) -> usize {
        8 + 4 + 1 + Value::SIZE + 4 + self.votes.as_slice().len() * VOTE_SIZE
    }

    fn write<P: Put>(&self, out: &mut P) {
        let votes = self.votes.as_slice();
        out.put_u64(self.round);
        out.put_u32(self.step);
        out.put_u8(self.b);
        self.value.write(out);
        out.put_u32(votes.len() as u32);
        for v in votes {
            out.put_u64(v.signer);
            out.put(&v.signature);
        }
    }
}

value_methods! {
    Certificate;
    fields(c) {
        round: c.round,
        step: c.step,
        b: c.b,
        block_hash: c.value.block_hash,
        leader: c.value.leader,
        /// `((signer, signature), ...)`, signers strictly ascending.
        votes: c.votes,
    }

    #[new]
    #[pyo3(signature = (round, step, b, block_hash, leader, votes))]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
        votes: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let round = args::u64_arg(round, "certificate.round")?;
        let step = args::u32_arg(step, "certificate.step")?;
        let b = args::u8_arg(b, "certificate.b")?;
        let value = Value {
            block_hash: args::fixed::<HASH_SIZE>(block_hash, "certificate.block_hash")?,
            leader: args::u64_arg(leader, "certificate.leader")?,
        };
        check(b, &value).map_err(PyValueError::new_err)?;
        let votes = Items::from_py(votes, "certificate.votes", MAX_CERT_VOTES, Self::vote_from_py)?;
        check_ascending(votes.as_slice()).map_err(PyValueError::new_err)?;
        Ok(Certificate {
            round,
            step,
            b,
            value,
            votes,
        })
    }

    /// Decodes one certificate.
    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let data = args::bytes_like(data, "data")?;
        Self::decode(&data).map_err(|e| DecodeError::new_err(e.text()))
    }

    /// The value `v = (block_hash, leader)` certified.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        self.value.to_py(py)
    }

    /// The signers, ascending.
    #[getter]
    fn signers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.votes.as_slice().iter().map(|v| v.signer))
    }

    /// `"echorand/cert" || 0x00 || u64be(round) || u8(b) || block_hash || u64be(leader)`:
    /// what every vote of the certificate signs.
    fn vote_signing_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &cert_signing_bytes(self.round, self.b, &self.value))
    }

    fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Encode::py_bytes(self, py)
    }
}
