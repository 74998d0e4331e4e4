//! The sortition hash chain VRF(r, s) of PROTOCOL §3:
//!
//! ```text
//! VRF_0(r, s) = H(Q[r-1] || u64be(r) || u32be(s))
//! VRF_i(r, s) = H(VRF_{i-1}(r, s))
//! ```
//!
//! Each link hashes exactly 32 bytes, so it is one SHA-256 compression of a
//! block padded once and for all (`digest || 0x80 || zeros || u64be(256)`).
//! `sha2::compress256` picks the CPU's SHA extensions (SHA-NI) at run time;
//! calling it directly skips the generic digest's buffering.

pub mod args;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use args::{int_arg, seed_array};
use sha2::block_api::compress256;

/// The SHA-256 initial state (FIPS 180-4 §5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Length in bytes of the seed `Q[r-1]` and of every link.
pub const HASH_SIZE: usize = 32;

/// Bytes hashed for `VRF_0`: seed, `u64be(r)`, `u32be(s)`.
const SEED_INPUT_LEN: usize = HASH_SIZE + 8 + 4;

/// Most links one call may ask for (128 MiB of output).
pub const MAX_LINKS: usize = 1 << 22;

/// A link of the chain as SHA-256 state words: the digest is their big-endian bytes.
pub type Link = [u32; 8];

/// The digest bytes of a link.
#[inline]
pub fn link_bytes(link: &Link) -> [u8; HASH_SIZE] {
    let mut out = [0u8; HASH_SIZE];
    for (chunk, word) in out.chunks_exact_mut(4).zip(link) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// One padded block holding a message of `len < 56` bytes taken from `data`.
fn padded_block(data: &[u8]) -> [u8; 64] {
    debug_assert!(data.len() < 56);
    let mut block = [0u8; 64];
    block[..data.len()].copy_from_slice(data);
    block[data.len()] = 0x80;
    block[56..].copy_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    block
}

/// `H(data)` for a message shorter than 56 bytes: one compression, as state words.
pub fn sha256_short(data: &[u8]) -> Link {
    let mut state = H0;
    compress256(&mut state, &[padded_block(data)]);
    state
}

/// `VRF_0(r, s) = H(seed || u64be(round) || u32be(step))`.
pub fn vrf0(seed: &[u8; HASH_SIZE], round: u64, step: u32) -> Link {
    let mut input = [0u8; SEED_INPUT_LEN];
    input[..HASH_SIZE].copy_from_slice(seed);
    input[HASH_SIZE..HASH_SIZE + 8].copy_from_slice(&round.to_be_bytes());
    input[HASH_SIZE + 8..].copy_from_slice(&step.to_be_bytes());
    sha256_short(&input)
}

/// The chain `VRF_0, VRF_1, ...` as an endless iterator of links.
///
/// A link is hashed only when it is asked for: taking `n` links costs the
/// hash of `VRF_0` and `n - 1` compressions.
#[derive(Clone, Debug)]
pub struct VrfChain {
    current: Link,
    started: bool,
    block: [u8; 64],
}

impl VrfChain {
    pub fn new(seed: &[u8; HASH_SIZE], round: u64, step: u32) -> Self {
        Self {
            current: vrf0(seed, round, step),
            started: false,
            block: padded_block(&[0u8; HASH_SIZE]),
        }
    }

    /// `H(link)`: one compression of the pre-padded block.
    #[inline]
    fn hash_current(&mut self) {
        for (chunk, word) in self.block[..HASH_SIZE]
            .chunks_exact_mut(4)
            .zip(&self.current)
        {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        self.current = H0;
        compress256(&mut self.current, core::slice::from_ref(&self.block));
    }
}

impl Iterator for VrfChain {
    type Item = Link;

    #[inline]
    fn next(&mut self) -> Option<Link> {
        if self.started {
            self.hash_current();
        } else {
            self.started = true;
        }
        Some(self.current)
    }
}

/// Writes `VRF_0 .. VRF_{k-1}` into `out` (`k = out.len() / 32`, `out.len()` a multiple of 32).
pub fn fill_chain(seed: &[u8; HASH_SIZE], round: u64, step: u32, out: &mut [u8]) {
    for (chunk, link) in out
        .chunks_exact_mut(HASH_SIZE)
        .zip(VrfChain::new(seed, round, step))
    {
        chunk.copy_from_slice(&link_bytes(&link));
    }
}

/// vrf_chain(seed, round, step, count) -> bytes
/// --
///
/// The links VRF_0(r, s) .. VRF_{count-1}(r, s) of PROTOCOL §3, concatenated
/// (count * 32 bytes). `seed` is Q[r-1] (32 bytes), `round` a u64, `step` a
/// u32, `count` at most MAX_LINKS.
#[pyfunction]
#[pyo3(signature = (seed, round, step, count))]
fn vrf_chain<'py>(
    py: Python<'py>,
    seed: PyBackedBytes,
    round: &Bound<'py, PyAny>,
    step: &Bound<'py, PyAny>,
    count: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seed = seed_array(&seed)?;
    let round = int_arg(round, "round", 0, u64::MAX)?;
    let step = int_arg(step, "step", 0, u32::MAX.into())? as u32;
    let count = int_arg(count, "count", 0, MAX_LINKS as u64)? as usize;
    PyBytes::new_with(py, count * HASH_SIZE, |out| {
        // The bytes object is not visible to Python until we return: nothing else touches `out`.
        py.detach(|| fill_chain(&seed, round, step, out));
        Ok(())
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(vrf_chain, m)?)?;
    m.add("HASH_SIZE", HASH_SIZE)?;
    m.add("MAX_LINKS", MAX_LINKS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn reference(seed: &[u8; 32], round: u64, step: u32, count: usize) -> Vec<[u8; 32]> {
        let mut out = Vec::with_capacity(count);
        let mut h: [u8; 32] = Sha256::new()
            .chain_update(seed)
            .chain_update(round.to_be_bytes())
            .chain_update(step.to_be_bytes())
            .finalize()
            .into();
        for _ in 0..count {
            out.push(h);
            h = Sha256::digest(h).into();
        }
        out
    }

    #[test]
    fn chain_matches_the_generic_digest() {
        let seed: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for (round, step) in [(1, 1), (u64::MAX, u32::MAX), (12345, 7)] {
            let ours: Vec<[u8; 32]> = VrfChain::new(&seed, round, step)
                .take(50)
                .map(|l| link_bytes(&l))
                .collect();
            assert_eq!(ours, reference(&seed, round, step, 50));
        }
    }

    #[test]
    fn fill_chain_writes_every_link() {
        let seed = [0xabu8; 32];
        let mut out = vec![0u8; 32 * 9];
        fill_chain(&seed, 5, 2, &mut out);
        let expected: Vec<u8> = reference(&seed, 5, 2, 9).concat();
        assert_eq!(out, expected);
    }
}
