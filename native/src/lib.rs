//! The native hot path of echorand, exposed to Python as `echorand._native`.
//!
//! Pure functions and compact data structures only: SHA-256 hash chains for
//! sortition, the stake table, Ed25519 verification, the ECVRF of RFC 9381,
//! the wire codec and the loops of the studies.
//! Every long call releases the GIL; every error becomes a Python exception.

use pyo3::prelude::*;

mod chain;
mod codec;
mod ed25519;
mod grinding;
mod leader;
mod pool;
mod stake;
mod state;
mod vrf;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    chain::register(m)?;
    stake::register(m)?;
    ed25519::register(m)?;
    codec::register(m)?;
    leader::register(m)?;
    pool::register(m)?;
    state::register(m)?;
    vrf::register(m)?;
    grinding::register(m)?;
    Ok(())
}
