//! ECVRF-EDWARDS25519-SHA512-ELL2 (RFC 9381, suite `0x04`) for Python: a
//! verifiable random function with unique proofs, keyed by the same Ed25519
//! seeds as the project's signatures (PROTOCOL §4's unbiasable seed).
//!
//! ## Which suite
//!
//! RFC 9381 defines two suites on edwards25519; they differ only in how the
//! input is hashed to the curve. TAI (`0x03`) hashes with a counter until
//! the digest decodes as a point: simple (a SHA-512 and a decompression per
//! try, two tries on average), but its time depends on the input. ELL2
//! (`0x04`) is RFC 9380's `encode_to_curve` (expand_message_xmd with
//! SHA-512, Elligator 2, cofactor clearing): constant time, standardised
//! hashing to the curve. We take ELL2:
//! - curve25519-dalek 5 ships RFC 9380's edwards25519 `encode_to_curve`
//!   (checked there against RFC 9380's vectors), so ELL2 costs us no
//!   hand-written field arithmetic and no more code than TAI;
//! - constant time costs nothing here (one exponentiation, like one try of
//!   TAI) and leaves no timing channel should `alpha` ever be secret;
//! - it is the lineage of the deployed VRFs: Algorand (go-algorand, through
//!   its libsodium fork's `crypto_vrf_ietfdraft03`) and Cardano
//!   (IOG's libsodium fork) use the Elligator 2 suite of the drafts. Their
//!   draft-03 hashing predates RFC 9380, so their proofs are not RFC 9381
//!   proofs; ours are, and the RFC's Appendix B.4 vectors pass.
//!
//! ## Ours, on dalek
//!
//! Written here (`vrf/ecvrf.rs`, the RFC's composition of dalek's curve
//! arithmetic, hash to the curve and scalar field) rather than taken from
//! a crate: the RFC 9381 crates we found are young (`vrf-rfc9381` 0.0.x)
//! or TAI-only, and adopting one would need a differential proof against
//! an implementation of our own anyway. It is checked against the RFC's
//! Appendix B.4 vectors and an independent pure-Python model
//! (`tests/_ecvrf_model.py`).
//!
//! ## Keys, encodings and validation
//!
//! The secret key is the 32-byte Ed25519 seed, expanded by RFC 8032 §5.1.5
//! (SHA-512, clamp the low half; the high half keys the nonce); the public
//! key is the Ed25519 public key. Points decode by RFC 8032 §5.1.3, which
//! RFC 9381 names: **non-canonical encodings are refused** (`y >= p`, or
//! `x = 0` with the sign bit set), for the key and for `Gamma`, and `s >= q`
//! is refused. So a valid proof has exactly one spelling (PROTOCOL §1) as
//! well as one output. This is stricter than ZIP 215 for signatures on
//! purpose: ZIP 215 is lenient so that single and batch *equations* agree,
//! and a VRF proof is never checked by a batch equation (below).
//! `validate_key` is on: small-order keys are refused (without it a
//! small-order key would let its owner pick outputs). A key with both a
//! prime-order and a small-order part is accepted, as the RFC's
//! `validate_key` does: the output is computed from `8 * Gamma`.
//!
//! ## What a batch can share
//!
//! The challenge `c` hashes the encodings of `U = s*B - c*Y` and
//! `V = s*H - c*Gamma`, so a verifier must compute both points of every
//! proof exactly; no random linear combination of many proofs' equations
//! can replace that (it would need proofs that carry `U` and `V`, like the
//! 128-byte "batch-compatible" proofs of IOG's draft-13 variant, which are
//! not RFC 9381 proofs). What a batch shares is the point compressions: the
//! encodings of `H`, `U`, `V` and `8 * Gamma` of a whole chunk take one
//! field inversion (Montgomery's trick) instead of one per proof. The rest
//! (two decompressions, the hash to the curve, the three scalar
//! multiplications) is per proof, and a large batch is spread over all
//! cores with rayon, with the GIL released.
//!
//! No function panics across the FFI boundary: wrong lengths raise
//! `ValueError` naming the argument; invalid keys and proofs give `None`.

mod ecvrf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;
use rayon::prelude::*;

use crate::ed25519::{bytes_like, each_item, fixed_like, thread_pool, threads_arg, BatchError};
pub use ecvrf::{ExpandedKey, Output, KEY_SIZE, OUTPUT_SIZE, PROOF_SIZE};

/// The largest chunk of a batch one worker verifies with one shared
/// inversion. An inversion is a few percent of one verification, so a
/// chunk of 64 has all of the gain.
const CHUNK: usize = 64;
/// Proofs below which a batch stays on the calling thread.
const MIN_PARALLEL: usize = 8;

/// The output of `prove(seed, alpha)` without the proof, for the studies.
pub fn output(key: &ExpandedKey, alpha: &[u8]) -> Output {
    ecvrf::output(key, alpha)
}

/// vrf_prove(seed, alpha) -> bytes
/// --
///
/// The 80-byte proof `Gamma || c || s` of `alpha` under the key of the
/// 32-byte Ed25519 `seed` (RFC 9381 §5.1). Deterministic.
#[pyfunction]
#[pyo3(signature = (seed, alpha))]
fn vrf_prove<'py>(
    py: Python<'py>,
    seed: &Bound<'py, PyAny>,
    alpha: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seed: [u8; KEY_SIZE] = fixed_like(seed, &|| "seed".into())?;
    let alpha = bytes_like(alpha, &|| "alpha".into())?;
    let pi = py.detach(|| ecvrf::prove(&ExpandedKey::from_seed(&seed), &alpha));
    Ok(PyBytes::new(py, &pi))
}

/// vrf_proof_to_hash(proof) -> bytes
/// --
///
/// The 64-byte output `beta` of an 80-byte proof (RFC 9381 §5.2), without
/// verifying it. ValueError when the proof does not decode (Gamma not a
/// canonical point, or s >= q).
#[pyfunction]
#[pyo3(signature = (proof,))]
fn vrf_proof_to_hash<'py>(
    py: Python<'py>,
    proof: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let pi: [u8; PROOF_SIZE] = fixed_like(proof, &|| "proof".into())?;
    match ecvrf::proof_to_hash(&pi) {
        Some(beta) => Ok(PyBytes::new(py, &beta)),
        None => Err(PyValueError::new_err(
            "proof does not decode: Gamma must be a canonical point and s below the group order",
        )),
    }
}

/// vrf_verify(public_key, alpha, proof) -> bytes | None
/// --
///
/// The 64-byte output when `proof` is valid for `alpha` under `public_key`
/// (RFC 9381 §5.3, with validate_key), else None.
#[pyfunction]
#[pyo3(signature = (public_key, alpha, proof))]
fn vrf_verify<'py>(
    py: Python<'py>,
    public_key: &Bound<'py, PyAny>,
    alpha: &Bound<'py, PyAny>,
    proof: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key: [u8; KEY_SIZE] = fixed_like(public_key, &|| "public_key".into())?;
    let alpha = bytes_like(alpha, &|| "alpha".into())?;
    let pi: [u8; PROOF_SIZE] = fixed_like(proof, &|| "proof".into())?;
    let beta = py.detach(|| ecvrf::verify(&key, &alpha, &pi));
    Ok(beta.map(|b| PyBytes::new(py, &b)))
}

/// One proof of a batch, its alpha held without a copy.
struct Entry {
    key: [u8; KEY_SIZE],
    alpha: PyBackedBytes,
    proof: [u8; PROOF_SIZE],
}

/// vrf_verify_batch(public_keys, alphas, proofs, threads=None) -> list[bytes | None]
/// --
///
/// `vrf_verify` of each triple. Sequences of equal length; the GIL is
/// released; chunks share their point compressions and run on `threads`
/// threads (None: all cores, 1: the calling thread).
#[pyfunction]
#[pyo3(signature = (public_keys, alphas, proofs, threads=None))]
fn vrf_verify_batch<'py>(
    py: Python<'py>,
    public_keys: &Bound<'py, PyAny>,
    alphas: &Bound<'py, PyAny>,
    proofs: &Bound<'py, PyAny>,
    threads: Option<i64>,
) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
    let threads = threads_arg(threads)?;
    let keys = each_item(public_keys, "public_keys", |x, name| {
        fixed_like::<KEY_SIZE>(x, name)
    })?;
    let alphas = each_item(alphas, "alphas", bytes_like)?;
    let proofs = each_item(proofs, "proofs", |x, name| {
        fixed_like::<PROOF_SIZE>(x, name)
    })?;
    if keys.len() != alphas.len() || keys.len() != proofs.len() {
        return Err(PyValueError::new_err(format!(
            "public_keys, alphas and proofs must have the same length, got {}, {} and {}",
            keys.len(),
            alphas.len(),
            proofs.len()
        )));
    }
    let entries: Vec<Entry> = keys
        .into_iter()
        .zip(alphas)
        .zip(proofs)
        .map(|((key, alpha), proof)| Entry { key, alpha, proof })
        .collect();
    let outputs = py.detach(|| verify_entries(&entries, threads))?;
    Ok(outputs
        .into_iter()
        .map(|o| o.map(|b| PyBytes::new(py, &b)))
        .collect())
}

/// The outputs of a chunk: one `verify_many`.
fn verify_chunk(entries: &[Entry]) -> Vec<Option<Output>> {
    let items: Vec<ecvrf::Item<'_>> = entries
        .iter()
        .map(|e| ecvrf::Item {
            public: &e.key,
            alpha: &e.alpha,
            proof: &e.proof,
        })
        .collect();
    ecvrf::verify_many(&items)
}

/// The outputs of all entries, chunks spread over up to `threads` threads.
fn verify_entries(
    entries: &[Entry],
    threads: Option<usize>,
) -> Result<Vec<Option<Output>>, BatchError> {
    let pool = match threads {
        Some(n) if n > 1 => Some(thread_pool(n)?),
        _ => None,
    };
    let workers = match (threads, &pool) {
        (Some(1), _) => 1,
        (_, Some(pool)) => pool.current_num_threads(),
        (_, None) => rayon::current_num_threads(),
    };
    if workers == 1 || entries.len() < MIN_PARALLEL {
        return Ok(entries.chunks(CHUNK).flat_map(verify_chunk).collect());
    }
    let chunk = entries.len().div_ceil(workers).clamp(1, CHUNK);
    let parallel = || -> Vec<Option<Output>> {
        entries
            .par_chunks(chunk)
            .flat_map_iter(verify_chunk)
            .collect()
    };
    Ok(match pool {
        Some(pool) => pool.install(parallel),
        None => parallel(),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(vrf_prove, m)?)?;
    m.add_function(wrap_pyfunction!(vrf_proof_to_hash, m)?)?;
    m.add_function(wrap_pyfunction!(vrf_verify, m)?)?;
    m.add_function(wrap_pyfunction!(vrf_verify_batch, m)?)?;
    m.add("VRF_PROOF_SIZE", PROOF_SIZE)?;
    m.add("VRF_OUTPUT_SIZE", OUTPUT_SIZE)?;
    m.add("VRF_SUITE", ecvrf::SUITE)?;
    Ok(())
}
