//! The account state for Python: `AccountState` (keys, balances, nonces,
//! delegates by account id), the transaction rules in one call per batch
//! (`check`, `prepare`/`commit`), the `Changes` a block makes, a mempool's
//! `PendingState` (state/pending.rs), and key material in bulk (`derive_public_keys`, `devnet_seeds`).
//!
//! Transactions come in as a `Block` (its transactions and producer), a
//! bytes-like buffer of concatenated 153-byte encodings, or an iterable of
//! `Transaction`. Long calls release the GIL.

mod accounts;
mod keys;
mod pending;

use std::borrow::Cow;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::chain::args::{describe, int_arg, type_name};
use crate::codec::wire::Put;
use crate::codec::{Block, Transaction};
pub(crate) use accounts::{
    Account, Accounts, Key, Layer, Reason, Tx, DELEGATION, KEY_SIZE, TX_SIZE,
};
use accounts::{Delta, RecordParts, GENESIS_ENTRY, NO_DELEGATE, RECORD_SIZE, UNDO_ENTRY};

/// Work below this many items is not worth releasing the GIL for.
pub(crate) const DETACH_MIN: usize = 256;

/// A bytes-like argument: borrowed from `bytes` (immutable, so it may be
/// read without the GIL), copied from any other buffer.
fn bytes_arg<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    match PyBuffer::<u8>::get(obj) {
        Ok(buf) => Ok(Cow::Owned(buf.to_vec(obj.py())?)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be bytes-like, not {}",
            type_name(obj)
        ))),
    }
}

/// Exactly 32 bytes.
pub(crate) fn key_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Key> {
    let bytes = bytes_arg(obj, name)?;
    Key::try_from(&bytes[..]).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be {KEY_SIZE} bytes, got {}",
            bytes.len()
        ))
    })
}

/// Transactions from a Python argument, and the producer when it was a block.
struct Txs<'a> {
    bytes: Cow<'a, [u8]>,
    block_producer: Option<Option<u64>>,
}

impl Txs<'_> {
    fn count(&self) -> usize {
        self.bytes.len() / TX_SIZE
    }
}

fn txs_arg<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<Txs<'a>> {
    if let Ok(block) = obj.cast::<Block>() {
        let block = block.get();
        if block.is_empty_block() {
            return Ok(Txs {
                bytes: Cow::Owned(Vec::new()),
                block_producer: Some(None),
            });
        }
        return Ok(Txs {
            bytes: Cow::Borrowed(block.tx_bytes()),
            block_producer: Some(block.producer_id()),
        });
    }
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a Block, a buffer of encoded transactions or an iterable of \
             Transaction, not str"
        )));
    }
    let bytes = if obj.is_instance_of::<PyBytes>() || PyBuffer::<u8>::get(obj).is_ok() {
        bytes_arg(obj, name)?
    } else {
        let iter = obj.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be a Block, a buffer of encoded transactions or an iterable of \
                 Transaction, not {}",
                type_name(obj)
            ))
        })?;
        let mut raw = Vec::with_capacity(obj.len().unwrap_or(0) * TX_SIZE);
        for (i, item) in iter.enumerate() {
            raw.put(tx_item(item?, name, i)?.get().raw());
        }
        Cow::Owned(raw)
    };
    if bytes.len() % TX_SIZE != 0 {
        return Err(PyValueError::new_err(format!(
            "{name}: a buffer of transactions holds whole {TX_SIZE}-byte encodings, got {} bytes",
            bytes.len()
        )));
    }
    Ok(Txs {
        bytes,
        block_producer: None,
    })
}

/// Item `i` of the iterable argument `name`, which must be a `Transaction`.
fn tx_item<'py>(
    item: Bound<'py, PyAny>,
    name: &str,
    i: usize,
) -> PyResult<Bound<'py, Transaction>> {
    item.cast_into::<Transaction>().map_err(|e| {
        PyTypeError::new_err(format!(
            "{name}[{i}] must be a Transaction, not {}",
            type_name(&e.into_inner())
        ))
    })
}

/// The `Transaction` objects of an iterable argument, kept as they are (a
/// mempool holds them).
pub(crate) fn tx_objects<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Vec<Bound<'py, Transaction>>> {
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be an iterable of Transaction, not {}",
            type_name(obj)
        ))
    })?;
    iter.enumerate()
        .map(|(i, item)| tx_item(item?, name, i))
        .collect()
}

/// Reward credits from an iterable of `(account, units)` pairs.
fn credits_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for (i, item) in obj.try_iter()?.enumerate() {
        let item = item?;
        let (id, units): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "credits[{i}] must be an (account, units) pair, not {}",
                type_name(&item)
            ))
        })?;
        out.push((
            int_arg(&id, &format!("credits[{i}].account"), 0, u64::MAX)?,
            int_arg(&units, &format!("credits[{i}].units"), 0, u64::MAX)?,
        ));
    }
    Ok(out)
}

/// A delegate as Python sees it: `None` for no delegate.
fn delegate_py(d: u64) -> Option<u64> {
    (d != NO_DELEGATE).then_some(d)
}

/// Packed native-endian u64, the form `StakeTable` takes.
fn ne_bytes<'py>(py: Python<'py>, values: &[u64]) -> Bound<'py, PyBytes> {
    PyBytes::new_with(py, values.len() * 8, |buf| {
        for (chunk, v) in buf.chunks_exact_mut(8).zip(values) {
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
        Ok(())
    })
    .unwrap_or_else(|_| PyBytes::new(py, &[]))
}

/// The undo records of an optional iterable, copied (they are released to
/// other threads).
fn undo_args(undos: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Vec<u8>>> {
    let mut held = Vec::new();
    if let Some(undos) = undos {
        for (i, u) in undos.try_iter()?.enumerate() {
            held.push(bytes_arg(&u?, &format!("undos[{i}]"))?.into_owned());
        }
    }
    Ok(held)
}

/// The account state of the ledger: for each account id (dense, from 0) its
/// public key, balance, nonce (transactions sent so far) and delegate, and
/// the index from public key to id.
///
/// `AccountState(accounts, check_keys=True)` builds it from genesis entries:
/// a bytes-like buffer of `pk 32 || balance u64be` (40 bytes each). Keys must
/// be distinct, the total below 2**63, and (unless `check_keys=False`) each
/// key a valid account key. `AccountState.from_records(records)` rebuilds it
/// from stored 56-byte records (`pk || balance || nonce || delegate`).
#[pyclass(module = "echorand._native", name = "AccountState")]
pub struct AccountState {
    inner: Accounts,
}

impl AccountState {
    /// The accounts, for the other native modules (the mempool's queue).
    pub(crate) fn accounts(&self) -> &Accounts {
        &self.inner
    }
}

/// An `Accounts` method giving one field of every account before some blocks' undo records.
type FieldBefore = fn(&Accounts, &[&[u8]]) -> Result<Vec<u64>, String>;

impl AccountState {
    fn id_arg(&self, obj: &Bound<'_, PyAny>) -> PyResult<u64> {
        let n = self.inner.len() as u64;
        match int_arg(obj, "account id", 0, u64::MAX) {
            Ok(id) if id < n => Ok(id),
            Ok(_) => Err(PyValueError::new_err(format!(
                "unknown account {}: the state has {n} accounts",
                describe(obj)
            ))),
            Err(e) => Err(e),
        }
    }

    /// One field of every account before the blocks of `undos` (newest first),
    /// packed native-endian u64; the work runs with the GIL released.
    fn field_before<'py>(
        &self,
        py: Python<'py>,
        undos: Option<&Bound<'py, PyAny>>,
        field: FieldBefore,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let held = undo_args(undos)?;
        let views: Vec<&[u8]> = held.iter().map(Vec::as_slice).collect();
        let values = py
            .detach(|| field(&self.inner, &views))
            .map_err(PyValueError::new_err)?;
        Ok(ne_bytes(py, &values))
    }

    fn range(&self, start: usize, count: Option<usize>) -> (usize, usize) {
        let n = self.inner.len();
        let start = start.min(n);
        (start, count.unwrap_or(n - start).min(n - start))
    }
}

#[pymethods]
impl AccountState {
    #[new]
    #[pyo3(signature = (accounts, *, check_keys = true))]
    fn new(py: Python<'_>, accounts: &Bound<'_, PyAny>, check_keys: bool) -> PyResult<Self> {
        let entries = bytes_arg(accounts, "accounts")?;
        let inner = py
            .detach(|| {
                let inner = Accounts::from_genesis(&entries)?;
                if check_keys {
                    if let Some(i) = inner.first_invalid_key() {
                        return Err(format!(
                            "account {i}: public key {} is small-order or non-canonical",
                            accounts::hex(&inner.keys()[i])
                        ));
                    }
                }
                Ok(inner)
            })
            .map_err(PyValueError::new_err)?;
        Ok(AccountState { inner })
    }

    /// from_records(records, count=None) -> AccountState
    /// --
    ///
    /// The state from its stored records, 56 bytes each and in id order:
    /// `pk 32 || balance u64be || nonce u64be || delegate u64be` (delegate
    /// 2**64 - 1 for none). Keys are not re-checked: they were when stored.
    /// `records` is a bytes-like buffer, or an iterable of them (parts of
    /// whole records, in order: a store read in chunks); `count`, when
    /// known, reserves room for that many records.
    #[staticmethod]
    #[pyo3(signature = (records, count = None))]
    fn from_records(
        py: Python<'_>,
        records: &Bound<'_, PyAny>,
        count: Option<usize>,
    ) -> PyResult<Self> {
        let mut parts = RecordParts::default();
        parts.reserve(count.unwrap_or(0));
        let whole = records.is_instance_of::<PyBytes>() || PyBuffer::<u8>::get(records).is_ok();
        if whole {
            let bytes = bytes_arg(records, "records")?;
            py.detach(|| parts.add(&bytes))
                .map_err(PyValueError::new_err)?;
        } else {
            let iter = records.try_iter().map_err(|_| {
                PyTypeError::new_err(format!(
                    "records must be bytes-like or an iterable of bytes-like parts, not {}",
                    type_name(records)
                ))
            })?;
            for (i, part) in iter.enumerate() {
                let part = part?;
                let bytes = bytes_arg(&part, &format!("records[{i}]"))?;
                parts.add(&bytes).map_err(PyValueError::new_err)?;
            }
        }
        let inner = py.detach(|| parts.build()).map_err(PyValueError::new_err)?;
        Ok(AccountState { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The sum of all balances.
    #[getter]
    fn total(&self) -> u64 {
        self.inner.total()
    }

    /// How many times changes were committed to this state.
    #[getter]
    fn version(&self) -> u64 {
        self.inner.version()
    }

    /// The account id of a public key, or None.
    fn id_of(&self, public_key: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        Ok(self.inner.id_of(&key_arg(public_key, "public_key")?))
    }

    /// The public key of an account (ValueError when unknown).
    fn public_key<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let id = self.id_arg(id)?;
        Ok(PyBytes::new(
            py,
            self.inner.key(id).map_or(&[][..], |k| &k[..]),
        ))
    }

    /// `(balance, nonce, delegate)` of an account; delegate None when it has
    /// not delegated (ValueError when the account is unknown).
    fn account(&self, id: &Bound<'_, PyAny>) -> PyResult<(u64, u64, Option<u64>)> {
        let id = self.id_arg(id)?;
        let a = self
            .inner
            .get(id)
            .ok_or_else(|| PyValueError::new_err("unknown account"))?;
        Ok((a.balance, a.nonce, delegate_py(a.delegate)))
    }

    fn balance(&self, id: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(self.account(id)?.0)
    }

    /// The nonce the account's next transaction must carry.
    fn nonce(&self, id: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(self.account(id)?.1)
    }

    /// balances(undos=()) -> bytes
    /// --
    ///
    /// The balances by id, packed native-endian u64 (what `StakeTable`
    /// takes). With `undos`, the undo records of the last blocks, newest
    /// first: the balances as they were before those blocks.
    #[pyo3(signature = (undos = None))]
    fn balances<'py>(
        &self,
        py: Python<'py>,
        undos: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.field_before(py, undos, Accounts::balances_before)
    }

    /// delegates(undos=()) -> bytes
    /// --
    ///
    /// The delegates by id, packed native-endian u64, 2**64 - 1 for none (an
    /// account created by a transfer starts with its registrar). With
    /// `undos`, the undo records of the last blocks, newest first: the
    /// delegates as they were before those blocks.
    #[pyo3(signature = (undos = None))]
    fn delegates<'py>(
        &self,
        py: Python<'py>,
        undos: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.field_before(py, undos, Accounts::delegates_before)
    }

    /// All public keys by id, concatenated (32 bytes each).
    fn public_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        PyBytes::new_with(py, self.inner.len() * KEY_SIZE, |buf| {
            for (d, k) in buf.chunks_exact_mut(KEY_SIZE).zip(self.inner.keys()) {
                d.copy_from_slice(k);
            }
            Ok(())
        })
    }

    /// The stored records of ids `start .. start + count`, concatenated.
    #[pyo3(signature = (start = 0, count = None))]
    fn records<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        count: Option<usize>,
    ) -> Bound<'py, PyBytes> {
        let (start, count) = self.range(start, count);
        PyBytes::new(py, &self.inner.records(start, count))
    }

    /// `(u64be(id), record)` of ids `start .. start + count`: items for a
    /// key-value store.
    #[pyo3(signature = (start = 0, count = None))]
    fn items<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        count: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (start, count) = self.range(start, count);
        let records = self.inner.records(start, count);
        let items = records
            .chunks_exact(RECORD_SIZE)
            .zip(start as u64..)
            .map(|(r, id)| (PyBytes::new(py, &id.to_be_bytes()), PyBytes::new(py, r)));
        PyList::new(py, items)
    }

    /// check(transactions, pending=None) -> list[str | None]
    /// --
    ///
    /// The reason each transaction would be refused, or None when it is
    /// accepted, taking them in order and applying the accepted ones on a
    /// scratch copy (a second transaction spending the same funds is
    /// refused). `pending`: transactions applied first, whose results are
    /// not reported (a mempool's queued transactions of the same senders).
    /// The state is not changed. Fees are not credited to anyone here.
    #[pyo3(signature = (transactions, pending = None))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        transactions: &Bound<'py, PyAny>,
        pending: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let txs = txs_arg(transactions, "transactions")?;
        let pending = match pending {
            Some(p) => txs_arg(p, "pending")?,
            None => Txs {
                bytes: Cow::Borrowed(&[]),
                block_producer: None,
            },
        };
        let run = || self.inner.check(&pending.bytes, &txs.bytes);
        let reasons = if txs.count() + pending.count() >= DETACH_MIN {
            py.detach(run)
        } else {
            run()
        };
        PyList::new(py, reasons.into_iter().map(|r| r.map(Reason::text)))
    }

    /// prepare(transactions, producer=None, credits=None) -> Changes
    /// --
    ///
    /// What applying a block's transactions changes, without changing the
    /// state: all of them or nothing (ValueError "transaction i: reason" for
    /// the first refused one). `producer` (an account id) gets the fees; it
    /// is taken from `transactions` when that is a `Block`. `credits`, pairs
    /// `(account, units)` for accounts that existed before the block, are the
    /// block's rewards: minted after the fees (`Changes.minted`), the supply
    /// staying below 2^63.
    #[pyo3(signature = (transactions, producer = None, credits = None))]
    fn prepare(
        &self,
        py: Python<'_>,
        transactions: &Bound<'_, PyAny>,
        producer: Option<&Bound<'_, PyAny>>,
        credits: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Changes> {
        let credits = credits.map(credits_arg).transpose()?.unwrap_or_default();
        let txs = txs_arg(transactions, "transactions")?;
        let given = producer
            .map(|p| int_arg(p, "producer", 0, u64::MAX))
            .transpose()?;
        let producer = match (txs.block_producer, given) {
            (Some(from_block), None) => from_block,
            (Some(from_block), Some(p)) if from_block == Some(p) => from_block,
            (Some(from_block), Some(p)) => {
                return Err(PyValueError::new_err(format!(
                    "producer {p} differs from the block's producer ({})",
                    from_block.map_or_else(|| "none".to_owned(), |b| b.to_string())
                )))
            }
            (None, p) => p,
        };
        let run = || self.inner.prepare(&txs.bytes, producer, &credits);
        let delta = if txs.count() >= DETACH_MIN {
            py.detach(run)
        } else {
            run()
        };
        delta
            .map(|delta| Changes { delta })
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Make prepared changes the state. They must have been prepared against
    /// this state as it is now (ValueError otherwise; nothing changes then).
    fn commit(&mut self, py: Python<'_>, changes: &Changes) -> PyResult<()> {
        let inner = &mut self.inner;
        let delta = &changes.delta;
        let mut run = || inner.commit(delta);
        if delta.changed.len() + delta.new_keys.len() >= DETACH_MIN {
            py.detach(run)
        } else {
            run()
        }
        .map_err(PyValueError::new_err)
    }

    /// `prepare` then `commit`: apply a block's transactions (and credits), all or nothing.
    #[pyo3(signature = (transactions, producer = None, credits = None))]
    fn apply(
        &mut self,
        py: Python<'_>,
        transactions: &Bound<'_, PyAny>,
        producer: Option<&Bound<'_, PyAny>>,
        credits: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Changes> {
        let changes = self.prepare(py, transactions, producer, credits)?;
        self.commit(py, &changes)?;
        Ok(changes)
    }

    fn __repr__(&self) -> String {
        format!(
            "AccountState(<{} accounts>, total={}, version={})",
            self.inner.len(),
            self.inner.total(),
            self.inner.version()
        )
    }
}

/// What applying one block changes, from `AccountState.prepare`: every
/// changed account (old and new values) and the accounts it creates.
#[pyclass(frozen, module = "echorand._native", name = "Changes")]
pub struct Changes {
    delta: Delta,
}

#[pymethods]
impl Changes {
    /// The number of accounts before the block: the id of the first created one.
    #[getter]
    fn accounts_before(&self) -> u64 {
        self.delta.accounts_before
    }

    #[getter]
    fn accounts_after(&self) -> u64 {
        self.delta.accounts_before + self.delta.new_keys.len() as u64
    }

    #[getter]
    fn tx_count(&self) -> usize {
        self.delta.tx_count
    }

    /// The units the block's reward credits created.
    #[getter]
    fn minted(&self) -> u64 {
        self.delta.minted
    }

    /// The fees of the block's transactions, credited to the producer.
    #[getter]
    fn fees(&self) -> u64 {
        self.delta.fees
    }

    #[getter]
    fn producer(&self) -> Option<u64> {
        self.delta.producer
    }

    /// The state version the changes apply to.
    #[getter]
    fn version(&self) -> u64 {
        self.delta.version
    }

    /// The public keys of the created accounts, in id order (32 bytes each).
    #[getter]
    fn new_keys<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.delta.new_keys.as_flattened())
    }

    /// `[(public_key, id), ...]` of the created accounts.
    fn new_accounts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .delta
            .new_keys
            .iter()
            .zip(self.delta.accounts_before..)
            .map(|(k, id)| (PyBytes::new(py, k), id));
        PyList::new(py, items)
    }

    /// Every pre-existing account that changed, ascending ids, 32 bytes each:
    /// `id || balance || nonce || delegate` (u64be; delegate 2**64 - 1 for none).
    fn changed<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(self.delta.changed.len() * 32);
        for c in &self.delta.changed {
            for v in [c.id, c.new.balance, c.new.nonce, c.new.delegate] {
                out.put(&v.to_be_bytes());
            }
        }
        PyBytes::new(py, &out)
    }

    /// `[(u64be(id), record), ...]` for every changed and created account,
    /// ascending ids: the stored records to write.
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .delta
            .records()
            .map(|(id, r)| (PyBytes::new(py, &id.to_be_bytes()), PyBytes::new(py, &r)));
        PyList::new(py, items)
    }

    /// The undo record: `accounts_before u64be || (id || balance || nonce ||
    /// delegate) * n` with the old values of the changed accounts.
    #[getter]
    fn undo<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.delta.undo())
    }

    /// `{id: new_balance}` of the pre-existing accounts whose balance changed
    /// (for `StakeTable.update`).
    fn balance_updates<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for c in &self.delta.changed {
            if c.new.balance != c.old.balance {
                out.set_item(c.id, c.new.balance)?;
            }
        }
        Ok(out)
    }

    /// The balances of the created accounts, packed native-endian u64 (for
    /// `StakeTable.extend`).
    fn new_balances<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let balances: Vec<u64> = self.delta.new_accounts.iter().map(|a| a.balance).collect();
        ne_bytes(py, &balances)
    }

    /// Changed plus created accounts.
    fn __len__(&self) -> usize {
        self.delta.changed.len() + self.delta.new_keys.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Changes(tx_count={}, changed={}, created={}, fees={}, producer={})",
            self.delta.tx_count,
            self.delta.changed.len(),
            self.delta.new_keys.len(),
            self.delta.fees,
            self.delta
                .producer
                .map_or_else(|| "None".to_owned(), |p| p.to_string())
        )
    }
}

/// A changed account as the stake history takes it: `(id, old balance, new balance, old
/// delegate)`.
pub(crate) type BalanceChange = (u64, u64, u64, u64);

/// An undo entry as the stake history takes it: `(id, old balance, old delegate)`.
pub(crate) type OldRecord = (u64, u64, u64);

impl Changes {
    /// What the stake history (`stake.rs`) takes from a block: the accounts before it,
    /// each changed account's `(id, old balance, new balance, old delegate)` in
    /// ascending ids, and the balances of the created accounts.
    pub(crate) fn balance_changes(&self) -> (u64, Vec<BalanceChange>, Vec<u64>) {
        let changed = self
            .delta
            .changed
            .iter()
            .map(|c| (c.id, c.old.balance, c.new.balance, c.old.delegate))
            .collect();
        let created = self.delta.new_accounts.iter().map(|a| a.balance).collect();
        (self.delta.accounts_before, changed, created)
    }
}

/// An undo record read back for the stake history: the accounts before its block and
/// each changed account's `(id, old balance, old delegate)`.
pub(crate) fn undo_entries(undo: &[u8]) -> Result<(u64, Vec<OldRecord>), String> {
    let (before, entries) = accounts::parse_undo(undo)?;
    let entries = entries
        .iter()
        .map(|e| (e.id, e.old.balance, e.old.delegate))
        .collect();
    Ok((before, entries))
}

/// derive_public_keys(seeds) -> bytes
/// --
///
/// The Ed25519 public key of each 32-byte seed (RFC 8032), concatenated:
/// `seeds` is n * 32 bytes, the result n * 32 bytes. On all cores, without
/// the GIL.
#[pyfunction]
fn derive_public_keys<'py>(
    py: Python<'py>,
    seeds: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seeds = bytes_arg(seeds, "seeds")?;
    if seeds.len() % KEY_SIZE != 0 {
        return Err(PyValueError::new_err(format!(
            "seeds must be a whole number of {KEY_SIZE}-byte seeds, got {} bytes",
            seeds.len()
        )));
    }
    let keys = py.detach(|| keys::derive_public_keys(&seeds));
    Ok(PyBytes::new(py, &keys))
}

/// devnet_seeds(master, count, first=0) -> bytes
/// --
///
/// The devnet key seeds `H("echorand/devnet-key" || 0x00 || master ||
/// u64be(i))` for `i` in `first .. first + count`, concatenated (32 bytes
/// each). `master` is 32 bytes.
#[pyfunction]
#[pyo3(signature = (master, count, first = None))]
fn devnet_seeds<'py>(
    py: Python<'py>,
    master: &Bound<'py, PyAny>,
    count: &Bound<'py, PyAny>,
    first: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let master = key_arg(master, "master")?;
    let count = int_arg(count, "count", 0, 1 << 32)? as usize;
    let first = first
        .map(|f| int_arg(f, "first", 0, u64::MAX))
        .transpose()?
        .unwrap_or(0);
    if first.checked_add(count as u64).is_none() {
        return Err(PyValueError::new_err("first + count must fit a u64"));
    }
    let seeds = py.detach(|| keys::devnet_seeds(&master, first, count));
    Ok(PyBytes::new(py, &seeds))
}

/// valid_account_keys(public_keys) -> list[bool]
/// --
///
/// `is_valid_account_key` of each 32-byte key of a buffer (n * 32 bytes),
/// on all cores for many keys, without the GIL.
#[pyfunction]
fn valid_account_keys<'py>(
    py: Python<'py>,
    public_keys: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let bytes = bytes_arg(public_keys, "public_keys")?;
    if bytes.len() % KEY_SIZE != 0 {
        return Err(PyValueError::new_err(format!(
            "public_keys must be a whole number of {KEY_SIZE}-byte keys, got {} bytes",
            bytes.len()
        )));
    }
    let keys: Vec<Key> = bytes
        .chunks_exact(KEY_SIZE)
        .map(|c| accounts::key_at(c, 0))
        .collect();
    let ok = py.detach(|| accounts::valid_keys(&keys));
    PyList::new(py, ok)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AccountState>()?;
    m.add_class::<Changes>()?;
    m.add_class::<pending::PendingState>()?;
    m.add_function(wrap_pyfunction!(derive_public_keys, m)?)?;
    m.add_function(wrap_pyfunction!(devnet_seeds, m)?)?;
    m.add_function(wrap_pyfunction!(valid_account_keys, m)?)?;
    m.add("GENESIS_ENTRY_SIZE", GENESIS_ENTRY)?;
    m.add("RECORD_SIZE", RECORD_SIZE)?;
    m.add("UNDO_ENTRY_SIZE", UNDO_ENTRY)?;
    m.add("NO_DELEGATE", NO_DELEGATE)?;
    let reasons = PyDict::new(m.py());
    for r in Reason::ALL {
        reasons.set_item(r.name(), r.text())?;
    }
    m.add("REASONS", reasons)?;
    Ok(())
}
