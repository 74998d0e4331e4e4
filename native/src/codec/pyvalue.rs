//! What every value class shows Python, written once: its fields (getters,
//! `__match_args__`, `__repr__`), pickling by its encoding, and copies.

use std::fmt::Write;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::IntoPyObjectExt;

/// A field of a value class as Python sees it: what its getter returns, and
/// how `__repr__` shows it.
pub trait PyField {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
    fn repr(&self, out: &mut String);
}

macro_rules! int_fields {
    ($($t:ty),*) => {$(
        /// An `int`.
        impl PyField for $t {
            fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.into_bound_py_any(py)
            }

            fn repr(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

int_fields!(u8, u16, u32, u64);

/// A `bytes`, shown as `bytes.fromhex('…')` (a repr that evaluates back to it).
impl PyField for [u8] {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyBytes::new(py, self).into_any())
    }

    fn repr(&self, out: &mut String) {
        out.reserve(self.len() * 2 + 16);
        out.push_str("bytes.fromhex('");
        for b in self {
            let _ = write!(out, "{b:02x}");
        }
        out.push_str("')");
    }
}

impl<const N: usize> PyField for [u8; N] {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.as_slice().to_py(py)
    }

    fn repr(&self, out: &mut String) {
        self.as_slice().repr(out);
    }
}

impl<T: PyField + ?Sized> PyField for &T {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        (**self).to_py(py)
    }

    fn repr(&self, out: &mut String) {
        (**self).repr(out);
    }
}

/// The field, or `None`.
impl<T: PyField> PyField for Option<T> {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Some(v) => v.to_py(py),
            None => Ok(py.None().into_bound(py)),
        }
    }

    fn repr(&self, out: &mut String) {
        match self {
            Some(v) => v.repr(out),
            None => out.push_str("None"),
        }
    }
}

/// How a `__repr__` shows a field of many items: `()`, `<1 vote>`, `<3 votes>`.
pub fn count_repr(out: &mut String, n: usize, noun: &str) {
    let _ = match n {
        0 => write!(out, "()"),
        1 => write!(out, "<1 {noun}>"),
        n => write!(out, "<{n} {noun}s>"),
    };
}

/// `Class(name=value, ...)`, each value shown by its `PyField::repr`.
pub struct Repr {
    out: String,
    first: bool,
}

impl Repr {
    pub fn new(class: &str) -> Self {
        let mut out = String::with_capacity(256);
        out.push_str(class);
        out.push('(');
        Repr { out, first: true }
    }

    pub fn field<T: PyField + ?Sized>(&mut self, name: &str, value: &T) {
        if !self.first {
            self.out.push_str(", ");
        }
        self.first = false;
        self.out.push_str(name);
        self.out.push('=');
        value.repr(&mut self.out);
    }

    pub fn finish(mut self) -> String {
        self.out.push(')');
        self.out
    }
}

/// One item of an [`Items`] list: its Python object, and its noun in a repr.
pub trait Item {
    const NOUN: &'static str;
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
}

/// A list whose Python tuple is made on first access and then kept; a
/// `__repr__` shows its count.
pub struct Items<T> {
    list: Vec<T>,
    tuple: PyOnceLock<Py<PyTuple>>,
}

impl<T> Items<T> {
    pub fn new(list: Vec<T>) -> Self {
        Items {
            list,
            tuple: PyOnceLock::new(),
        }
    }

    pub fn as_slice(&self) -> &[T] {
        &self.list
    }
}

impl<T: Item> Items<T> {
    /// From a Python iterable of at most `limit` items, each made by `item(obj, index)`;
    /// errors name `path` (e.g. `certificate.votes`).
    pub fn from_py(
        items: &Bound<'_, PyAny>,
        path: &str,
        limit: usize,
        mut item: impl FnMut(&Bound<'_, PyAny>, usize) -> PyResult<T>,
    ) -> PyResult<Self> {
        let mut list = Vec::new();
        for (i, obj) in items.try_iter()?.enumerate() {
            if i == limit {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "{path}: more than the limit of {limit} {}s",
                    T::NOUN
                )));
            }
            list.push(item(&obj?, i)?);
        }
        Ok(Items::new(list))
    }
}

/// A copy of the items; its tuple is made again on first access.
impl<T: Clone> Clone for Items<T> {
    fn clone(&self) -> Self {
        Items::new(self.list.clone())
    }
}

impl<T: PartialEq> PartialEq for Items<T> {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

/// A tuple of the items' objects (made once).
impl<T: Item> PyField for Items<T> {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tuple = self.tuple.get_or_try_init(py, || {
            let items = self
                .list
                .iter()
                .map(|item| item.to_py(py))
                .collect::<PyResult<Vec<_>>>()?;
            PyResult::Ok(PyTuple::new(py, items)?.unbind())
        })?;
        Ok(tuple.bind(py).clone().into_any())
    }

    fn repr(&self, out: &mut String) {
        count_repr(out, self.list.len(), T::NOUN);
    }
}
