//! Certificates `CERT[r]`: the `echorand/cert` signatures of the step that decided.
//!
//! ```text
//! round u64 || step u32 || b u8 || block_hash 32 || leader u64 || count u32 || (signer u64 || signature 64) * count
//! ```

use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple, PyType};

use super::args::{self, hex_repr};
use super::wire::{
    check_empty_for_b1, check_flag, check_value, new_bytes, signed_payload, tag, DecodeErr,
    DecodeResult, Put, Reader, HASH_SIZE, MAX_CERT_VOTES, SIG_SIZE, VOTE_SIZE,
};
use super::DecodeError;

/// The body every certificate vote signs: `u64be(round) || u8(b) || block_hash || u64be(leader)`.
pub fn cert_signing_bytes(round: u64, b: u8, block_hash: &[u8; HASH_SIZE], leader: u64) -> Vec<u8> {
    let mut out = signed_payload(tag::CERT, 8 + 1 + HASH_SIZE + 8);
    out.put_u64(round);
    out.put_u8(b);
    out.put(block_hash);
    out.put_u64(leader);
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub signer: u64,
    pub signature: [u8; SIG_SIZE],
}

/// The certificate of a round: which value step `step` decided, and the
/// verifiers' `echorand/cert` signatures on it, signers strictly ascending.
#[pyclass(frozen, eq, hash, module = "echorand.messages")]
pub struct Certificate {
    round: u64,
    step: u32,
    b: u8,
    block_hash: [u8; HASH_SIZE],
    leader: u64,
    votes: Vec<Vote>,
    votes_tuple: PyOnceLock<Py<PyTuple>>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.round == other.round
            && self.step == other.step
            && self.b == other.b
            && self.block_hash == other.block_hash
            && self.leader == other.leader
            && self.votes == other.votes
    }
}

impl Hash for Certificate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal certificates hash alike; the first and last votes stand for the rest.
        (self.round, self.step, self.b, self.block_hash, self.leader).hash(state);
        (self.votes.len(), self.votes.first(), self.votes.last()).hash(state);
    }
}

/// The canonical rules shared by the constructor and the decoder.
fn check(b: u8, block_hash: &[u8; HASH_SIZE], leader: u64) -> Result<(), String> {
    check_flag("certificate.b", b)?;
    check_value("certificate", block_hash, leader)?;
    check_empty_for_b1("certificate", b, block_hash, leader)
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
    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn encoded_len(&self) -> usize {
        8 + 4 + 1 + HASH_SIZE + 8 + 4 + self.votes.len() * VOTE_SIZE
    }

    pub fn write<P: Put>(&self, out: &mut P) {
        out.put_u64(self.round);
        out.put_u32(self.step);
        out.put_u8(self.b);
        out.put(&self.block_hash);
        out.put_u64(self.leader);
        out.put_u32(self.votes.len() as u32);
        for v in &self.votes {
            out.put_u64(v.signer);
            out.put(&v.signature);
        }
    }

    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let round = r.u64("certificate.round")?;
        let step = r.u32("certificate.step")?;
        let b = r.u8("certificate.b")?;
        check_flag("certificate.b", b)?;
        let block_hash = r.array("certificate.block_hash")?;
        let leader = r.u64("certificate.leader")?;
        check(b, &block_hash, leader)?;
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
            block_hash,
            leader,
            votes,
            votes_tuple: PyOnceLock::new(),
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
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!("{field}: expected a (signer, signature) tuple"))
            })?;
        let signer = args::u64_arg(&pair.get_item(0)?, format!("{field}.signer"))?;
        let signature = args::fixed::<SIG_SIZE>(&pair.get_item(1)?, format!("{field}.signature"))?;
        Ok(Vote { signer, signature })
    }
}

#[pymethods]
impl Certificate {
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        ("round", "step", "b", "block_hash", "leader", "votes")
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
        let block_hash = args::fixed::<HASH_SIZE>(block_hash, "certificate.block_hash")?;
        let leader = args::u64_arg(leader, "certificate.leader")?;
        check(b, &block_hash, leader).map_err(PyValueError::new_err)?;
        let mut list = Vec::new();
        for (i, item) in votes.try_iter()?.enumerate() {
            if i == MAX_CERT_VOTES {
                return Err(PyValueError::new_err(format!(
                    "certificate.votes: more than the limit of {MAX_CERT_VOTES} votes"
                )));
            }
            list.push(Self::vote_from_py(&item?, i)?);
        }
        check_ascending(&list).map_err(PyValueError::new_err)?;
        Ok(Certificate {
            round,
            step,
            b,
            block_hash,
            leader,
            votes: list,
            votes_tuple: PyOnceLock::new(),
        })
    }

    /// Decodes one certificate.
    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let data = args::bytes_like(data, "data")?;
        Self::decode(&data).map_err(|e| DecodeError::new_err(e.text()))
    }

    #[getter(round)]
    fn py_round(&self) -> u64 {
        self.round
    }

    #[getter]
    fn step(&self) -> u32 {
        self.step
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

    /// The value `v = (block_hash, leader)` certified.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        (PyBytes::new(py, &self.block_hash), self.leader)
    }

    /// `((signer, signature), ...)`, signers strictly ascending.
    #[getter]
    fn votes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let tuple = self.votes_tuple.get_or_try_init(py, || {
            let items = self
                .votes
                .iter()
                .map(|v| (v.signer, PyBytes::new(py, &v.signature)))
                .collect::<Vec<_>>();
            PyResult::Ok(PyTuple::new(py, items)?.unbind())
        })?;
        Ok(tuple.bind(py).clone())
    }

    /// The signers, ascending.
    #[getter]
    fn signers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.votes.iter().map(|v| v.signer))
    }

    /// `"echorand/cert" || 0x00 || u64be(round) || u8(b) || block_hash || u64be(leader)`:
    /// what every vote of the certificate signs.
    fn vote_signing_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(
            py,
            &cert_signing_bytes(self.round, self.b, &self.block_hash, self.leader),
        )
    }

    fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        new_bytes(py, self.encoded_len(), |w| self.write(w))
    }

    fn __repr__(&self) -> String {
        let votes = match self.votes.len() {
            0 => "()".to_owned(),
            1 => "<1 vote>".to_owned(),
            n => format!("<{n} votes>"),
        };
        format!(
            "Certificate(round={}, step={}, b={}, block_hash={}, leader={}, votes={votes})",
            self.round,
            self.step,
            self.b,
            hex_repr(&self.block_hash),
            self.leader
        )
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        let cert = slf.get();
        let data = new_bytes(slf.py(), cert.encoded_len(), |w| cert.write(w))?;
        Ok((from_bytes, (data,)))
    }

    fn __copy__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __deepcopy__<'py>(slf: Bound<'py, Self>, _memo: &Bound<'py, PyAny>) -> Bound<'py, Self> {
        slf
    }
}
