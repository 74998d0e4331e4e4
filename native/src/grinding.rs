//! The seed-grinding study (`echorand sim grinding`) for Python:
//!
//! - `GrindingStudy(table, coalition, secrets, *, kind, candidates, objective,
//!   step, seats, genesis_hash, seed)`: the loop of `grinding/study.rs`,
//!   resumable; `run(rounds)` and `trace(rounds)` release the GIL, and a
//!   coalition leader's `k` candidates are signed and scored on all cores;
//! - `grinding_signatures(seed, message, count)`: the candidates a grinding
//!   signer makes (`grinding/signer.rs`), for the tests to verify.

mod signer;
mod study;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::chain::args::{int_arg, seed_array, to_u64, type_name};
use crate::ed25519::{bytes_like, fixed_like};
use crate::stake::{StakeTable, MAX_SEATS};
use crate::vrf::ExpandedKey;
use study::{Config, Kind, Objective, Study};

/// Most candidates a coalition leader may try in one round.
pub const MAX_CANDIDATES: usize = 1 << 20;

/// grinding_signatures(seed, message, count) -> bytes
/// --
///
/// `count` Ed25519 signatures of `message` by the key of the 32-byte `seed`,
/// 64 bytes each, with the nonces r0 + j (r0 RFC 8032's): the first is the
/// standard signature, every one verifies.
#[pyfunction]
#[pyo3(signature = (seed, message, count))]
fn grinding_signatures<'py>(
    py: Python<'py>,
    seed: &Bound<'py, PyAny>,
    message: &Bound<'py, PyAny>,
    count: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seed: [u8; 32] = fixed_like(seed, &|| "seed".into())?;
    let message = bytes_like(message, &|| "message".into())?;
    let count = int_arg(count, "count", 0, MAX_CANDIDATES as u64)? as usize;
    let sigs = py.detach(|| {
        let key = ExpandedKey::from_seed(&seed);
        let r0 = signer::standard_nonce(&key, &message);
        signer::candidates(&key, &message, r0, 0, count)
    });
    Ok(PyBytes::new(py, &sigs.concat()))
}

fn kind_arg(kind: &str) -> PyResult<Kind> {
    match kind {
        "signature" => Ok(Kind::Signature),
        "vrf" => Ok(Kind::Vrf),
        _ => Err(PyValueError::new_err(format!(
            "kind must be 'signature' or 'vrf', got {kind:?}"
        ))),
    }
}

fn objective_arg(objective: &str) -> PyResult<Objective> {
    match objective {
        "seats" => Ok(Objective::Seats),
        "lead" => Ok(Objective::Lead),
        _ => Err(PyValueError::new_err(format!(
            "objective must be 'seats' or 'lead', got {objective:?}"
        ))),
    }
}

/// The coalition's accounts as a mask over `0 .. n`.
fn coalition_mask(coalition: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<bool>> {
    let mut mask = vec![false; n];
    for item in coalition.try_iter()? {
        let item = item?;
        match to_u64(&item) {
            Ok(id) if id < n as u64 => mask[id as usize] = true,
            Ok(id) => {
                return Err(PyValueError::new_err(format!(
                    "coalition account {id} is not in the table of {n} accounts"
                )))
            }
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "coalition accounts must be ints, got {}",
                    type_name(&item)
                )))
            }
        }
    }
    Ok(mask)
}

/// GrindingStudy(table, coalition, secrets, *, kind, candidates, objective, step, seats, genesis_hash, seed)
/// --
///
/// Rounds of leaders and seeds over a snapshot of `table` (PROTOCOL §3, §4):
/// the leader of round r is the account of seat 0 of step 1 from Q[r-1];
/// the coalition (account ids) leads when it holds that seat. `secrets` is
/// the accounts' Ed25519 seeds, 32 bytes each in id order. `kind`
/// 'signature': Q[r] = H(S || u64be(r)), S a signature of the seed payload
/// (tag, genesis_hash, r, Q[r-1]); a coalition leader signs `candidates`
/// times and keeps the seed best for round r + 1 by `objective` ('seats':
/// its seats in the committee of `step`, `seats` seats; 'lead': leading
/// r + 1, then seats). `kind` 'vrf': Q[r] = H(beta || u64be(r)), beta the
/// ECVRF output of the payload, one candidate. `seed` is Q[0].
#[pyclass(module = "echorand._native", name = "GrindingStudy")]
struct PyGrindingStudy {
    study: Study,
}

#[pymethods]
impl PyGrindingStudy {
    #[new]
    #[pyo3(signature = (table, coalition, secrets, *, kind, candidates, objective, step, seats, genesis_hash, seed))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        table: PyRef<'_, StakeTable>,
        coalition: &Bound<'_, PyAny>,
        secrets: &Bound<'_, PyAny>,
        kind: &str,
        candidates: &Bound<'_, PyAny>,
        objective: &str,
        step: &Bound<'_, PyAny>,
        seats: &Bound<'_, PyAny>,
        genesis_hash: &Bound<'_, PyAny>,
        seed: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let stakes = table.stakes_snapshot(table.py())?;
        let n = stakes.len();
        let secrets = bytes_like(secrets, &|| "secrets".into())?;
        if secrets.len() != 32 * n {
            return Err(PyValueError::new_err(format!(
                "secrets must be 32 bytes per account ({} for {n} accounts), got {}",
                32 * n,
                secrets.len()
            )));
        }
        let secrets: Vec<[u8; 32]> = secrets
            .chunks_exact(32)
            .map(|c| {
                let mut s = [0u8; 32];
                s.copy_from_slice(c);
                s
            })
            .collect();
        let config = Config {
            kind: kind_arg(kind)?,
            candidates: int_arg(candidates, "candidates", 1, MAX_CANDIDATES as u64)? as usize,
            objective: objective_arg(objective)?,
            step: int_arg(step, "step", 2, u32::MAX.into())? as u32,
            seats: int_arg(seats, "seats", 1, MAX_SEATS as u64)? as usize,
            genesis_hash: seed_array(&bytes_like(genesis_hash, &|| "genesis_hash".into())?)
                .map_err(|_| PyValueError::new_err("genesis_hash must be 32 bytes"))?,
        };
        let seed = seed_array(&bytes_like(seed, &|| "seed".into())?)?;
        let mask = coalition_mask(coalition, n)?;
        let study = Study::new(stakes, mask, secrets, config, seed)?;
        Ok(Self { study })
    }

    /// run(rounds) -> None
    /// --
    ///
    /// Runs `rounds` more rounds with the GIL released.
    fn run(&mut self, py: Python<'_>, rounds: &Bound<'_, PyAny>) -> PyResult<()> {
        let rounds = int_arg(rounds, "rounds", 0, u64::MAX - self.study.tallies().rounds)?;
        let study = &mut self.study;
        py.detach(|| study.run(rounds, None));
        Ok(())
    }

    /// trace(rounds) -> list[tuple[int, bytes, bytes]]
    /// --
    ///
    /// Runs `rounds` more rounds and returns, for each, its leader, the 64
    /// bytes its seed hashes (S or beta) and the seed Q[r].
    fn trace<'py>(
        &mut self,
        py: Python<'py>,
        rounds: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let rounds = int_arg(rounds, "rounds", 0, 1 << 20)?;
        let study = &mut self.study;
        let mut records = Vec::with_capacity(rounds as usize);
        py.detach(|| study.run(rounds, Some(&mut records)));
        records
            .into_iter()
            .map(|r| {
                (
                    r.leader,
                    PyBytes::new(py, &r.published),
                    PyBytes::new(py, &r.seed),
                )
                    .into_pyobject(py)
            })
            .collect()
    }

    /// Rounds run so far.
    #[getter]
    fn rounds(&self) -> u64 {
        self.study.tallies().rounds
    }

    /// Rounds the coalition led.
    #[getter]
    fn leaderships(&self) -> u64 {
        self.study.tallies().leaderships
    }

    /// The coalition's seats in the committees of `step`, all rounds.
    #[getter]
    fn coalition_seats(&self) -> u64 {
        self.study.tallies().coalition_seats
    }

    /// Rounds whose seed the coalition chose among more than one candidate.
    #[getter]
    fn ground_rounds(&self) -> u64 {
        self.study.tallies().ground
    }

    /// Q of the next round.
    #[getter]
    fn seed<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.study.seed())
    }

    #[getter]
    fn seats(&self) -> usize {
        self.study.config().seats
    }

    #[getter]
    fn candidates(&self) -> usize {
        self.study.config().candidates
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(grinding_signatures, m)?)?;
    m.add_class::<PyGrindingStudy>()?;
    m.add("GRINDING_MAX_CANDIDATES", MAX_CANDIDATES)?;
    Ok(())
}
