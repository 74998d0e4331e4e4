//! Reading Python arguments: ints that must fit a range, 32-byte seeds, and
//! error messages that name the argument and show the bad value.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyInt;

use super::HASH_SIZE;

/// Why a Python object is not a u64.
pub enum NotU64 {
    Negative,
    TooBig,
    NotInt,
}

/// The object as a u64, or why it is not one.
pub fn to_u64(obj: &Bound<'_, PyAny>) -> Result<u64, NotU64> {
    if let Ok(v) = obj.extract::<u64>() {
        return Ok(v);
    }
    if !obj.is_instance_of::<PyInt>() {
        return Err(NotU64::NotInt);
    }
    match obj.lt(0) {
        Ok(true) => Err(NotU64::Negative),
        _ => Err(NotU64::TooBig),
    }
}

/// `repr(obj)`, cut to 60 characters.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.repr() {
        Ok(r) => {
            let s = r.to_string();
            if s.chars().count() > 60 {
                format!("{}...", s.chars().take(57).collect::<String>())
            } else {
                s
            }
        }
        Err(_) => "<unprintable>".to_owned(),
    }
}

/// The name of the object's type.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// An int argument `name` in `min ..= max`: TypeError when it is not an int,
/// ValueError when it is out of range.
pub fn int_arg(obj: &Bound<'_, PyAny>, name: &str, min: u64, max: u64) -> PyResult<u64> {
    match to_u64(obj) {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Err(NotU64::NotInt) => Err(PyTypeError::new_err(format!(
            "{name} must be an int, got {}",
            type_name(obj)
        ))),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be in {min} ..= {max}, got {}",
            describe(obj)
        ))),
    }
}

/// The 32-byte seed `Q[r-1]`, or a `ValueError` naming its length.
pub fn seed_array(seed: &[u8]) -> PyResult<[u8; HASH_SIZE]> {
    seed.try_into().map_err(|_| {
        PyValueError::new_err(format!(
            "seed must be {HASH_SIZE} bytes, got {}",
            seed.len()
        ))
    })
}
