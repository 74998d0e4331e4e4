//! `StakeHistory`: the ledger's stake snapshots for Python, over the history of
//! `history.rs`. `history.table(after)` is a `StakeTable` that reads the balances
//! after block `after` through the history: no copy, and it stays right while
//! the tip moves on, for as long as the history keeps that block.

use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::history::{Change, History, HistoryError, Undo, NO_DELEGATE};
use super::{history_err, read_balances, StakeTable, DETACH_MIN};
use crate::chain::args::int_arg;
use crate::state::{undo_entries, Changes};

/// StakeHistory(balances, block=0, keep=64)
/// --
///
/// The balances after a ledger's tip block `block` (anything `StakeTable` takes) and
/// the changes of its last `keep` blocks: the stake table after any of those blocks,
/// and the delegates then. A block costs O(changed accounts · log n).
///
/// - `push(changes)`: block `block + 1`, from the `Changes` its commit made;
/// - `pop(undo)`: undo the tip block from its undo record (a rollback);
/// - `recall(undo)`: add the block before the oldest kept one from its undo record
///   (reopening a ledger: the tip's balances, then the undo records newest first);
/// - `table(after)`: a `StakeTable` of the balances after block `after`;
/// - `delegate(after, account, current)`: the account's delegate after block `after`.
#[pyclass(frozen, module = "echorand._native", name = "StakeHistory")]
pub struct StakeHistory {
    inner: RwLock<History>,
}

/// Blocks whose changes a history keeps unless told otherwise.
const DEFAULT_KEEP: u64 = 64;

/// An id that fits this machine's `usize`.
fn index(id: u64) -> Result<usize, HistoryError> {
    usize::try_from(id)
        .map_err(|_| HistoryError::Mismatch(format!("account {id} does not fit an index")))
}

/// An undo record read back: the accounts before its block and its entries.
fn undo_arg(undo: &[u8]) -> PyResult<(usize, Vec<Undo>)> {
    let (before, entries) = undo_entries(undo).map_err(PyValueError::new_err)?;
    let entries = entries
        .into_iter()
        .map(|(id, balance, delegate)| {
            Ok(Undo {
                id: index(id)?,
                balance,
                delegate,
            })
        })
        .collect::<Result<Vec<_>, HistoryError>>()
        .map_err(history_err)?;
    Ok((index(before).map_err(history_err)?, entries))
}

impl StakeHistory {
    /// The history for reading (a poisoned lock is still consistent: every change
    /// checks first and then cannot fail).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, History> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write<T>(
        &self,
        py: Python<'_>,
        change: impl FnOnce(&mut History) -> Result<T, HistoryError> + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        // Waits, without the GIL, for readers that released it.
        py.detach(|| {
            let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
            change(&mut inner)
        })
        .map_err(history_err)
    }
}

#[pymethods]
impl StakeHistory {
    #[new]
    #[pyo3(signature = (balances, block = None, keep = None))]
    fn new(
        py: Python<'_>,
        balances: &Bound<'_, PyAny>,
        block: Option<&Bound<'_, PyAny>>,
        keep: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let balances = read_balances(balances, 0)?;
        let block = block.map_or(Ok(0), |b| int_arg(b, "block", 0, u64::MAX))?;
        let keep = keep.map_or(Ok(DEFAULT_KEEP), |k| int_arg(k, "keep", 0, u32::MAX.into()))?;
        let keep = keep as usize;
        let n = balances.len();
        let inner = if n >= DETACH_MIN {
            py.detach(|| History::new(balances, block, keep))?
        } else {
            History::new(balances, block, keep)?
        };
        Ok(Self {
            inner: RwLock::new(inner),
        })
    }

    /// The tip block: `table(block)` has the newest balances.
    #[getter]
    fn block(&self) -> u64 {
        self.read().block()
    }

    /// The oldest block whose balances are kept.
    #[getter]
    fn oldest(&self) -> u64 {
        self.read().oldest()
    }

    /// How many blocks' changes it keeps at most.
    #[getter]
    fn keep(&self) -> usize {
        self.read().keep()
    }

    /// W after the tip block.
    #[getter]
    fn total(&self) -> u64 {
        self.read().tip().total()
    }

    /// Bytes held: the tree of the tip's balances, the kept changes, the overlays.
    #[getter]
    fn nbytes(&self) -> usize {
        self.read().nbytes()
    }

    /// Accounts after the tip block.
    fn __len__(&self) -> usize {
        self.read().tip().len()
    }

    /// table(after) -> StakeTable
    /// --
    ///
    /// The balances after block `after` (`oldest <= after <= block`), read through this
    /// history: ValueError once the history no longer keeps that block, or rolled it back.
    fn table(slf: &Bound<'_, Self>, after: &Bound<'_, PyAny>) -> PyResult<StakeTable> {
        let after = int_arg(after, "after", 0, u64::MAX)?;
        let serial = slf.get().read().serial(after).map_err(history_err)?;
        Ok(StakeTable::of_ledger(slf.clone().unbind(), after, serial))
    }

    /// delegate(after, account, current) -> int | None
    /// --
    ///
    /// The delegate of `account` after block `after`: `current` (its delegate after the
    /// tip, None for none) unless a later block changed the account; None when the
    /// account did not exist then.
    fn delegate(
        &self,
        after: &Bound<'_, PyAny>,
        account: &Bound<'_, PyAny>,
        current: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        let after = int_arg(after, "after", 0, u64::MAX)?;
        let account = int_arg(account, "account", 0, u64::MAX)?;
        let current = match current {
            Some(c) => int_arg(c, "current", 0, NO_DELEGATE - 1)?,
            None => NO_DELEGATE,
        };
        let Ok(account) = usize::try_from(account) else {
            return Ok(None);
        };
        let delegate = self
            .read()
            .delegate(after, account, current)
            .map_err(history_err)?;
        Ok((delegate != NO_DELEGATE).then_some(delegate))
    }

    /// push(changes) -> None
    /// --
    ///
    /// Applies block `block + 1` from the `Changes` of its commit. All or nothing: the
    /// changes must have been made on the tip's balances.
    fn push(&self, py: Python<'_>, changes: &Bound<'_, Changes>) -> PyResult<()> {
        let (before, changed, created) = changes.get().balance_changes();
        let before = index(before).map_err(history_err)?;
        let changed = changed
            .into_iter()
            .map(|(id, old, new, old_delegate)| {
                Ok(Change {
                    id: index(id)?,
                    old,
                    new,
                    old_delegate,
                })
            })
            .collect::<Result<Vec<_>, HistoryError>>()
            .map_err(history_err)?;
        self.write(py, |h| h.push(before, changed, &created))
    }

    /// pop(undo) -> None
    /// --
    ///
    /// Undoes the tip block from its undo record (`Changes.undo`): the balances go back
    /// to those after block `block - 1`. All or nothing.
    fn pop(&self, py: Python<'_>, undo: &[u8]) -> PyResult<()> {
        let (before, entries) = undo_arg(undo)?;
        self.write(py, |h| h.pop(before, &entries))
    }

    /// recall(undo) -> None
    /// --
    ///
    /// Adds block `oldest` from its undo record, so that the balances after block
    /// `oldest - 1` are kept too. All or nothing.
    fn recall(&self, py: Python<'_>, undo: &[u8]) -> PyResult<()> {
        let (before, entries) = undo_arg(undo)?;
        self.write(py, |h| h.recall(before, &entries))
    }

    fn __repr__(&self) -> String {
        let h = self.read();
        format!(
            "StakeHistory(<{} accounts, total {}>, block={}, oldest={}, keep={})",
            h.tip().len(),
            h.tip().total(),
            h.block(),
            h.oldest(),
            h.keep()
        )
    }
}
