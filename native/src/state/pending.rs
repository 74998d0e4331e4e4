//! `PendingState`: each sender's account after its queued transactions in a
//! mempool, kept between admissions (docs/protocol.md §13, Mempool), so a
//! batch is checked by stepping only its own transactions: O(batch), not
//! O(queued).
//!
//! It is an owned [`Layer`] over an `AccountState` of one version, advanced
//! with the rules of `AccountState.check` (the same step, through
//! `Accounts::step_layer`) except that a transaction counts for its sender
//! alone: no credit to its recipient, no account created.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::accounts::{Layer, Reason};
use super::{key_arg, txs_arg, AccountState, DETACH_MIN};

/// PendingState()
/// --
///
/// Each sender's account after its queued transactions (nonce and balance;
/// credits to recipients are not counted, docs/protocol.md §13): a layer of
/// changed accounts over an `AccountState` of one version. Empty and built
/// on no version until `rebuild`.
#[pyclass(module = "echorand._native", name = "PendingState")]
#[derive(Default)]
pub struct PendingState {
    layer: Layer,
    version: Option<u64>,
    accepted: usize,
}

impl PendingState {
    fn same_version(&self, state: &AccountState) -> PyResult<()> {
        let now = state.inner.version();
        if self.version == Some(now) {
            return Ok(());
        }
        Err(PyValueError::new_err(format!(
            "the pending state was built on state version {}, the state is at version {now}: \
             rebuild it",
            self.version
                .map_or_else(|| "none".to_owned(), |v| v.to_string())
        )))
    }

    fn step(
        &mut self,
        py: Python<'_>,
        state: &AccountState,
        transactions: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<Option<Reason>>> {
        let txs = txs_arg(transactions, "transactions")?;
        let layer = &mut self.layer;
        let mut run = || state.inner.step_layer(layer, &txs.bytes);
        let reasons = if txs.count() >= DETACH_MIN {
            py.detach(run)
        } else {
            run()
        };
        self.accepted += reasons.iter().filter(|r| r.is_none()).count();
        Ok(reasons)
    }
}

#[pymethods]
impl PendingState {
    #[new]
    fn new() -> Self {
        PendingState::default()
    }

    /// The version of the `AccountState` it was built on, None before `rebuild`.
    #[getter]
    fn version(&self) -> Option<u64> {
        self.version
    }

    /// How many transactions it has applied since the last `rebuild`.
    fn __len__(&self) -> usize {
        self.accepted
    }

    /// rebuild(state, queued) -> int
    /// --
    ///
    /// Start again over `state` as it is now: apply `queued` (a buffer of
    /// encoded transactions or an iterable of `Transaction`, in the order
    /// they were queued); those the rules refuse are left out. Returns how
    /// many were applied.
    fn rebuild(
        &mut self,
        py: Python<'_>,
        state: &AccountState,
        queued: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        self.layer = Layer::default();
        self.accepted = 0;
        self.version = Some(state.inner.version());
        self.step(py, state, queued)?;
        Ok(self.accepted)
    }

    /// redo(state, senders, queued) -> int
    /// --
    ///
    /// Start the `senders` (32-byte public keys) again: drop what the pending
    /// state holds for them, then apply `queued`, their queued transactions
    /// in order (those the rules refuse are left out). After a limit refused
    /// a transaction that the rules had accepted, or an eviction: O(their
    /// transactions), as a transaction counts for its sender alone. `state`
    /// must be the one it was built on, at the same version. Returns how many
    /// were applied.
    fn redo(
        &mut self,
        py: Python<'_>,
        state: &AccountState,
        senders: &Bound<'_, PyAny>,
        queued: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        self.same_version(state)?;
        for (i, sender) in senders.try_iter()?.enumerate() {
            let key = key_arg(&sender?, &format!("senders[{i}]"))?;
            if let Some(id) = state.inner.id_of(&key) {
                self.layer.forget(id);
            }
        }
        let before = self.accepted;
        self.step(py, state, queued)?;
        Ok(self.accepted - before)
    }

    /// check_and_add(state, transactions) -> list[str | None]
    /// --
    ///
    /// The reason each transaction is refused, None when accepted, taking
    /// them in order on the pending state (the rules of
    /// `AccountState.check`, without credits); the accepted ones stay
    /// applied. `state` must be
    /// the one it was built on, at the same version (ValueError otherwise:
    /// `rebuild` it).
    fn check_and_add<'py>(
        &mut self,
        py: Python<'py>,
        state: &AccountState,
        transactions: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.same_version(state)?;
        let reasons = self.step(py, state, transactions)?;
        PyList::new(py, reasons.into_iter().map(|r| r.map(Reason::text)))
    }

    fn __repr__(&self) -> String {
        format!(
            "PendingState(version={}, applied={}, changed={})",
            self.version
                .map_or_else(|| "None".to_owned(), |v| v.to_string()),
            self.accepted,
            self.layer.changed()
        )
    }
}
