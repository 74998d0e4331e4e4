//! `MempoolQueue`: the mempool's queue for Python (docs/protocol.md §13,
//! Mempool), the queue itself in pool/queue.rs. `echorand.ledger.mempool`
//! is a thin facade over it; signatures are verified by a Python callable
//! it is given (`verify_signatures`), once per admission, for the
//! transactions that pass every other check and whose answer is not known.
//!
//! The queue holds the `Transaction` objects it was given: `select`, `get`
//! and `pending` return those very objects. The rules run with the GIL
//! released for large batches, as `PendingState`'s do.

mod queue;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::chain::args::{int_arg, to_u64, type_name, NotU64};
use crate::codec::Transaction;
use crate::state::{
    tx_objects, Account, AccountState, Accounts, Key, Layer, Reason, DETACH_MIN, KEY_SIZE, TX_SIZE,
};
use queue::{Item, Limits, Queue, Refusal, Rules, TxId};

impl Item for Py<Transaction> {
    fn raw(&self) -> &[u8; TX_SIZE] {
        self.get().raw()
    }
    fn id(&self) -> &TxId {
        self.get().tx_id()
    }
}

/// The account state's rules, with the GIL released for large batches.
struct Detaching<'a, 'py> {
    py: Python<'py>,
    accounts: &'a Accounts,
}

impl Rules for Detaching<'_, '_> {
    fn id_of(&self, key: &Key) -> Option<u64> {
        self.accounts.id_of(key)
    }
    fn account(&self, id: u64) -> Option<Account> {
        self.accounts.get(id)
    }
    fn step(&self, layer: &mut Layer, txs: &[u8]) -> Vec<Option<Reason>> {
        let accounts = self.accounts;
        if txs.len() / TX_SIZE >= DETACH_MIN {
            self.py.detach(|| accounts.step_layer(layer, txs))
        } else {
            accounts.step_layer(layer, txs)
        }
    }
    fn check(&self, txs: &[u8]) -> Vec<Option<Reason>> {
        let accounts = self.accounts;
        if txs.len() / TX_SIZE >= DETACH_MIN {
            self.py.detach(|| accounts.check(&[], txs))
        } else {
            accounts.check(&[], txs)
        }
    }
}

/// A 32-byte `bytes` key (a transaction id, a public key), or None for
/// anything else: a lookup of it finds nothing.
fn lookup_key(obj: &Bound<'_, PyAny>) -> Option<[u8; KEY_SIZE]> {
    obj.cast::<PyBytes>()
        .ok()
        .and_then(|b| b.as_bytes().try_into().ok())
}

/// A count argument: an int, negative ones taken as 0 and huge ones as
/// `usize::MAX`.
fn count_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    match to_u64(obj) {
        Ok(v) => Ok(usize::try_from(v).unwrap_or(usize::MAX)),
        Err(NotU64::Negative) => Ok(0),
        Err(NotU64::TooBig) => Ok(usize::MAX),
        Err(NotU64::NotInt) => Err(PyTypeError::new_err(format!(
            "{name} must be an int, got {}",
            type_name(obj)
        ))),
    }
}

/// Each transaction's reason as Python has it: a str, or None when queued.
fn reasons_list<'py>(py: Python<'py>, reasons: &[Option<Refusal>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        reasons
            .iter()
            .map(|r| r.map(|r| PyString::intern(py, r.text()))),
    )
}

/// MempoolQueue(state, *, capacity, max_per_sender, min_fee=0)
/// --
///
/// The queue of a mempool over `state` (an `AccountState`, kept current by
/// the ledger): transactions by id, per-sender chains of consecutive nonces,
/// fee-order selection, the limits (`capacity` transactions in all,
/// `max_per_sender` of one sender, fees of at least `min_fee`) and eviction.
/// Each sender's account after its chain is cached for admission (the
/// pending state, credits not counted) and stepped again from the chain
/// when a block changed the account.
#[pyclass(module = "echorand._native", name = "MempoolQueue")]
pub struct MempoolQueue {
    state: Py<AccountState>,
    queue: Queue<Py<Transaction>>,
}

impl MempoolQueue {
    /// Whether the signature of each of `passed` (indices into `batch`) is
    /// bad: refuted, or verified now by `verify` unless known to be good.
    fn bad_signatures(
        py: Python<'_>,
        batch: &[Py<Transaction>],
        passed: &[usize],
        known: &Known<'_, '_>,
    ) -> PyResult<Vec<bool>> {
        let mut bad = vec![false; passed.len()];
        if passed.is_empty() {
            return Ok(bad);
        }
        let refuted = match known.refuted {
            Some(r) if r.is_truthy()? => Some(r),
            _ => None,
        };
        let mut unknown = Vec::new();
        for (k, &i) in passed.iter().enumerate() {
            let id = PyBytes::new(py, batch[i].get().tx_id());
            if let Some(refuted) = refuted {
                if refuted.contains(&id)? {
                    bad[k] = true;
                    continue;
                }
            }
            if !known.verified(&id)? {
                unknown.push(k);
            }
        }
        if unknown.is_empty() {
            return Ok(bad);
        }
        let txs = PyList::new(py, unknown.iter().map(|&k| batch[passed[k]].bind(py)))?;
        let answers = known
            .verify
            .call1((txs,))?
            .try_iter()?
            .collect::<PyResult<Vec<_>>>()?;
        if answers.len() != unknown.len() {
            return Err(PyValueError::new_err(format!(
                "verify returned {} answers for {} transactions",
                answers.len(),
                unknown.len()
            )));
        }
        for (ok, &k) in answers.iter().zip(&unknown) {
            if !ok.is_truthy()? {
                bad[k] = true;
            }
        }
        Ok(bad)
    }
}

/// What a caller knows of signatures already, and how to verify the rest.
struct Known<'a, 'py> {
    verified: Option<&'a Bound<'py, PyAny>>,
    refuted: Option<&'a Bound<'py, PyAny>>,
    verify: &'a Bound<'py, PyAny>,
}

impl Known<'_, '_> {
    fn verified(&self, id: &Bound<'_, PyBytes>) -> PyResult<bool> {
        match self.verified {
            Some(v) => v.contains(id),
            None => Ok(false),
        }
    }
}

#[pymethods]
impl MempoolQueue {
    #[new]
    #[pyo3(signature = (state, *, capacity, max_per_sender, min_fee = None))]
    fn new(
        state: Py<AccountState>,
        capacity: &Bound<'_, PyAny>,
        max_per_sender: &Bound<'_, PyAny>,
        min_fee: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let capacity = int_arg(capacity, "capacity", 1, u64::MAX)?;
        let per_sender = int_arg(max_per_sender, "max_per_sender", 1, u64::MAX)?;
        let min_fee = match min_fee.map(to_u64) {
            None => 0,
            Some(Ok(v)) => u128::from(v),
            Some(Err(NotU64::Negative)) => 0,
            Some(Err(NotU64::TooBig)) => u128::MAX,
            Some(Err(NotU64::NotInt)) => {
                return Err(PyTypeError::new_err("min_fee must be an int"));
            }
        };
        let limits = Limits {
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            per_sender: usize::try_from(per_sender).unwrap_or(usize::MAX),
            min_fee,
        };
        Ok(MempoolQueue {
            state,
            queue: Queue::new(limits),
        })
    }

    fn __len__(&self) -> usize {
        self.queue.len()
    }

    fn __contains__(&self, tx_id: &Bound<'_, PyAny>) -> bool {
        lookup_key(tx_id).is_some_and(|id| self.queue.contains(&id))
    }

    /// Transactions evicted for better-paying ones so far.
    #[getter]
    fn evicted(&self) -> u64 {
        self.queue.evicted()
    }

    /// The queued transaction of id `tx_id`, or None.
    fn get<'py>(
        &self,
        py: Python<'py>,
        tx_id: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, Transaction>> {
        let id = lookup_key(tx_id)?;
        self.queue.get(&id).map(|t| t.bind(py).clone())
    }

    /// The queued transactions of `sender` (a public key), in nonce order.
    fn pending<'py>(
        &self,
        py: Python<'py>,
        sender: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let txs = lookup_key(sender).map_or_else(Vec::new, |s| self.queue.pending(&s));
        PyList::new(py, txs.into_iter().map(|t| t.bind(py)))
    }

    /// add(transactions, verified, refuted, verify) -> list[str | None]
    /// --
    ///
    /// Admit a batch (an iterable of `Transaction`): the reason each one is
    /// refused, None when queued. Every check but the signature's first;
    /// then, for those that passed, the signatures: bad when in `refuted`
    /// (a container of ids, or None), good when in `verified`, else
    /// verified by one call `verify(transactions) -> list[bool]`.
    fn add<'py>(
        &mut self,
        py: Python<'py>,
        transactions: &Bound<'py, PyAny>,
        verified: &Bound<'py, PyAny>,
        refuted: &Bound<'py, PyAny>,
        verify: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let batch: Vec<Py<Transaction>> = tx_objects(transactions, "transactions")?
            .into_iter()
            .map(Bound::unbind)
            .collect();
        let checked = {
            let state = self.state.bind(py).borrow();
            let rules = Detaching {
                py,
                accounts: state.accounts(),
            };
            self.queue.check(&rules, &batch)
        };
        let known = Known {
            verified: (!verified.is_none()).then_some(verified),
            refuted: (!refuted.is_none()).then_some(refuted),
            verify,
        };
        let bad = Self::bad_signatures(py, &batch, &checked.passed, &known)?;
        let state = self.state.bind(py).borrow();
        let rules = Detaching {
            py,
            accounts: state.accounts(),
        };
        let reasons = self.queue.admit(&rules, batch, checked, &bad);
        reasons_list(py, &reasons)
    }

    /// to_verify(transactions, verified) -> list[Transaction]
    /// --
    ///
    /// The transactions of a batch whose signature `add` would verify: not
    /// queued, not repeated, paying the minimum fee, not in `verified` (a
    /// container of ids, or None), and not refused by the account state (an
    /// unknown sender, a used nonce, more than the balance). Nothing changes.
    fn to_verify<'py>(
        &self,
        py: Python<'py>,
        transactions: &Bound<'py, PyAny>,
        verified: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let objects = tx_objects(transactions, "transactions")?;
        let batch: Vec<Py<Transaction>> = objects.iter().map(|o| o.clone().unbind()).collect();
        let mut todo = Vec::new();
        for i in self.queue.fresh_indices(&batch) {
            let id = PyBytes::new(py, batch[i].get().tx_id());
            if verified.is_none() || !verified.contains(&id)? {
                todo.push(i);
            }
        }
        let mut raw = Vec::with_capacity(todo.len() * TX_SIZE);
        for &i in &todo {
            raw.extend_from_slice(batch[i].raw());
        }
        let answers = if todo.is_empty() {
            Vec::new()
        } else {
            let state = self.state.bind(py).borrow();
            let rules = Detaching {
                py,
                accounts: state.accounts(),
            };
            rules.check(&raw)
        };
        let chosen = todo
            .iter()
            .zip(answers)
            .filter(|(_, r)| matches!(r, None | Some(Reason::NonceTooHigh)))
            .map(|(&i, _)| &objects[i]);
        PyList::new(py, chosen)
    }

    /// select(limit) -> list[Transaction]
    /// --
    ///
    /// At most `limit` transactions for a block: fee order across senders
    /// (higher fee first, then earlier arrival), nonce order within each.
    /// The queue is unchanged.
    fn select<'py>(
        &self,
        py: Python<'py>,
        limit: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let limit = count_arg(limit, "limit")?;
        PyList::new(py, self.queue.select(limit).into_iter().map(|t| t.bind(py)))
    }

    /// recheck(senders=None) -> int
    /// --
    ///
    /// After a block: drop what the state no longer accepts from the chains
    /// of `senders` (public keys; all chains when None), each chain checked
    /// alone from its sender's account; returns how many were dropped.
    #[pyo3(signature = (senders = None))]
    fn recheck(&mut self, py: Python<'_>, senders: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        let keys = match senders {
            None => None,
            Some(senders) => {
                let mut keys = Vec::new();
                for s in senders.try_iter()? {
                    keys.extend(lookup_key(&s?));
                }
                Some(keys)
            }
        };
        let state = self.state.bind(py).borrow();
        let rules = Detaching {
            py,
            accounts: state.accounts(),
        };
        Ok(self.queue.recheck(&rules, keys.as_deref()))
    }

    fn __repr__(&self) -> String {
        let limits = self.queue.limits();
        format!(
            "MempoolQueue(<{} queued>, capacity={}, max_per_sender={}, evicted={})",
            self.queue.len(),
            limits.capacity,
            limits.per_sender,
            self.queue.evicted()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MempoolQueue>()?;
    let reasons = PyDict::new(m.py());
    for r in Refusal::POOL {
        reasons.set_item(r.name(), r.text())?;
    }
    m.add("POOL_REASONS", reasons)?;
    Ok(())
}
