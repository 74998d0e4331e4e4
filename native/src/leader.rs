//! The permissioned leader order of PROTOCOL §7 and the experiment of the
//! round-robin study (seed 002), for Python:
//!
//! - `leader_order(n_validators, locked_ids, height, seed=None)`: the order of
//!   one height, as `echorand.protocol.leader.round_robin_order` (the reference);
//! - `LeaderStudy(n_validators, byzantine, *, slow_honest=None, seed=None)`:
//!   the study's loop over heights, resumable, `run(blocks)` releasing the GIL.

mod order;
mod study;

use std::collections::BTreeSet;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict};

use crate::chain::args::{describe, int_arg, seed_array, to_u64, type_name, NotU64};
use order::{hash_height, hash_seeded, order_of, words_from_bytes, Words, MAX_VALIDATORS};
use study::{Rule, Source, Study, StudyError};

impl From<StudyError> for PyErr {
    fn from(e: StudyError) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// The bytes of words.
fn words_bytes(words: &Words) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// The locked ids as a mask over `0 .. n`, or an error naming the bad ones.
fn locked_mask(locked_ids: &Bound<'_, PyAny>, n: usize, f: usize) -> PyResult<Vec<bool>> {
    let mut locked = BTreeSet::new();
    let mut bad = Vec::new();
    for item in locked_ids.try_iter()? {
        let item = item?;
        match to_u64(&item) {
            Ok(v) if v < n as u64 => {
                locked.insert(v as usize);
            }
            Err(NotU64::NotInt) => {
                return Err(PyTypeError::new_err(format!(
                    "locked ids must be ints, got {}",
                    type_name(&item)
                )))
            }
            _ => bad.push(describe(&item)),
        }
    }
    if !bad.is_empty() {
        return Err(PyValueError::new_err(format!(
            "locked ids out of range 0..{}: [{}]",
            n - 1,
            bad.join(", ")
        )));
    }
    if locked.len() > f {
        return Err(PyValueError::new_err(format!(
            "at most F={f} validators can be locked, got {}",
            locked.len()
        )));
    }
    let mut mask = vec![false; n];
    for v in locked {
        mask[v] = true;
    }
    Ok(mask)
}

/// leader_order(n_validators, locked_ids, height, seed=None) -> list[int]
/// --
///
/// The proposer order of `height` (PROTOCOL §7), F = (N - 1) // 3: the ids
/// 0 .. N-1 not in `locked_ids` (at most F of them), ascending, permuted by
/// the T-th lexicographic permutation, T = int_be(H(u32be(height))) mod (N - F)!
/// exactly; with `seed` (32 bytes, Q[r-1], `height` the round r, a u64),
/// T = int_be(H(Q[r-1] || u64be(r))) mod (N - F)!. N <= LEADER_MAX_VALIDATORS.
#[pyfunction]
#[pyo3(signature = (n_validators, locked_ids, height, seed=None))]
fn leader_order(
    n_validators: &Bound<'_, PyAny>,
    locked_ids: &Bound<'_, PyAny>,
    height: &Bound<'_, PyAny>,
    seed: Option<PyBackedBytes>,
) -> PyResult<Vec<usize>> {
    let n = int_arg(n_validators, "n_validators", 1, MAX_VALIDATORS as u64)? as usize;
    let f = (n - 1) / 3;
    let locked = locked_mask(locked_ids, n, f)?;
    let value = match seed {
        None => hash_height(int_arg(height, "height", 0, u32::MAX.into())? as u32),
        Some(seed) => {
            let q = words_from_bytes(&seed_array(&seed)?);
            hash_seeded(&q, int_arg(height, "height", 0, u64::MAX)?)
        }
    };
    Ok(order_of(n, f, &locked, &value)
        .into_iter()
        .map(usize::from)
        .collect())
}

/// LeaderStudy(n_validators, byzantine, *, slow_honest=None, seed=None)
/// --
///
/// The experiment of the round-robin study (seed 002): validators 0 .. N-1,
/// the first `byzantine` (F) of them Byzantine; each block's author is locked
/// for the next F heights; the others are permuted as in PROTOCOL §7 with
/// (N - F)!. The author is the first of the order, or with `slow_honest=K`,
/// the first Byzantine validator met at a position <= K, else the first of
/// the order. With `seed` (32 bytes, Q[0]), step i uses round r = i + 1 and
/// T = int_be(H(Q[r-1] || u64be(r))), the seeds chaining Q[r] = H(Q[r-1] || u64be(r)).
#[pyclass(module = "echorand._native", name = "LeaderStudy")]
struct PyLeaderStudy {
    study: Study,
}

#[pymethods]
impl PyLeaderStudy {
    #[new]
    #[pyo3(signature = (n_validators, byzantine, *, slow_honest=None, seed=None))]
    fn new(
        n_validators: &Bound<'_, PyAny>,
        byzantine: &Bound<'_, PyAny>,
        slow_honest: Option<&Bound<'_, PyAny>>,
        seed: Option<PyBackedBytes>,
    ) -> PyResult<Self> {
        let n = int_arg(n_validators, "n_validators", 1, MAX_VALIDATORS as u64)? as usize;
        let f = int_arg(byzantine, "byzantine", 0, MAX_VALIDATORS as u64)? as usize;
        let rule = match slow_honest {
            None => Rule::Quick,
            Some(k) => Rule::SlowHonest(int_arg(k, "slow_honest", 0, u64::MAX)?),
        };
        let source = match seed {
            None => Source::Height,
            Some(seed) => Source::Seeded(words_from_bytes(&seed_array(&seed)?)),
        };
        Ok(Self {
            study: Study::new(n, f, rule, source)?,
        })
    }

    /// run(blocks) -> bytes
    /// --
    ///
    /// Runs `blocks` more heights (the GIL released) and returns their authors,
    /// one byte each. Unseeded heights must stay below 2**32.
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        blocks: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let blocks = int_arg(blocks, "blocks", 0, u64::MAX)?;
        self.study.check(blocks)?;
        let len = usize::try_from(blocks)
            .map_err(|_| PyValueError::new_err(format!("blocks {blocks} do not fit memory")))?;
        let study = &mut self.study;
        PyBytes::new_with(py, len, |out| {
            // The bytes object is not visible to Python until we return: nothing else touches `out`.
            py.detach(|| study.advance(out)).map_err(PyErr::from)
        })
    }

    /// Heights run so far.
    #[getter]
    fn height(&self) -> u64 {
        self.study.height()
    }

    #[getter]
    fn n_validators(&self) -> usize {
        self.study.n()
    }

    #[getter]
    fn byzantine(&self) -> usize {
        self.study.f()
    }

    /// K, or None when every validator is quick.
    #[getter]
    fn slow_honest(&self) -> Option<u64> {
        match self.study.rule() {
            Rule::Quick => None,
            Rule::SlowHonest(k) => Some(k),
        }
    }

    /// Q of the next step (seeded variant), else None.
    #[getter]
    fn seed<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.study.seed().map(|q| PyBytes::new(py, &words_bytes(q)))
    }

    /// counts[v][p]: heights where validator v stood at position p < N - F.
    #[getter]
    fn counts(&self) -> Vec<Vec<u64>> {
        self.study.counts().map(<[u64]>::to_vec).collect()
    }

    /// Blocks authored by each validator.
    #[getter]
    fn author_counts(&self) -> Vec<u64> {
        self.study.author_counts().to_vec()
    }

    /// {wait: heights}: the blocks from a height to the next honest block.
    #[getter]
    fn wait_histogram<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (wait, count) in self.study.waits() {
            out.set_item(wait, count)?;
        }
        Ok(out)
    }

    /// Heights with no later honest block yet: not in the wait histogram.
    #[getter]
    fn dropped_tail(&self) -> u64 {
        self.study.tail()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(leader_order, m)?)?;
    m.add_class::<PyLeaderStudy>()?;
    m.add("LEADER_MAX_VALIDATORS", MAX_VALIDATORS)?;
    Ok(())
}
