//! The permutation of PROTOCOL §7, exactly: the factorial-number-system digits
//! of `T = int_be(digest) mod M!` and the `T`-th lexicographic permutation.
//!
//! `M!` exceeds a u64 from `M = 21`, a u128 from `M = 35` and the 256-bit
//! digest from `M = 58`, so `T` is never formed. Its digits are those of the
//! digest itself in the mixed radix `1, 2, 3, ..., M`: divide the digest by
//! 2, then 3, ... and keep the remainders (`digest = d_1 + 1·(d_2 + 2·(d_3 +
//! ...))`, so `T = Σ d_i·(i-1)!` with `0 <= d_i < i`). Consecutive radices
//! are grouped while their product fits 32 bits, so one long division of
//! the eight 32-bit words of the digest yields several digits at once.

use crate::chain::sha256_short;

/// The most validators an order or a study handles: ids fit a byte.
pub const MAX_VALIDATORS: usize = 256;

/// A SHA-256 digest as its eight big-endian words: the number, most significant word first.
pub type Words = [u32; 8];

/// `H(u32be(h))` as words.
pub fn hash_height(height: u32) -> Words {
    sha256_short(&height.to_be_bytes())
}

/// `H(Q || u64be(r))` as words (`Q` the 32-byte seed `Q[r-1]`).
pub fn hash_seeded(seed: &Words, round: u64) -> Words {
    let mut input = [0u8; 40];
    for (chunk, word) in input[..32].chunks_exact_mut(4).zip(seed) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    input[32..].copy_from_slice(&round.to_be_bytes());
    sha256_short(&input)
}

/// A 32-byte big-endian number (a digest, a seed) as words.
pub fn words_from_bytes(bytes: &[u8; 32]) -> Words {
    let mut words = [0u32; 8];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    words
}

/// A run of consecutive radices `first ..= last` and their product (< 2^32).
#[derive(Clone, Copy, Debug)]
struct Group {
    first: u32,
    last: u32,
    product: u32,
}

/// How to cut a number into its factorial-number-system digits modulo `M!`.
#[derive(Clone, Debug)]
pub struct Radices {
    m: usize,
    groups: Vec<Group>,
}

impl Radices {
    /// The plan for `M` (`1 <= M <= MAX_VALIDATORS`).
    pub fn new(m: usize) -> Self {
        debug_assert!((1..=MAX_VALIDATORS).contains(&m));
        let mut groups = Vec::new();
        let mut i = 2u64;
        while i <= m as u64 {
            let first = i;
            let mut product = i;
            i += 1;
            while i <= m as u64 && product * i <= u64::from(u32::MAX) {
                product *= i;
                i += 1;
            }
            // product <= u32::MAX by the loop condition (a single radix is <= 256).
            groups.push(Group {
                first: first as u32,
                last: (i - 1) as u32,
                product: product as u32,
            });
        }
        Self { m, groups }
    }

    /// `M`: the number of digits.
    pub fn len(&self) -> usize {
        self.m
    }

    /// `digits[i - 1] = d_i` for `i = 1 ..= M`: `int_be(value) mod M! = Σ d_i·(i-1)!`.
    ///
    /// `digits` has at least `M` bytes; `d_i < i <= 256` fits a byte.
    pub fn digits(&self, value: &Words, digits: &mut [u8]) {
        let mut words = *value;
        let mut top = words.iter().position(|&w| w != 0).unwrap_or(8);
        digits[0] = 0;
        for group in &self.groups {
            let product = u64::from(group.product);
            let mut rem = 0u64;
            for word in &mut words[top..] {
                let cur = (rem << 32) | u64::from(*word);
                *word = (cur / product) as u32;
                rem = cur % product;
            }
            while top < 8 && words[top] == 0 {
                top += 1;
            }
            let mut rem = rem as u32;
            for radix in group.first..=group.last {
                digits[radix as usize - 1] = (rem % radix) as u8;
                rem /= radix;
            }
        }
    }
}

/// Writes into `order` the permutation of `pool` (ascending ids, `len >= M`)
/// whose lexicographic index is `T`, given `T`'s digits (`digits[i - 1] = d_i`).
///
/// Position `j` takes the `d_{len - j}`-th of the ids still unused, and
/// `d_i = 0` for `i > M` (`T < M!`): when more than `M` ids are unlocked (the
/// first heights), the first `len - M` positions keep their ascending order.
/// `pool` is used as scratch space.
pub fn permute(pool: &mut [u8], digits: &[u8], order: &mut [u8]) {
    if pool.len() <= 16 {
        return permute_small(pool, digits, order);
    }
    let len = pool.len();
    for (j, slot) in order[..len].iter_mut().enumerate() {
        let radix = len - j;
        let index = digit(digits, radix);
        *slot = pool[index];
        pool.copy_within(index + 1..radix, index);
    }
}

/// `d_radix`, zero above `M`.
#[inline]
fn digit(digits: &[u8], radix: usize) -> usize {
    digits.get(radix - 1).map_or(0, |&d| usize::from(d))
}

/// `permute` for at most 16 ids, held as the bytes of a u128: removing one
/// is two masks and shifts instead of a memmove.
fn permute_small(pool: &[u8], digits: &[u8], order: &mut [u8]) {
    let len = pool.len();
    let mut bytes = [0u8; 16];
    bytes[..len].copy_from_slice(pool);
    let mut rest = u128::from_le_bytes(bytes);
    for (j, slot) in order[..len].iter_mut().enumerate() {
        // index < radix <= 16: shifts stay below 128.
        let shift = 8 * digit(digits, len - j) as u32;
        *slot = (rest >> shift) as u8;
        let below = rest & ((1u128 << shift) - 1);
        let above = ((rest >> shift) >> 8) << shift;
        rest = below | above;
    }
}

/// The `T`-th permutation of `0 .. M` (`M = perm.len() = digits.len()`).
///
/// With `len >= M` ids unlocked, ascending in `pool`, the order of the height
/// is `pool[.. len - M]` followed by `pool[len - M + perm[j]]` for `j < M`
/// (see `permute`): the permutation does not depend on who is locked.
pub fn index_permutation(digits: &[u8], perm: &mut [u8]) {
    let mut pool = [0u8; MAX_VALIDATORS];
    let m = perm.len();
    for (i, slot) in pool[..m].iter_mut().enumerate() {
        *slot = i as u8;
    }
    permute(&mut pool[..m], digits, perm);
}

/// The order of one height: the ids `0 .. n` not in `locked`, permuted by `value`'s
/// digits modulo `(n - f)!` (`locked` holds at most `f` distinct ids below `n`).
pub fn order_of(n: usize, f: usize, locked: &[bool], value: &Words) -> Vec<u8> {
    let radices = Radices::new(n - f);
    let mut digits = vec![0u8; radices.len()];
    radices.digits(value, &mut digits);
    let mut pool: Vec<u8> = (0..n).filter(|&v| !locked[v]).map(|v| v as u8).collect();
    let mut order = vec![0u8; pool.len()];
    permute(&mut pool, &digits, &mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// `value mod m!` and its digits by schoolbook arithmetic on u128 (m <= 34).
    fn digits_u128(value: u128, m: usize) -> Vec<u8> {
        let mut fact: u128 = 1;
        for i in 2..=m as u128 {
            fact *= i;
        }
        let mut t = value % fact;
        let mut out = vec![0u8; m];
        for i in 1..=m as u128 {
            out[i as usize - 1] = (t % i) as u8;
            t /= i;
        }
        out
    }

    #[test]
    fn hashes_match_the_generic_digest() {
        for h in [0u32, 1, 7, 12345, u32::MAX] {
            let d: [u8; 32] = Sha256::digest(h.to_be_bytes()).into();
            assert_eq!(hash_height(h), words_from_bytes(&d));
        }
        let seed: [u8; 32] = core::array::from_fn(|i| (i * 5 + 1) as u8);
        for r in [1u64, 99, u64::MAX] {
            let d: [u8; 32] = Sha256::new()
                .chain_update(seed)
                .chain_update(r.to_be_bytes())
                .finalize()
                .into();
            assert_eq!(
                hash_seeded(&words_from_bytes(&seed), r),
                words_from_bytes(&d)
            );
        }
    }

    #[test]
    fn digits_match_u128_arithmetic() {
        // The low 128 bits of a digest, as a number with zero upper words.
        for h in 0..200u32 {
            let mut words = hash_height(h);
            words[..4].fill(0);
            let value = words[4..]
                .iter()
                .fold(0u128, |acc, &w| (acc << 32) | u128::from(w));
            for m in [1usize, 2, 5, 11, 12, 13, 20, 21, 25, 34] {
                let radices = Radices::new(m);
                let mut digits = vec![0u8; m];
                radices.digits(&words, &mut digits);
                assert_eq!(digits, digits_u128(value, m), "h={h} m={m}");
            }
        }
    }

    #[test]
    fn permutations_are_lexicographic() {
        // All 4! permutations of [10, 11, 12, 13] in order.
        let radices = Radices::new(4);
        let mut seen = Vec::new();
        for t in 0..24u32 {
            let mut words = [0u32; 8];
            words[7] = t;
            let mut digits = [0u8; 4];
            radices.digits(&words, &mut digits);
            let mut pool = [10u8, 11, 12, 13];
            let mut order = [0u8; 4];
            permute(&mut pool, &digits, &mut order);
            seen.push(order);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen, sorted);
        assert_eq!(seen[0], [10, 11, 12, 13]);
        assert_eq!(seen[23], [13, 12, 11, 10]);
    }

    #[test]
    fn a_longer_pool_keeps_its_head() {
        // M = 3 digits for 5 ids: the first two stay in ascending order.
        let radices = Radices::new(3);
        let mut words = [0u32; 8];
        words[7] = 5; // the last permutation of 3
        let mut digits = [0u8; 3];
        radices.digits(&words, &mut digits);
        let mut pool = [0u8, 1, 2, 3, 4];
        let mut order = [0u8; 5];
        permute(&mut pool, &digits, &mut order);
        assert_eq!(order, [0, 1, 4, 3, 2]);
    }

    #[test]
    fn small_and_long_pools_agree() {
        // The u128 path (<= 16 ids) against the memmove path, on the same digits.
        for h in 0..300u32 {
            for (len, m) in [(1, 1), (5, 3), (11, 11), (16, 11), (16, 16)] {
                let radices = Radices::new(m);
                let mut digits = vec![0u8; m];
                radices.digits(&hash_height(h), &mut digits);
                let pool: Vec<u8> = (0..len as u8).map(|v| 3 * v + 1).collect();
                let mut small = vec![0u8; len];
                permute_small(&pool, &digits, &mut small);
                let mut long = vec![0u8; len];
                let mut scratch = pool.clone();
                for (j, slot) in long.iter_mut().enumerate() {
                    let index = digit(&digits, len - j);
                    *slot = scratch.remove(index);
                }
                assert_eq!(small, long, "h={h} len={len} m={m}");
            }
        }
    }

    #[test]
    fn radix_groups_fit_32_bits() {
        for m in 1..=MAX_VALIDATORS {
            let r = Radices::new(m);
            let mut next = 2;
            for g in &r.groups {
                assert_eq!(g.first, next);
                let p: u64 = (g.first..=g.last).map(u64::from).product();
                assert_eq!(p, u64::from(g.product));
                next = g.last + 1;
            }
            assert_eq!(next as usize, m.max(1) + 1);
        }
    }
}
