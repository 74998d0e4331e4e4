//! Ed25519 signature verification under the ZIP 215 rule (PROTOCOL §2).
//!
//! ZIP 215 is one rule for single and batch verification: the cofactored
//! equation `[8][S]B = [8]R + [8][k]A`, point encodings of `A` and `R`
//! decoded even when non-canonical, small-order points allowed, and `S < L`
//! required. `ed25519-zebra` implements it, and under it a batch agrees
//! with single verification: a valid signature makes its term of the batch
//! equation vanish whatever its random coefficient, so a batch of valid
//! signatures always passes; a batch holding an invalid signature fails
//! except with negligible probability (about 2^-128) over the coefficients,
//! which is why they come from fresh OS randomness.
//!
//! `verify_batch` gives every signature its own answer: a failing batch is
//! split in halves, and the failing halves split again, until each invalid
//! signature is isolated (where invalid signatures are dense, the remaining
//! ones are verified one by one). One bad signature costs a few extra
//! batches, never a wholesale rejection. Large batches are cut into chunks
//! verified in parallel with rayon, with the GIL released.
//!
//! Two implementations check a chunk, chosen at run time. On a CPU with
//! AVX-512 IFMA, `lanes` verifies eight signatures per vector lane (its own
//! decoding, tables, multiscalar multiplication and SHA-512, in `ifma`),
//! one sum per lane, so a failing chunk is narrowed down eight groups at a
//! time; elsewhere, and for chunks of fewer than `LANES_MIN` signatures,
//! ed25519-zebra's batch equation does, as described above. Both give every
//! signature ed25519-zebra's single-verification answer; `differential`
//! compares the lanes with it on generated edge cases (`cargo test`, and
//! `echorand bench verify --differential N` for long runs). `verify`, one
//! signature, is ed25519-zebra's on every CPU.
//!
//! `is_valid_account_key` is the ledger's stricter check on a key that is to
//! own an account: canonical encoding, not a small-order point.

mod differential;
mod ifma;
mod lanes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_zebra::batch;
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use rand::rngs::{StdRng, SysError, SysRng};
use rand::SeedableRng;
use rayon::prelude::*;

/// Bytes in a public key (a compressed Edwards point).
const KEY_SIZE: usize = 32;
/// Bytes in a signature: `R` (32) then `S` (32).
const SIGNATURE_SIZE: usize = 64;
/// Signatures per batch handed to one worker. A multiscalar multiplication
/// of a few hundred points has most of the batch speed-up, and a bad
/// signature costs extra batches only inside its own chunk.
const CHUNK: usize = 256;
/// The shortest chunk worth a thread of its own: a batch of 32 costs as much
/// per signature as a batch of 64 (both use Straus's method), so a batch of
/// 64 on two cores takes half the time.
const MIN_CHUNK: usize = 32;
/// The fewest signatures worth the lane path: a run costs about the same
/// for one signature per lane as for one in all, and below this single
/// verification is cheaper.
const LANES_MIN: usize = 3;
/// The most threads a caller may ask for.
const MAX_THREADS: usize = 1024;

/// One signature to check: the key and signature copied into fixed arrays,
/// the message held without a copy.
struct Entry {
    key: [u8; KEY_SIZE],
    sig: [u8; SIGNATURE_SIZE],
    msg: PyBackedBytes,
}

/// Why a batch could not be checked at all (not "a signature is invalid").
#[derive(Debug)]
pub(crate) enum BatchError {
    /// The OS random source failed; batch coefficients must be unpredictable.
    Randomness(SysError),
    /// A thread pool of the requested size could not be started.
    ThreadPool(String),
}

impl From<BatchError> for PyErr {
    fn from(err: BatchError) -> PyErr {
        match err {
            BatchError::Randomness(e) => {
                PyRuntimeError::new_err(format!("cannot read OS randomness: {e}"))
            }
            BatchError::ThreadPool(e) => {
                PyRuntimeError::new_err(format!("cannot start a verification thread pool: {e}"))
            }
        }
    }
}

/// Verify one signature under ZIP 215.
///
/// Raises `ValueError` when `public_key` is not 32 bytes or `signature` is
/// not 64; an invalid key or signature of the right length gives `False`.
#[pyfunction]
#[pyo3(signature = (public_key, message, signature))]
fn verify(
    py: Python<'_>,
    public_key: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
    signature: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let entry = Entry {
        key: fixed_like(public_key, &|| "public_key".into())?,
        sig: fixed_like(signature, &|| "signature".into())?,
        msg: bytes_like(message, &|| "message".into())?,
    };
    Ok(py.detach(|| verify_one(&entry)))
}

/// Verify many signatures under ZIP 215, one answer per signature.
///
/// `public_keys`, `messages` and `signatures` are sequences of equal length
/// of bytes-like items (keys 32 bytes, signatures 64). The result is the
/// list of what `verify` gives for each triple, computed by batch
/// verification with fresh OS randomness for the coefficients. `threads`
/// sets the worker threads: `None` for rayon's global pool (all cores), `1`
/// for the calling thread alone, `n` for a pool of `n` threads (built once).
/// `backend` picks the implementation (`Backend`): `None` as the CPU allows,
/// `"portable"` or `"avx512ifma"` to make the tests run both on one machine
/// (`ValueError` for another name, or for `"avx512ifma"` on a CPU without).
#[pyfunction]
#[pyo3(signature = (public_keys, messages, signatures, threads=None, backend=None))]
fn verify_batch(
    py: Python<'_>,
    public_keys: &Bound<'_, PyAny>,
    messages: &Bound<'_, PyAny>,
    signatures: &Bound<'_, PyAny>,
    threads: Option<i64>,
    backend: Option<&str>,
) -> PyResult<Vec<bool>> {
    let backend = match backend {
        None => Backend::Auto,
        Some("portable") => Backend::Portable,
        Some("avx512ifma") if ifma::available() => Backend::Lanes,
        Some("avx512ifma") => {
            return Err(PyValueError::new_err(
                "backend 'avx512ifma' needs AVX-512 IFMA, which this CPU does not have",
            ))
        }
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "backend must be 'portable' or 'avx512ifma', got {other:?}"
            )))
        }
    };
    let threads = threads_arg(threads)?;
    let keys = each_item(public_keys, "public_keys", |x, name| {
        fixed_like::<KEY_SIZE>(x, name)
    })?;
    let msgs = each_item(messages, "messages", bytes_like)?;
    let sigs = each_item(signatures, "signatures", |x, name| {
        fixed_like::<SIGNATURE_SIZE>(x, name)
    })?;
    if keys.len() != msgs.len() || keys.len() != sigs.len() {
        return Err(PyValueError::new_err(format!(
            "public_keys, messages and signatures must have the same length, got {}, {} and {}",
            keys.len(),
            msgs.len(),
            sigs.len()
        )));
    }
    let entries: Vec<Entry> = keys
        .into_iter()
        .zip(msgs)
        .zip(sigs)
        .map(|((key, msg), sig)| Entry { key, sig, msg })
        .collect();
    Ok(py.detach(|| verify_entries(&entries, threads, backend))?)
}

/// The `threads` argument of a batch call: `None` (rayon's global pool) or
/// a count in `1 ..= MAX_THREADS`.
pub(crate) fn threads_arg(threads: Option<i64>) -> PyResult<Option<usize>> {
    match threads {
        None => Ok(None),
        Some(t) => match usize::try_from(t) {
            Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(Some(n)),
            _ => Err(PyValueError::new_err(format!(
                "threads must be between 1 and {MAX_THREADS}, got {t}"
            ))),
        },
    }
}

/// Whether `public_key` may own an account (PROTOCOL §2).
///
/// `False` for an encoding that does not decode to a curve point; for a
/// non-canonical encoding (`y >= p`, or `x = 0` with the sign bit set: the
/// re-encoded point differs), a second spelling of a point that would let
/// one key own two accounts; and for the eight small-order points, for
/// which signatures verify without any secret. Points with both a
/// prime-order and a small-order component are keys like any other for
/// ZIP 215 (its cofactored equation clears the small-order part) and are
/// accepted.
#[pyfunction]
#[pyo3(signature = (public_key,))]
fn is_valid_account_key(public_key: &Bound<'_, PyAny>) -> PyResult<bool> {
    let key: [u8; KEY_SIZE] = fixed_like(public_key, &|| "public_key".into())?;
    let encoded = CompressedEdwardsY(key);
    Ok(match encoded.decompress() {
        Some(point) => point.compress() == encoded && !point.is_small_order(),
        None => false,
    })
}

/// Which code checks batches on this CPU: `"avx512ifma"`, eight signatures
/// per vector lane (`lanes`), or `"portable"`, ed25519-zebra's batch
/// equation. Single verification is ed25519-zebra's on every CPU.
#[pyfunction]
fn verify_backend() -> &'static str {
    if ifma::available() {
        "avx512ifma"
    } else {
        "portable"
    }
}

/// The lane verifier against ed25519-zebra's single verification on at
/// least `cases` generated signatures (`differential`), on all cores with
/// the GIL released: a dict with `cases`, `batches`, `accepted`, `by_kind`
/// (kind name to `(cases, accepted)`) and `disagreements` (a list of dicts
/// with the case's `kind`, `public_key`, `message`, `signature`, and the
/// `zebra` and `lanes` answers; empty when they agree on everything).
/// `RuntimeError` on a CPU without AVX-512 IFMA, where the lanes are not
/// used.
#[pyfunction]
#[pyo3(signature = (cases, seed=1))]
fn verify_differential<'py>(
    py: Python<'py>,
    cases: u64,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let Some(tally) = py.detach(|| differential::run(cases, seed)) else {
        return Err(PyRuntimeError::new_err(
            "this CPU has no AVX-512 IFMA: batches take the portable path",
        ));
    };
    let out = PyDict::new(py);
    out.set_item("cases", tally.cases)?;
    out.set_item("batches", tally.batches)?;
    out.set_item("accepted", tally.accepted)?;
    let by_kind = PyDict::new(py);
    for (kind, counts) in differential::Kind::ALL.iter().zip(&tally.by_kind) {
        by_kind.set_item(kind.name(), *counts)?;
    }
    out.set_item("by_kind", by_kind)?;
    let disagreements = PyList::empty(py);
    for d in &tally.disagreements {
        let item = PyDict::new(py);
        item.set_item("kind", d.case.kind.name())?;
        item.set_item("public_key", PyBytes::new(py, &d.case.key))?;
        item.set_item("message", PyBytes::new(py, &d.case.msg))?;
        item.set_item("signature", PyBytes::new(py, &d.case.sig))?;
        item.set_item("zebra", d.zebra)?;
        item.set_item("lanes", d.lanes)?;
        disagreements.append(item)?;
    }
    out.set_item("disagreements", disagreements)?;
    Ok(out)
}

/// ZIP 215 verification of one entry.
fn verify_one(entry: &Entry) -> bool {
    VerificationKey::try_from(entry.key)
        .and_then(|vk| vk.verify(&Signature::from_bytes(&entry.sig), &entry.msg))
        .is_ok()
}

/// Which implementation checks a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// The lanes on a CPU with AVX-512 IFMA for chunks of at least
    /// `LANES_MIN` signatures, ed25519-zebra's batch equation otherwise.
    Auto,
    /// ed25519-zebra's batch equation for every chunk.
    Portable,
    /// The lanes for every chunk, however short (chosen only after checking
    /// that the CPU has AVX-512 IFMA).
    Lanes,
}

/// The answers for all entries: chunks verified on up to `threads` threads.
fn verify_entries(
    entries: &[Entry],
    threads: Option<usize>,
    backend: Backend,
) -> Result<Vec<bool>, BatchError> {
    let pool = match threads {
        Some(1) => None,
        Some(n) => Some(thread_pool(n)?),
        None => None,
    };
    let workers = match (threads, &pool) {
        (Some(1), _) => 1,
        (_, Some(pool)) => pool.current_num_threads(),
        (_, None) => rayon::current_num_threads(),
    };
    let chunk = chunk_len(entries.len(), workers);
    let parallel = || -> Result<Vec<Vec<bool>>, BatchError> {
        entries
            .par_chunks(chunk)
            .map(|c| verify_chunk(c, backend))
            .collect()
    };
    let answers = if workers == 1 || entries.len() <= chunk {
        entries
            .chunks(chunk)
            .map(|c| verify_chunk(c, backend))
            .collect::<Result<Vec<_>, _>>()?
    } else if let Some(pool) = pool {
        pool.install(parallel)?
    } else {
        parallel()?
    };
    Ok(answers.concat())
}

/// The length of the chunks that `n` signatures are cut into: at most
/// `CHUNK`, and short enough to give each of `workers` threads a chunk as
/// long as a chunk keeps `MIN_CHUNK` signatures. Chunks are of equal length
/// (the last one shorter by the remainder).
fn chunk_len(n: usize, workers: usize) -> usize {
    let chunks = n.div_ceil(CHUNK).max(workers.min(n / MIN_CHUNK)).max(1);
    n.div_ceil(chunks).max(1)
}

/// A rayon pool of `n` threads, built on first use and kept.
pub(crate) fn thread_pool(n: usize) -> Result<Arc<rayon::ThreadPool>, BatchError> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pool) = pools.get(&n) {
        return Ok(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("echorand-verify-{i}"))
        .build()
        .map_err(|e| BatchError::ThreadPool(e.to_string()))?;
    let pool = Arc::new(pool);
    pools.insert(n, Arc::clone(&pool));
    Ok(pool)
}

/// The answers for one chunk: eight signatures per vector lane (`lanes`)
/// where `backend` allows it (by default on a CPU with AVX-512 IFMA and for
/// at least `LANES_MIN` signatures); otherwise one batch, narrowed down
/// when it fails.
fn verify_chunk(entries: &[Entry], backend: Backend) -> Result<Vec<bool>, BatchError> {
    let mut rng = StdRng::try_from_rng(&mut SysRng).map_err(BatchError::Randomness)?;
    let lanes = match backend {
        Backend::Auto => entries.len() >= LANES_MIN,
        Backend::Portable => false,
        Backend::Lanes => true,
    };
    if lanes {
        let items: Vec<lanes::Item<'_>> = entries
            .iter()
            .map(|e| lanes::Item {
                key: &e.key,
                sig: &e.sig,
                msg: &e.msg,
            })
            .collect();
        if let Some(answers) = lanes::verify(&items, &mut rng) {
            return Ok(answers);
        }
    }
    // k = H(R || A || M) is hashed once here and reused by every sub-batch.
    let items: Vec<batch::Item> = entries
        .iter()
        .map(|e| {
            batch::Item::from((
                VerificationKeyBytes::from(e.key),
                Signature::from_bytes(&e.sig),
                &e.msg[..],
            ))
        })
        .collect();
    let mut answers = vec![false; entries.len()];
    let all: Vec<usize> = (0..entries.len()).collect();
    if passes(&items, &all, &mut rng) {
        answers.fill(true);
        return Ok(answers);
    }
    // Something is invalid. A signature with S >= L is invalid on its own
    // and cheap to spot: leave it out of the narrowing.
    let candidates: Vec<usize> = all
        .into_iter()
        .filter(|&i| s_is_canonical(&entries[i]))
        .collect();
    let known_to_fail = candidates.len() == entries.len();
    narrow(&items, &candidates, known_to_fail, &mut answers, &mut rng);
    Ok(answers)
}

/// Set `answers[i]` for every `i` in `subset` (all start `false`).
///
/// `known_to_fail` says the batch of `subset` is already known to hold an
/// invalid signature. A failing batch is split in halves: when one half
/// passes, the invalid signatures are in the other, which is narrowed down
/// the same way. When both halves fail, invalid signatures are dense here,
/// and each one is verified alone: that bounds the work an adversary can
/// cause to about twice what single verification would cost.
fn narrow(
    items: &[batch::Item],
    subset: &[usize],
    known_to_fail: bool,
    answers: &mut [bool],
    rng: &mut StdRng,
) {
    if subset.is_empty() || (known_to_fail && subset.len() == 1) {
        // A lone signature known to fail is the invalid one.
        return;
    }
    if !known_to_fail && passes(items, subset, rng) {
        mark_valid(answers, subset);
        return;
    }
    if subset.len() == 1 {
        return;
    }
    let (left, right) = subset.split_at(subset.len() / 2);
    if passes(items, left, rng) {
        mark_valid(answers, left);
        narrow(items, right, true, answers, rng);
    } else if passes(items, right, rng) {
        mark_valid(answers, right);
        narrow(items, left, true, answers, rng);
    } else {
        for &i in subset {
            answers[i] = passes(items, &[i], rng);
        }
    }
}

fn mark_valid(answers: &mut [bool], subset: &[usize]) {
    for &i in subset {
        answers[i] = true;
    }
}

/// Whether the items at `subset` all verify: one batch verification, or a
/// single verification for one item (cheaper than a batch of one).
fn passes(items: &[batch::Item], subset: &[usize], rng: &mut StdRng) -> bool {
    if let [i] = subset {
        return items[*i].clone().verify_single().is_ok();
    }
    let mut verifier = batch::Verifier::new();
    for &i in subset {
        verifier.queue(items[i].clone());
    }
    verifier.verify(rng).is_ok()
}

/// Whether the signature's `S` is below the group order `L` (ZIP 215 and
/// RFC 8032 both require it).
fn s_is_canonical(entry: &Entry) -> bool {
    let sig = Signature::from_bytes(&entry.sig);
    bool::from(Scalar::from_canonical_bytes(*sig.s_bytes()).is_some())
}

/// How an argument is named in an error message; called only on error, so
/// that the hot path formats nothing.
pub(crate) type Name<'a> = &'a dyn Fn() -> String;

/// `obj` as bytes without a copy (`bytes`), or copied once (`bytearray`,
/// other buffers such as `memoryview`).
pub(crate) fn bytes_like(obj: &Bound<'_, PyAny>, name: Name<'_>) -> PyResult<PyBackedBytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(PyBackedBytes::from(b.clone()));
    }
    if let Ok(b) = obj.extract::<PyBackedBytes>() {
        return Ok(b);
    }
    match PyBuffer::<u8>::get(obj) {
        Ok(buffer) => {
            let copy = buffer.to_vec(obj.py())?;
            Ok(PyBackedBytes::from(PyBytes::new(obj.py(), &copy)))
        }
        Err(_) => Err(PyTypeError::new_err(format!(
            "{} must be bytes-like, not {}",
            name(),
            obj.get_type().name()?
        ))),
    }
}

/// A bytes-like `obj` of exactly `N` bytes, copied into an array, or a
/// `ValueError` naming it.
pub(crate) fn fixed_like<const N: usize>(
    obj: &Bound<'_, PyAny>,
    name: Name<'_>,
) -> PyResult<[u8; N]> {
    let wrong =
        |len: usize| PyValueError::new_err(format!("{} must be {N} bytes, got {len}", name()));
    if let Ok(b) = obj.cast::<PyBytes>() {
        let bytes = b.as_bytes();
        return <[u8; N]>::try_from(bytes).map_err(|_| wrong(bytes.len()));
    }
    let bytes = bytes_like(obj, name)?;
    <[u8; N]>::try_from(&bytes[..]).map_err(|_| wrong(bytes.len()))
}

/// `convert` applied to each item of a sequence (lists and tuples directly,
/// any other iterable through the iterator protocol), with the item's name
/// `name[i]` for its errors.
pub(crate) fn each_item<'py, T>(
    seq: &Bound<'py, PyAny>,
    name: &str,
    convert: impl Fn(&Bound<'py, PyAny>, Name<'_>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    let at = |i: usize, item: &Bound<'py, PyAny>| convert(item, &|| format!("{name}[{i}]"));
    if let Ok(list) = seq.cast::<PyList>() {
        return list.iter().enumerate().map(|(i, x)| at(i, &x)).collect();
    }
    if let Ok(tuple) = seq.cast::<PyTuple>() {
        return tuple.iter().enumerate().map(|(i, x)| at(i, &x)).collect();
    }
    if seq.is_instance_of::<PyBytes>() || seq.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a sequence of bytes, not a single {}",
            seq.get_type().name()?
        )));
    }
    seq.try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!("{name} must be a sequence of bytes-like items"))
        })?
        .enumerate()
        .map(|(i, x)| at(i, &x?))
        .collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_account_key, m)?)?;
    m.add_function(wrap_pyfunction!(verify_backend, m)?)?;
    m.add_function(wrap_pyfunction!(verify_differential, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_at_most_chunk_long_and_feed_every_worker() {
        assert_eq!(chunk_len(0, 2), 1);
        assert_eq!(chunk_len(1, 2), 1);
        assert_eq!(chunk_len(63, 2), 63); // too short to share
        assert_eq!(chunk_len(64, 2), 32);
        assert_eq!(chunk_len(64, 1), 64);
        assert_eq!(chunk_len(256, 1), 256);
        assert_eq!(chunk_len(257, 1), 129);
        assert_eq!(chunk_len(600, 2), 200);
        assert_eq!(chunk_len(1024, 2), 256);
        assert_eq!(chunk_len(1024, 16), 64);
        for n in 1..3000 {
            for workers in [1, 2, 3, 8, 64] {
                let len = chunk_len(n, workers);
                assert!((1..=CHUNK).contains(&len), "n={n} workers={workers}");
                let chunks = n.div_ceil(len);
                assert!(
                    chunks == 1 || len >= MIN_CHUNK.min(n),
                    "n={n} workers={workers}"
                );
            }
        }
    }
}
