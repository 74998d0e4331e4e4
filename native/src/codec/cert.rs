//! Certificates `CERT[r]`: the `echorand/cert` signatures of the step that decided.
//!
//! Every vote signs `u64be(round) || u32be(step) || u8(b) || block_hash || u64be(leader)`
//! (PROTOCOL §5, revision 2): a vote counts for one round and one step only. The step
//! must be one whose votes decide for the bit (`decides`): `b = 0` at steps 4, 7, 10, ...,
//! `b = 1` at steps 5, 8, 11, ...; `b = 0` certifies a block's value, `b = 1` the empty value.
//!
//! ```text
//! round u64 || step u32 || b u8 || block_hash 32 || leader u64 || count u32 || (signer u64 || signature 64) * count
//!   || scount u32 || (principal u64 || signer u64 || mode u8 || signature 64) * scount
//! ```
//!
//! The trailing section (docs/protocol.md §16) holds the substitute votes:
//! those signed in a principal's seats by its delegate (mode 1) or fallback
//! (mode 2), each over `substitute_cert_signing_bytes`. Principals strictly
//! ascending, none an own signer; own and substitute votes together at most
//! `MAX_CERT_VOTES`.

use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyTypeError, PyValueError};
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

/// What every certificate vote signs: `"echorand/cert" || 0x00 || chain || u64be(round) ||
/// u32be(step) || u8(b) || block_hash || u64be(leader)`.
pub fn cert_signing_bytes(
    chain: &[u8; HASH_SIZE],
    round: u64,
    step: u32,
    b: u8,
    value: &Value,
) -> Vec<u8> {
    let mut out = signed_payload(tag::CERT, chain, 8 + 4 + 1 + Value::SIZE + 8 + 1);
    out.put_u64(round);
    out.put_u32(step);
    out.put_u8(b);
    value.write(&mut out);
    out
}

/// What a substitute's `cert_sig` signs: the payload of [`cert_signing_bytes`]
/// followed by `u64be(principal) || u8(mode)` (62 bytes of body, an own vote's is 53).
pub fn substitute_cert_signing_bytes(
    chain: &[u8; HASH_SIZE],
    round: u64,
    step: u32,
    b: u8,
    value: &Value,
    principal: u64,
    mode: u8,
) -> Vec<u8> {
    let mut out = cert_signing_bytes(chain, round, step, b, value);
    out.put_u64(principal);
    out.put_u8(mode);
    out
}

/// Whether votes for bit `b` in `step` can decide: `b = 0` at steps `4 + 3k`, `b = 1` at
/// steps `5 + 3k` (the Python twin is `echorand.protocol.certificate.decides`).
pub fn decides(step: u32, b: u8) -> bool {
    match b {
        0 => step >= 4 && (step - 4).is_multiple_of(3),
        1 => step >= 5 && (step - 5).is_multiple_of(3),
        _ => false,
    }
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

/// One entry of the substitute section: `signer` voted in `principal`'s seats.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubVote {
    pub principal: u64,
    pub signer: u64,
    pub mode: u8,
    pub signature: [u8; SIG_SIZE],
}

impl SubVote {
    const SIZE: usize = 8 + 8 + 1 + SIG_SIZE;
}

/// `(principal, signer, mode, signature)`.
impl Item for SubVote {
    const NOUN: &'static str = "substitute";

    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        (
            self.principal,
            self.signer,
            self.mode,
            PyBytes::new(py, &self.signature),
        )
            .into_bound_py_any(py)
    }
}

/// The certificate of a round: which value step `step` decided, the
/// verifiers' `echorand/cert` signatures on it, signers strictly ascending,
/// and the substitute votes (§16), principals strictly ascending.
#[pyclass(frozen, eq, hash, module = "echorand.wire.messages")]
#[derive(Clone, PartialEq)]
pub struct Certificate {
    round: u64,
    step: u32,
    b: u8,
    value: Value,
    votes: Items<Vote>,
    substitutes: Items<SubVote>,
}

impl Hash for Certificate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal certificates hash alike; the first and last votes stand for the rest.
        (self.round, self.step, self.b, self.value).hash(state);
        let votes = self.votes.as_slice();
        (votes.len(), votes.first(), votes.last()).hash(state);
        let subs = self.substitutes.as_slice();
        (subs.len(), subs.first(), subs.last()).hash(state);
    }
}

/// The canonical rules shared by the constructor and the decoder: the bit, its value, and
/// a step whose votes decide for it.
fn check(step: u32, b: u8, value: &Value) -> Result<(), String> {
    check_flag("certificate.b", b)?;
    value.check_vote("certificate", b)?;
    if !decides(step, b) {
        return Err(format!(
            "certificate.step: votes b = {b} of step {step} decide nothing \
             (b = 0 needs a step 4 + 3k, b = 1 a step 5 + 3k)"
        ));
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

/// The rules of the substitute section: each entry's seat, principals
/// strictly ascending, and no principal among the own signers (`votes`, ascending).
fn check_substitutes(votes: &[Vote], subs: &[SubVote]) -> Result<(), String> {
    for (i, e) in subs.iter().enumerate() {
        check_delegation(
            &format!("certificate.substitutes[{i}]"),
            e.signer,
            e.principal,
            e.mode,
        )?;
    }
    for (i, pair) in subs.windows(2).enumerate() {
        if let [a, b] = pair {
            if b.principal <= a.principal {
                return Err(format!(
                    "certificate.substitutes: principals not strictly ascending ({} after {} at index {})",
                    b.principal,
                    a.principal,
                    i + 1
                ));
            }
        }
    }
    // Both lists ascend: one merge finds a principal that is also an own signer.
    let mut own = votes.iter().map(|v| v.signer).peekable();
    for (i, e) in subs.iter().enumerate() {
        while own.next_if(|&s| s < e.principal).is_some() {}
        if own.peek() == Some(&e.principal) {
            return Err(format!(
                "certificate.substitutes[{i}].principal: {} is also an own signer",
                e.principal
            ));
        }
    }
    if votes.len() + subs.len() > MAX_CERT_VOTES {
        return Err(format!(
            "certificate: {} own and {} substitute votes, over the limit of {MAX_CERT_VOTES}",
            votes.len(),
            subs.len()
        ));
    }
    Ok(())
}

impl Certificate {
    fn parse_substitutes(r: &mut Reader<'_>, own: usize) -> DecodeResult<Vec<SubVote>> {
        let scount = r.count("certificate.scount", MAX_CERT_VOTES.saturating_sub(own))?;
        let mut subs = Vec::with_capacity(scount);
        for i in 0..scount {
            subs.push(SubVote {
                principal: r.u64(format_args!("certificate.substitutes[{i}].principal"))?,
                signer: r.u64(format_args!("certificate.substitutes[{i}].signer"))?,
                mode: r.u8(format_args!("certificate.substitutes[{i}].mode"))?,
                signature: r.array(format_args!("certificate.substitutes[{i}].signature"))?,
            });
        }
        Ok(subs)
    }

    pub fn parse(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let round = r.u64("certificate.round")?;
        let step = r.u32("certificate.step")?;
        let b = r.u8("certificate.b")?;
        check_flag("certificate.b", b)?;
        let value = Value::parse(r, "certificate")?;
        check(step, b, &value)?;
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
        let substitutes = Self::parse_substitutes(r, votes.len())?;
        check_substitutes(&votes, &substitutes)?;
        Ok(Certificate {
            round,
            step,
            b,
            value,
            votes: Items::new(votes),
            substitutes: Items::new(substitutes),
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

    fn substitute_from_py(item: &Bound<'_, PyAny>, i: usize) -> PyResult<SubVote> {
        let field = format!("certificate.substitutes[{i}]");
        let what = "(principal, signer, mode, signature)";
        let items = match item.cast::<PyTuple>() {
            Ok(t) if t.len() == 4 => t,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "{field}: expected a {what} tuple"
                )))
            }
        };
        Ok(SubVote {
            principal: args::u64_arg(&items.get_item(0)?, format!("{field}.principal"))?,
            signer: args::u64_arg(&items.get_item(1)?, format!("{field}.signer"))?,
            mode: args::u8_arg(&items.get_item(2)?, format!("{field}.mode"))?,
            signature: args::fixed::<SIG_SIZE>(&items.get_item(3)?, format!("{field}.signature"))?,
        })
    }
}

impl Encode for Certificate {
    fn encoded_len(&self) -> usize {
        8 + 4
            + 1
            + Value::SIZE
            + 4
            + self.votes.as_slice().len() * VOTE_SIZE
            + 4
            + self.substitutes.as_slice().len() * SubVote::SIZE
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
        let subs = self.substitutes.as_slice();
        out.put_u32(subs.len() as u32);
        for e in subs {
            out.put_u64(e.principal);
            out.put_u64(e.signer);
            out.put_u8(e.mode);
            out.put(&e.signature);
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
        /// `((principal, signer, mode, signature), ...)`: the substitute votes (§16),
        /// principals strictly ascending.
        substitutes: c.substitutes,
    }

    #[new]
    #[pyo3(signature = (round, step, b, block_hash, leader, votes, substitutes = None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        block_hash: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
        votes: &Bound<'_, PyAny>,
        substitutes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let round = args::u64_arg(round, "certificate.round")?;
        let step = args::u32_arg(step, "certificate.step")?;
        let b = args::u8_arg(b, "certificate.b")?;
        let value = Value {
            block_hash: args::fixed::<HASH_SIZE>(block_hash, "certificate.block_hash")?,
            leader: args::u64_arg(leader, "certificate.leader")?,
        };
        check(step, b, &value).map_err(PyValueError::new_err)?;
        let votes = Items::from_py(votes, "certificate.votes", MAX_CERT_VOTES, Self::vote_from_py)?;
        check_ascending(votes.as_slice()).map_err(PyValueError::new_err)?;
        let substitutes = match substitutes {
            Some(subs) => Items::from_py(
                subs,
                "certificate.substitutes",
                MAX_CERT_VOTES - votes.as_slice().len(),
                Self::substitute_from_py,
            )?,
            None => Items::new(Vec::new()),
        };
        check_substitutes(votes.as_slice(), substitutes.as_slice())
            .map_err(PyValueError::new_err)?;
        Ok(Certificate {
            round,
            step,
            b,
            value,
            votes,
            substitutes,
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

    /// `"echorand/cert" || 0x00 || chain || u64be(round) || u32be(step) || u8(b) ||
    /// block_hash || u64be(leader)`: what every own vote of the certificate signs.
    fn vote_signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let chain = args::chain(chain)?;
        let payload = cert_signing_bytes(&chain, self.round, self.step, self.b, &self.value);
        Ok(PyBytes::new(py, &payload))
    }

    /// The principals of the substitute votes, ascending.
    #[getter]
    fn principals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.substitutes.as_slice().iter().map(|e| e.principal))
    }

    /// `vote_signing_bytes() || u64be(principal) || u8(mode)`: what a substitute
    /// vote of the certificate in `principal`'s seats, in `mode`, signs.
    fn substitute_signing_bytes<'py>(
        &self,
        py: Python<'py>,
        chain: &Bound<'py, PyAny>,
        principal: &Bound<'py, PyAny>,
        mode: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let chain = args::chain(chain)?;
        let principal = args::u64_arg(principal, "principal")?;
        let mode = args::u8_arg(mode, "mode")?;
        Ok(PyBytes::new(
            py,
            &substitute_cert_signing_bytes(
                &chain, self.round, self.step, self.b, &self.value, principal, mode,
            ),
        ))
    }

    fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Encode::py_bytes(self, py)
    }
}
