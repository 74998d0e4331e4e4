//! Batch verification with one signature per vector lane (AVX-512 IFMA).
//!
//! The same rule as the rest of this module, ZIP 215, checked a different
//! way. Each signature i gets a random 128-bit coefficient z_i and the
//! signatures are dealt into eight groups, one per lane. A lane computes
//!
//! ```text
//! [8] ( sum over its group of ([z_i]R_i + [z_i k_i]A_i) - [sum z_i S_i]B )
//! ```
//!
//! and its group passes when that is the identity. A group of valid
//! signatures always passes (each term is [z_i] times a point that [8]
//! sends to the identity). A group holding an invalid signature passes with
//! probability at most about 2^-128 over z_i: [8](R_i + [k_i]A_i - [S_i]B)
//! is then a point of order L, and the sum vanishes for one value of z_i
//! mod L given the others. A group of one signature passes exactly when it
//! is valid, for any z_i that is not 0 mod L: no randomness in that answer.
//!
//! So a chunk is checked as eight groups at once; the signatures of the
//! groups that pass are valid; failing groups are split and checked again,
//! eight groups per run, until every signature in a failing group is alone
//! (see `narrow`). Signatures with S >= L or an A or R that does not decode
//! are invalid before any of this, as in single verification.
//!
//! Decoding, tables, the multiscalar multiplication and the hashing (eight
//! SHA-512s at once) run in `ifma`; the scalar arithmetic mod L stays
//! scalar code here.

use std::cell::Cell;

use curve25519_dalek::scalar::Scalar;
use rand::rngs::StdRng;
use rand::RngExt;

use super::ifma;
use super::ifma::msm::{Digits, Line, Slot, Tables, DIGITS, SHORT_DIGITS};
use super::ifma::sha512;

/// Lanes in a vector: groups checked by one run.
const LANES: usize = 8;

/// One signature to check.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    pub key: &'a [u8; 32],
    pub sig: &'a [u8; 64],
    pub msg: &'a [u8],
}

/// A chunk's signatures, decoded and hashed once for all the runs that
/// check them.
struct Prepared {
    /// Block 0 is B's table, block 1 + 2i is A_i's, block 2 + 2i is R_i's.
    tables: Tables,
    /// S < L and both A and R decode.
    usable: Vec<bool>,
    /// The digits of z_i k_i mod L (for A_i) and of z_i (for R_i).
    a: Vec<Digits<DIGITS>>,
    r: Vec<Digits<SHORT_DIGITS>>,
    /// z_i and S_i (as four little-endian words), for the sums of z_i S_i.
    z: Vec<u128>,
    s: Vec<[u64; 4]>,
}

/// Every signature's ZIP 215 answer, or `None` when this CPU has no
/// AVX-512 IFMA (the caller then takes the portable path).
pub fn verify(items: &[Item<'_>], rng: &mut StdRng) -> Option<Vec<bool>> {
    if !ifma::available() {
        return None;
    }
    thread_local! {
        /// Table memory kept from chunk to chunk, so that each chunk's
        /// tables (up to about 0.9 MB) need no fresh pages.
        static TABLE_MEMORY: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
    }
    let memory = TABLE_MEMORY.take();
    let prepared = prepare(items, memory, rng);
    let mut answers = vec![false; items.len()];
    let usable: Vec<usize> = (0..items.len()).filter(|&i| prepared.usable[i]).collect();
    narrow(&prepared, split(&usable, LANES), &mut answers);
    TABLE_MEMORY.set(prepared.tables.into_buffer());
    Some(answers)
}

/// Decodes, tabulates (in `memory`), hashes and draws the coefficients.
fn prepare(items: &[Item<'_>], memory: Vec<Line>, rng: &mut StdRng) -> Prepared {
    let n = items.len();
    let mut tables = Tables::in_buffer(memory, 1 + 2 * n);
    // SAFETY: `verify` returned early unless the CPU has AVX-512F and IFMA.
    tables.set_block(0, unsafe { ifma::msm::basepoint_block() });
    let mut decoded = vec![false; 2 * n];
    let encodings: Vec<[u8; 32]> = items
        .iter()
        .flat_map(|it| [*it.key, it.sig[..32].try_into().expect("32 bytes")])
        .collect();
    // Sixteen points per call: two vectors whose decodings interleave.
    for (c, chunk) in encodings.chunks(2 * LANES).enumerate() {
        let mut vectors = [[[0u8; 32]; LANES]; 2];
        for (q, enc) in chunk.iter().enumerate() {
            vectors[q / LANES][q % LANES] = *enc;
        }
        // SAFETY: as above, the CPU has AVX-512F and IFMA.
        let points = unsafe { ifma::point::decompress(&vectors) };
        for (v, (point, mask)) in points.iter().enumerate() {
            let first = c * 2 * LANES + v * LANES;
            let count = chunk.len().saturating_sub(v * LANES).min(LANES);
            if count == 0 {
                continue;
            }
            for lane in 0..count {
                decoded[first + lane] = mask >> lane & 1 == 1;
            }
            // SAFETY: as above.
            unsafe { tables.store_points(1 + first, count, point) };
        }
    }
    let mut prepared = Prepared {
        tables,
        usable: vec![false; n],
        a: vec![Digits::ZERO; n],
        r: vec![Digits::ZERO; n],
        z: vec![0; n],
        s: vec![[0; 4]; n],
    };
    let usable: Vec<(usize, [u64; 4])> = items
        .iter()
        .enumerate()
        .filter(|&(i, _)| decoded[2 * i] && decoded[2 * i + 1])
        .filter_map(|(i, item)| below_l(&item.sig[32..]).map(|s| (i, s)))
        .collect();
    for group in usable.chunks(LANES) {
        let ks = challenges(items, group);
        for (&(i, s), k) in group.iter().zip(ks) {
            let z = loop {
                let z: u128 = rng.random();
                if z != 0 {
                    break z;
                }
            };
            let z_scalar = Scalar::from(z);
            prepared.usable[i] = true;
            prepared.a[i] = Digits::new((z_scalar * k).as_bytes());
            prepared.r[i] = Digits::new(z_scalar.as_bytes());
            prepared.z[i] = z;
            prepared.s[i] = s;
        }
    }
    prepared
}

/// The group order L = 2^252 + 27742317777372353535851937790883648493 as
/// little-endian words.
const L_WORDS: [u64; 4] = [
    0x5812_631a_5cf5_d3ed,
    0x14de_f9de_a2f7_9cd6,
    0,
    0x1000_0000_0000_0000,
];

/// The 32 little-endian bytes of S as words, if S < L (ZIP 215 and RFC 8032
/// refuse a larger S). S is public: a plain comparison, not a constant-time
/// one.
fn below_l(bytes: &[u8]) -> Option<[u64; 4]> {
    let s: [u64; 4] = core::array::from_fn(|w| {
        u64::from_le_bytes(bytes[8 * w..8 * w + 8].try_into().expect("32 bytes"))
    });
    // Lexicographic from the top word: the first that differs decides.
    let below = s
        .iter()
        .rev()
        .zip(L_WORDS.iter().rev())
        .find(|(a, b)| a != b)
        .is_some_and(|(a, b)| a < b);
    below.then_some(s)
}

/// k = SHA-512(R || A || M) mod L, over the bytes as given, for up to eight
/// signatures (`group` holds their indices first), hashed in the lanes.
fn challenges(items: &[Item<'_>], group: &[(usize, [u64; 4])]) -> Vec<Scalar> {
    let at = |lane: usize| &items[group[lane.min(group.len() - 1)].0];
    let prefixes: [[u8; 64]; LANES] = core::array::from_fn(|lane| {
        let mut prefix = [0u8; 64];
        prefix[..32].copy_from_slice(&at(lane).sig[..32]);
        prefix[32..].copy_from_slice(at(lane).key);
        prefix
    });
    let inputs: [sha512::Input<'_>; LANES] = core::array::from_fn(|lane| sha512::Input {
        prefix: &prefixes[lane],
        message: at(lane).msg,
    });
    // SAFETY: `prepare` runs only once `verify` has found AVX-512F and IFMA.
    let digests = unsafe { sha512::sha512x8(&inputs) };
    digests[..group.len()]
        .iter()
        .map(Scalar::from_bytes_mod_order_wide)
        .collect()
}

/// Whether each group passes, eight groups per run.
fn check(prepared: &Prepared, groups: &[Vec<usize>]) -> Vec<bool> {
    groups
        .chunks(LANES)
        .flat_map(|run| {
            let mask = run_groups(prepared, run);
            (0..run.len()).map(move |j| mask >> j & 1 == 1)
        })
        .collect()
}

/// One run: group j in lane j (at most eight); the mask of lanes that pass.
fn run_groups(prepared: &Prepared, groups: &[Vec<usize>]) -> u8 {
    debug_assert!(groups.len() <= LANES);
    let width = groups.iter().map(Vec::len).max().unwrap_or(0);
    let slots: Vec<Slot<'_>> = (0..width)
        .map(|s| {
            let at = |j: usize| groups.get(j).and_then(|g| g.get(s)).copied();
            Slot {
                a_block: core::array::from_fn(|j| at(j).map_or(0, |i| 1 + 2 * i)),
                a: core::array::from_fn(|j| at(j).map_or(&Digits::ZERO, |i| &prepared.a[i])),
                r_block: core::array::from_fn(|j| at(j).map_or(0, |i| 2 + 2 * i)),
                r: core::array::from_fn(|j| at(j).map_or(&Digits::ZERO, |i| &prepared.r[i])),
            }
        })
        .collect();
    let b: [Digits<DIGITS>; LANES] = core::array::from_fn(|j| {
        let sum = groups.get(j).map_or(Scalar::ZERO, |g| {
            sum_of_products(g.iter().map(|&i| (prepared.z[i], &prepared.s[i])))
        });
        Digits::new((-sum).as_bytes())
    });
    // SAFETY: `prepared` exists only once `verify` has found AVX-512F and
    // IFMA on this CPU.
    unsafe { ifma::msm::run(&prepared.tables, &slots, &b) }
}

/// The sum of the products z S, mod L: the products (below 2^381) summed
/// as integers, then reduced once. The sum stays below 2^512, what the
/// reduction takes, for fewer than 2^131 terms.
fn sum_of_products<'a>(terms: impl Iterator<Item = (u128, &'a [u64; 4])>) -> Scalar {
    let mut sum = [0u64; 8];
    for (z, s) in terms {
        let z = [z as u64, (z >> 64) as u64];
        for (a, &za) in z.iter().enumerate() {
            let mut carry = 0u128;
            for (b, &sb) in s.iter().enumerate() {
                let t = za as u128 * sb as u128 + sum[a + b] as u128 + carry;
                sum[a + b] = t as u64;
                carry = t >> 64;
            }
            for word in &mut sum[a + 4..] {
                let t = *word as u128 + carry;
                *word = t as u64;
                carry = t >> 64;
            }
        }
    }
    let mut bytes = [0u8; 64];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(sum) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Scalar::from_bytes_mod_order_wide(&bytes)
}

/// `items` cut into at most `parts` runs of consecutive items, of lengths
/// differing by at most one.
fn split(items: &[usize], parts: usize) -> Vec<Vec<usize>> {
    let parts = parts.min(items.len()).max(1);
    let (base, extra) = (items.len() / parts, items.len() % parts);
    let mut out = Vec::with_capacity(parts);
    let mut at = 0;
    for p in 0..parts {
        let len = base + usize::from(p < extra);
        out.push(items[at..at + len].to_vec());
        at += len;
    }
    out.retain(|g| !g.is_empty());
    out
}

/// Checks `groups` and sets the answer of every signature in them.
///
/// A passing group's signatures are valid, a failing group of one is
/// invalid. The failing larger groups hold an invalid signature each: they
/// are split again, into enough parts to fill the eight lanes of a run
/// (halves at least), and checked again. When more than half the groups
/// checked fail, invalid signatures are dense, and the failing groups'
/// signatures are checked alone, eight per run: that bounds what an
/// attacker can make a chunk cost to about one run of single checks per
/// eight signatures beyond the batch.
fn narrow(prepared: &Prepared, mut groups: Vec<Vec<usize>>, answers: &mut [bool]) {
    while !groups.is_empty() {
        let passed = check(prepared, &groups);
        let mut failing = Vec::new();
        for (group, ok) in groups.into_iter().zip(&passed) {
            if *ok {
                for &i in &group {
                    answers[i] = true;
                }
            } else if group.len() > 1 {
                failing.push(group);
            }
        }
        let suspects: usize = failing.iter().map(Vec::len).sum();
        let dense = 2 * failing.len() > passed.len();
        groups = if dense || suspects <= LANES {
            failing.concat().into_iter().map(|i| vec![i]).collect()
        } else {
            let parts = LANES.div_ceil(failing.len()).max(2);
            failing.iter().flat_map(|g| split(g, parts)).collect()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ed25519::ifma::tests::Rng;
    use rand::SeedableRng;

    fn signed(n: usize, seed: u64) -> Vec<([u8; 32], [u8; 64], Vec<u8>)> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|i| {
                let sk = ed25519_zebra::SigningKey::from(rng.bytes::<32>());
                let msg: Vec<u8> = (0..(i * 7) % 150).map(|_| rng.next() as u8).collect();
                let sig = sk.sign(&msg).to_bytes();
                (
                    ed25519_zebra::VerificationKeyBytes::from(&sk).into(),
                    sig,
                    msg,
                )
            })
            .collect()
    }

    fn items(cases: &[([u8; 32], [u8; 64], Vec<u8>)]) -> Vec<Item<'_>> {
        cases
            .iter()
            .map(|(key, sig, msg)| Item { key, sig, msg })
            .collect()
    }

    #[test]
    fn below_l_is_dalek_canonical_scalar() {
        let mut rng = Rng(31);
        let l: [u8; 32] = core::array::from_fn(|i| (L_WORDS[i / 8] >> (8 * (i % 8))) as u8);
        let mut cases = vec![l, [0; 32], [0xff; 32]];
        for delta in [1u8, 2, 255] {
            let mut below = l;
            below[0] -= delta.min(l[0]);
            cases.push(below);
            let mut above = l;
            above[0] = above[0].wrapping_add(delta);
            cases.push(above);
        }
        for _ in 0..1000 {
            let mut s: [u8; 32] = rng.bytes();
            s[31] &= [0x0f, 0x1f, 0x10, 0xff][(rng.next() % 4) as usize];
            cases.push(s);
        }
        for s in cases {
            let dalek: Option<Scalar> = Scalar::from_canonical_bytes(s).into();
            assert_eq!(below_l(&s).is_some(), dalek.is_some(), "{s:02x?}");
        }
    }

    #[test]
    fn sums_of_products_agree_with_scalar_arithmetic() {
        let mut rng = Rng(21);
        for n in [0, 1, 2, 7, 256, 1000] {
            let terms: Vec<(u128, Scalar)> = (0..n)
                .map(|_| {
                    let z = u128::from(rng.next()) << 64 | u128::from(rng.next());
                    (z, Scalar::from_bytes_mod_order(rng.bytes()))
                })
                .collect();
            let words: Vec<[u64; 4]> = terms
                .iter()
                .map(|(_, s)| {
                    core::array::from_fn(|w| {
                        u64::from_le_bytes(s.as_bytes()[8 * w..8 * w + 8].try_into().unwrap())
                    })
                })
                .collect();
            let want: Scalar = terms.iter().map(|(z, s)| Scalar::from(*z) * s).sum();
            let got = sum_of_products(terms.iter().zip(&words).map(|((z, _), s)| (*z, s)));
            assert_eq!(got, want, "n={n}");
        }
    }

    #[test]
    fn valid_signatures_pass_and_a_flipped_one_fails_alone() {
        if !ifma::available() {
            return;
        }
        let mut rng = StdRng::seed_from_u64(1);
        for n in [1, 2, 7, 8, 9, 17, 64, 100] {
            let mut cases = signed(n, n as u64);
            assert_eq!(
                verify(&items(&cases), &mut rng),
                Some(vec![true; n]),
                "n={n}"
            );
            let bad = n / 2;
            cases[bad].1[40] ^= 4;
            let mut want = vec![true; n];
            want[bad] = false;
            assert_eq!(verify(&items(&cases), &mut rng), Some(want), "n={n}");
        }
    }
}
