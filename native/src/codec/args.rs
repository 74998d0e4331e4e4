//! Turning constructor arguments into checked Rust values, with errors that
//! name the field (`ValueError` for a bad value, `TypeError` for a bad type).

use std::borrow::Cow;
use std::fmt::Display;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyTuple};

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// An unsigned integer argument in `[0, max]`.
pub fn uint(obj: &Bound<'_, PyAny>, field: impl Display, max: u64) -> PyResult<u64> {
    if !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{field}: expected int, got {}",
            type_name(obj)
        )));
    }
    match obj.extract::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(PyValueError::new_err(format!(
            "{field}: must be in [0, {max}], got {obj}"
        ))),
    }
}

pub fn u8_arg(obj: &Bound<'_, PyAny>, field: impl Display) -> PyResult<u8> {
    Ok(uint(obj, field, u8::MAX.into())? as u8)
}

pub fn u16_arg(obj: &Bound<'_, PyAny>, field: impl Display) -> PyResult<u16> {
    Ok(uint(obj, field, u16::MAX.into())? as u16)
}

pub fn u32_arg(obj: &Bound<'_, PyAny>, field: impl Display) -> PyResult<u32> {
    Ok(uint(obj, field, u32::MAX.into())? as u32)
}

pub fn u64_arg(obj: &Bound<'_, PyAny>, field: impl Display) -> PyResult<u64> {
    uint(obj, field, u64::MAX)
}

/// The two items of a 2-tuple argument `field`, described as `what` in the
/// error (e.g. `(signer, signature)`).
pub fn pair<'py>(
    obj: &Bound<'py, PyAny>,
    field: impl Display,
    what: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    match obj.cast::<PyTuple>() {
        Ok(t) if t.len() == 2 => Ok((t.get_item(0)?, t.get_item(1)?)),
        _ => Err(PyTypeError::new_err(format!(
            "{field}: expected a {what} tuple"
        ))),
    }
}

/// A bytes-like object's contents: borrowed from `bytes` (immutable, so the
/// slice stays valid and may be read without the GIL), copied from any other
/// buffer (a `bytearray` or `memoryview` can change under us).
pub fn bytes_like<'a>(obj: &'a Bound<'_, PyAny>, field: impl Display) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    let not_bytes = || {
        PyTypeError::new_err(format!(
            "{field}: expected a bytes-like object, got {}",
            type_name(obj)
        ))
    };
    if obj.is_instance_of::<PyInt>() {
        return Err(not_bytes());
    }
    let buffer = PyBuffer::<u8>::get(obj).map_err(|_| not_bytes())?;
    Ok(Cow::Owned(buffer.to_vec(obj.py())?))
}

/// A bytes-like argument of exactly `N` bytes.
pub fn fixed<const N: usize>(obj: &Bound<'_, PyAny>, field: impl Display) -> PyResult<[u8; N]> {
    let data = bytes_like(obj, &field)?;
    match data.as_ref().try_into() {
        Ok(array) => Ok(array),
        Err(_) => Err(PyValueError::new_err(format!(
            "{field}: must be {N} bytes, got {}",
            data.len()
        ))),
    }
}

/// The `chain` argument of every `signing_bytes` method: the 32-byte genesis hash that
/// binds a signature to its network (PROTOCOL §2).
pub fn chain(obj: &Bound<'_, PyAny>) -> PyResult<[u8; 32]> {
    fixed::<32>(obj, "chain")
}
