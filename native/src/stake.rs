//! `StakeTable`: the stake table of PROTOCOL §3 for Python, over the Fenwick
//! tree of `stake/fenwick.rs`.
//!
//! Balances come in as a sequence of ints or as a buffer, copied in one go
//! without a Python-level loop:
//! - a buffer of 8-byte integers in native byte order: format `Q`/`L`/`N`
//!   (`array('Q')`, `numpy.uint64`) or `q`/`l`/`n` (`numpy.int64`, negative
//!   values refused); one-dimensional and C-contiguous;
//! - a buffer of bytes (format `B`/`c`: `bytes`, `bytearray`, `memoryview`)
//!   holding packed native-endian u64, i.e. `array('Q', ...).tobytes()`;
//! - otherwise any iterable of ints (a `list`, a `range`, ...).

mod fenwick;
mod history;
mod ledger;

use std::ffi::CStr;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::chain::args::{describe, int_arg, seed_array, to_u64, type_name, NotU64};
use crate::chain::HASH_SIZE;
pub(crate) use fenwick::committee_into;
use fenwick::Seats;
pub use fenwick::{StakeError, Stakes, TOTAL_LIMIT};
use history::{HistoryError, Snapshot};
pub use ledger::StakeHistory;

/// Most seats one committee call may draw.
pub const MAX_SEATS: usize = 1 << 22;

/// Work below this many items is not worth releasing the GIL for.
const DETACH_MIN: usize = 256;

/// Runs `work` with the GIL released when it handles at least `DETACH_MIN` items.
fn detach_if_large<T: Send>(py: Python<'_>, items: usize, work: impl FnOnce() -> T + Send) -> T {
    if items >= DETACH_MIN {
        py.detach(work)
    } else {
        work()
    }
}

impl From<StakeError> for PyErr {
    fn from(e: StakeError) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// The balance of account `account`, or an error that names it.
fn balance_of(obj: &Bound<'_, PyAny>, account: usize) -> PyResult<u64> {
    to_u64(obj).map_err(|why| match why {
        NotU64::Negative => PyValueError::new_err(format!(
            "balance of account {account} must not be negative, got {}",
            describe(obj)
        )),
        NotU64::TooBig => PyValueError::new_err(format!(
            "balance of account {account} must fit a u64, got {}",
            describe(obj)
        )),
        NotU64::NotInt => PyTypeError::new_err(format!(
            "balance of account {account} must be an int, got {}",
            type_name(obj)
        )),
    })
}

/// An existing account id, or an error that names the id.
fn account_of(obj: &Bound<'_, PyAny>, len: usize) -> PyResult<usize> {
    let unknown = || {
        PyValueError::new_err(format!(
            "unknown account {}: the stake table has {len} accounts",
            describe(obj)
        ))
    };
    match to_u64(obj) {
        Ok(id) => match usize::try_from(id) {
            Ok(id) if id < len => Ok(id),
            _ => Err(unknown()),
        },
        Err(NotU64::NotInt) => Err(PyTypeError::new_err(format!(
            "account id must be an int, got {}",
            type_name(obj)
        ))),
        Err(_) => Err(unknown()),
    }
}

/// How a buffer's items are read.
enum Items {
    Unsigned,
    Signed,
    Bytes,
}

fn classify(format: &CStr, item_size: usize) -> PyResult<Items> {
    let f = format.to_bytes();
    let (order, code) = match f {
        [code] => (b'@', *code),
        [order @ (b'@' | b'=' | b'<' | b'>' | b'!'), code] => (*order, *code),
        _ => (b'?', 0),
    };
    let foreign = if cfg!(target_endian = "little") {
        matches!(order, b'>' | b'!')
    } else {
        order == b'<'
    };
    let items = match (code, item_size) {
        (b'Q' | b'L' | b'N', 8) if !foreign => Some(Items::Unsigned),
        (b'q' | b'l' | b'n', 8) if !foreign => Some(Items::Signed),
        (b'B' | b'c', 1) => Some(Items::Bytes),
        _ => None,
    };
    items.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "a balances buffer must hold native-endian 8-byte integers (format 'Q' or 'q') or \
             bytes of packed native-endian u64, got format '{}' with {item_size}-byte items",
            String::from_utf8_lossy(f)
        ))
    })
}

/// The balances in a buffer, copied in one go.
fn balances_from_buffer(buf: &PyUntypedBuffer) -> PyResult<Vec<u64>> {
    let items = classify(buf.format(), buf.item_size())?;
    if buf.dimensions() != 1 {
        return Err(PyValueError::new_err(format!(
            "a balances buffer must be one-dimensional, got {} dimensions",
            buf.dimensions()
        )));
    }
    if !buf.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "a balances buffer must be contiguous (numpy: use numpy.ascontiguousarray)",
        ));
    }
    let len_bytes = buf.len_bytes();
    if !len_bytes.is_multiple_of(8) {
        return Err(PyValueError::new_err(format!(
            "a balances byte buffer must hold whole u64 (a multiple of 8 bytes), got {len_bytes} \
             bytes"
        )));
    }
    let n = len_bytes / 8;
    let mut balances: Vec<u64> = Vec::with_capacity(n);
    if n > 0 {
        // SAFETY: the buffer is exported (held by `buf`) and C-contiguous, so
        // `buf_ptr()` points to `len_bytes` readable bytes while we hold the
        // GIL. `balances` has capacity for `n` u64, i.e. `len_bytes` bytes;
        // u8 needs no alignment, the regions are distinct allocations, and
        // every bit pattern is a valid u64, so after the copy the first `n`
        // elements are initialised.
        unsafe {
            std::ptr::copy_nonoverlapping(
                buf.buf_ptr().cast::<u8>().cast_const(),
                balances.as_mut_ptr().cast::<u8>(),
                len_bytes,
            );
            balances.set_len(n);
        }
    }
    if let Items::Signed = items {
        if let Some(account) = balances.iter().position(|&b| b >= TOTAL_LIMIT) {
            // As an i64 this item is negative.
            return Err(PyValueError::new_err(format!(
                "balance of account {account} must not be negative, got {}",
                balances[account] as i64
            )));
        }
    }
    Ok(balances)
}

/// The balances in a list, a tuple or any iterable of ints.
fn balances_from_ints(obj: &Bound<'_, PyAny>, first_id: usize) -> PyResult<Vec<u64>> {
    if let Ok(list) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            out.push(balance_of(&item, first_id + i)?);
        }
        return Ok(out);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(tuple.len());
        for (i, item) in tuple.iter().enumerate() {
            out.push(balance_of(&item, first_id + i)?);
        }
        return Ok(out);
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "balances must be a sequence of ints or a buffer of u64, got {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for (i, item) in iter.enumerate() {
        out.push(balance_of(&item?, first_id + i)?);
    }
    Ok(out)
}

/// Balances from whatever the caller gave: a buffer, or an iterable of ints.
/// `first_id` is the account id of the first balance (for error messages).
fn read_balances(obj: &Bound<'_, PyAny>, first_id: usize) -> PyResult<Vec<u64>> {
    // `str` has no buffer and iterates as characters: refuse it plainly.
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "balances must be a sequence of ints or a buffer of u64, got str",
        ));
    }
    match PyUntypedBuffer::get(obj) {
        Ok(buf) => {
            let balances = balances_from_buffer(&buf);
            buf.release(obj.py());
            balances
        }
        Err(_) => balances_from_ints(obj, first_id),
    }
}

/// Account ids and new balances from a mapping `{account_id: balance}`.
fn read_changes(mapping: &Bound<'_, PyAny>, len: usize) -> PyResult<Vec<(usize, u64)>> {
    let mut changes = Vec::new();
    let mut push = |k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>| -> PyResult<()> {
        let account = account_of(k, len)?;
        changes.push((account, balance_of(v, account)?));
        Ok(())
    };
    if let Ok(dict) = mapping.cast::<PyDict>() {
        for (k, v) in dict.iter() {
            push(&k, &v)?;
        }
        return Ok(changes);
    }
    let items = mapping.call_method0("items").map_err(|_| {
        PyTypeError::new_err(format!(
            "update takes a mapping {{account_id: new_balance}}, got {}",
            type_name(mapping)
        ))
    })?;
    for pair in items.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
        push(&k, &v)?;
    }
    Ok(changes)
}

/// The stake table: balances by account id (dense, from 0) and their
/// prefix-sum tree, for sortition (PROTOCOL §3).
///
/// `StakeTable(balances)` takes a sequence of ints or a buffer of u64 (see
/// the module docs). Build O(n); update O(log n) per account; a seat O(log n).
/// 8 bytes per account: the tree alone (a balance is read back from it).
#[pyclass(module = "echorand._native", name = "StakeTable")]
pub struct StakeTable {
    source: Source,
}

/// Where a table's balances are.
enum Source {
    /// Its own tree.
    Own(Stakes),
    /// The balances after block `after` of a ledger's history, read through it; valid
    /// while the history keeps that block and the state after it has serial `serial`.
    Ledger {
        history: Py<StakeHistory>,
        after: u64,
        serial: u64,
    },
}

/// A history error as a Python exception.
fn history_err(e: HistoryError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A validated draw: which committee to compute.
struct Draw {
    seed: [u8; HASH_SIZE],
    round: u64,
    step: u32,
    size: usize,
}

impl Draw {
    /// Seed of 32 bytes, round >= 1, step >= 1, size <= MAX_SEATS.
    fn read(
        seed: &[u8],
        round: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(Self {
            seed: seed_array(seed)?,
            round: int_arg(round, "round", 1, u64::MAX)?,
            step: int_arg(step, "step", 1, u32::MAX.into())? as u32,
            size: int_arg(size, "size", 0, MAX_SEATS as u64)? as usize,
        })
    }
}

impl StakeTable {
    /// A copy of the table's balances, for the studies.
    pub(crate) fn stakes_snapshot(&self, py: Python<'_>) -> PyResult<Stakes> {
        self.read(py, DETACH_MIN, |s| Ok(s.to_stakes()))
    }

    /// A table that reads the balances after block `after` of `history`.
    pub(crate) fn of_ledger(history: Py<StakeHistory>, after: u64, serial: u64) -> Self {
        Self {
            source: Source::Ledger {
                history,
                after,
                serial,
            },
        }
    }

    /// `read(snapshot)` on the table's balances, with the GIL released when `items` is
    /// large (a ledger's history is locked for reading meanwhile).
    fn read<T: Send>(
        &self,
        py: Python<'_>,
        items: usize,
        read: impl FnOnce(&Snapshot<'_>) -> Result<T, HistoryError> + Send,
    ) -> PyResult<T> {
        match &self.source {
            Source::Own(stakes) => detach_if_large(py, items, || read(&Snapshot::of(stakes))),
            Source::Ledger {
                history,
                after,
                serial,
            } => {
                let history = history.get();
                detach_if_large(py, items, || {
                    let inner = history.read();
                    read(&inner.snapshot(*after, *serial)?)
                })
            }
        }
        .map_err(history_err)
    }

    /// Its own tree, or a TypeError for a ledger's table.
    fn own_mut(&mut self, what: &str) -> PyResult<&mut Stakes> {
        match &mut self.source {
            Source::Own(stakes) => Ok(stakes),
            Source::Ledger { after, .. } => Err(PyTypeError::new_err(format!(
                "{what}: this table is a ledger's balances after block {after}, which only the \
                 ledger changes (copy() it for a table of its own)"
            ))),
        }
    }

    /// The account of each seat of `draw`, with the GIL released for big committees.
    fn seats(&self, py: Python<'_>, draw: &Draw) -> PyResult<Vec<u64>> {
        self.read(py, draw.size, |snapshot| {
            let mut seats = vec![0u64; draw.size];
            committee_into(snapshot, &draw.seed, draw.round, draw.step, &mut seats)?;
            Ok(seats)
        })
    }
}

#[pymethods]
impl StakeTable {
    #[new]
    #[pyo3(signature = (balances))]
    fn new(py: Python<'_>, balances: &Bound<'_, PyAny>) -> PyResult<Self> {
        let balances = read_balances(balances, 0)?;
        let stakes = detach_if_large(py, balances.len(), || Stakes::new(balances))?;
        Ok(Self {
            source: Source::Own(stakes),
        })
    }

    /// committee(seed, round, step, size) -> list[int]
    /// --
    ///
    /// The account id of each seat 0 .. size-1 of step `step` of round
    /// `round` (PROTOCOL §3): seat i is the smallest account j with
    /// balance[0] + ... + balance[j] > int_be(VRF_i) mod W. `seed` is
    /// Q[round-1] (32 bytes); round and step are >= 1.
    #[pyo3(signature = (seed, round, step, size))]
    fn committee<'py>(
        &self,
        py: Python<'py>,
        seed: PyBackedBytes,
        round: &Bound<'py, PyAny>,
        step: &Bound<'py, PyAny>,
        size: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let seats = self.seats(py, &Draw::read(&seed, round, step, size)?)?;
        PyList::new(py, seats)
    }

    /// weights(seed, round, step, size) -> dict[int, int]
    /// --
    ///
    /// Seats held per account in the same committee, in order of each
    /// account's first (lowest) seat.
    #[pyo3(signature = (seed, round, step, size))]
    fn weights<'py>(
        &self,
        py: Python<'py>,
        seed: PyBackedBytes,
        round: &Bound<'py, PyAny>,
        step: &Bound<'py, PyAny>,
        size: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let seats = self.seats(py, &Draw::read(&seed, round, step, size)?)?;
        let mut order: Vec<(u64, u64)> = Vec::new();
        let mut index = std::collections::HashMap::with_capacity(seats.len());
        for seat in seats {
            let slot = *index.entry(seat).or_insert_with(|| {
                order.push((seat, 0));
                order.len() - 1
            });
            if let Some(entry) = order.get_mut(slot) {
                entry.1 += 1;
            }
        }
        let dict = PyDict::new(py);
        for (account, count) in order {
            dict.set_item(account, count)?;
        }
        Ok(dict)
    }

    /// update(mapping) -> None
    /// --
    ///
    /// Sets the balance of each `{account_id: new_balance}` in place, O(log n)
    /// each. All or nothing: an unknown account, a balance that is not a u64,
    /// or a new total >= 2^63 raises ValueError and changes nothing.
    #[pyo3(signature = (mapping))]
    fn update(&mut self, py: Python<'_>, mapping: &Bound<'_, PyAny>) -> PyResult<()> {
        let stakes = self.own_mut("update")?;
        let changes = read_changes(mapping, stakes.len())?;
        detach_if_large(py, changes.len(), || stakes.update(&changes))?;
        Ok(())
    }

    /// append(balance) -> int
    /// --
    ///
    /// Adds an account with `balance`; returns its id (the previous length).
    #[pyo3(signature = (balance))]
    fn append(&mut self, balance: &Bound<'_, PyAny>) -> PyResult<usize> {
        let stakes = self.own_mut("append")?;
        let id = stakes.len();
        let b = balance_of(balance, id)?;
        stakes.extend(&[b])?;
        Ok(id)
    }

    /// extend(balances) -> None
    /// --
    ///
    /// Adds accounts with `balances` (anything the constructor takes), ids
    /// len(self) onwards. All or nothing.
    #[pyo3(signature = (balances))]
    fn extend(&mut self, py: Python<'_>, balances: &Bound<'_, PyAny>) -> PyResult<()> {
        let stakes = self.own_mut("extend")?;
        let balances = read_balances(balances, stakes.len())?;
        detach_if_large(py, balances.len(), || stakes.extend(&balances))?;
        Ok(())
    }

    /// balance(account_id) -> int
    /// --
    ///
    /// The balance of an account; ValueError when the table has no such account.
    #[pyo3(signature = (account_id))]
    fn balance(&self, py: Python<'_>, account_id: &Bound<'_, PyAny>) -> PyResult<u64> {
        let account = account_of(account_id, self.__len__(py)?)?;
        self.read(py, 0, |s| Ok(s.balance(account)))?
            .ok_or_else(|| PyValueError::new_err(format!("unknown account {account}")))
    }

    /// W: the sum of all balances.
    #[getter]
    fn total(&self, py: Python<'_>) -> PyResult<u64> {
        self.read(py, 0, |s| Ok(s.total()))
    }

    /// Bytes of memory the table holds (balances, tree and the object's fields); a
    /// ledger's table counts only what it holds besides the ledger's tree.
    #[getter]
    fn nbytes(&self, py: Python<'_>) -> PyResult<usize> {
        match &self.source {
            Source::Own(stakes) => Ok(stakes.nbytes()),
            Source::Ledger { .. } => {
                let own = self.read(py, 0, |s| Ok(s.nbytes()))?;
                Ok(std::mem::size_of::<Self>() + own)
            }
        }
    }

    /// copy() -> StakeTable
    /// --
    ///
    /// An independent snapshot: later changes to either table do not touch the other.
    /// A ledger's table becomes a table of its own (O(n)).
    fn copy(&self, py: Python<'_>) -> PyResult<Self> {
        let stakes = self.read(py, DETACH_MIN, |s| Ok(s.to_stakes()))?;
        Ok(Self {
            source: Source::Own(stakes),
        })
    }

    fn __copy__(&self, py: Python<'_>) -> PyResult<Self> {
        self.copy(py)
    }

    #[pyo3(signature = (_memo))]
    fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> PyResult<Self> {
        self.copy(py)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.read(py, 0, |s| Ok(s.len()))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let what = self.read(py, 0, |s| Ok((s.len(), s.total())));
        let after = match &self.source {
            Source::Own(_) => String::new(),
            Source::Ledger { after, .. } => format!(" after block {after} of a ledger"),
        };
        match what {
            Ok((len, total)) => format!("StakeTable(<{len} accounts, total {total}>{after})"),
            Err(e) => format!("StakeTable(<{e}>)"),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StakeTable>()?;
    m.add_class::<StakeHistory>()?;
    m.add("MAX_SEATS", MAX_SEATS)?;
    Ok(())
}
