//! Eight elements of GF(p), p = 2^255 - 19, one per 64-bit lane of AVX-512
//! vectors, multiplied with the IFMA instructions (`vpmadd52luq/huq`).
//!
//! An element is five limbs in radix 2^52, `v = l0 + l1 2^52 + l2 2^104 +
//! l3 2^156 + l4 2^208`, limb `k` of the eight lanes in vector `k`. IFMA
//! multiplies the low 52 bits of its inputs and ignores the rest, so every
//! value that reaches a multiplication must have limbs below 2^52. All
//! values here are kept in one form, *tight*, which every operation takes
//! and gives back:
//!
//! ```text
//! l0, l1, l2, l3 < 2^52        l4 <= 2^47 + 2^12
//! ```
//!
//! A tight value is below 2^255 + 2^220 < 2p: congruent to the element it
//! stands for, not necessarily reduced. The limbs of a tight value are its
//! radix-2^52 digits (only the top limb is unbounded), so the integer has
//! one tight form, which makes `v = 0 (mod p)` the test `v = 0 or v = p`.
//!
//! A product that is only going to be added or subtracted can skip its
//! final carry, since the addition carries anyway: such a product is a
//! `Wide` (limbs below 2^56), a separate type so that it never reaches a
//! multiplication.
//!
//! Each bound below is stated where it is used; they are what the
//! differential tests rely on, since a limb of 2^52 or more would be
//! silently truncated by IFMA.

use core::arch::x86_64::*;

/// The 52 low bits of a limb.
const MASK52: u64 = (1 << 52) - 1;
/// The 47 low bits of the top limb: bits 208..255 of the value.
const MASK47: u64 = (1 << 47) - 1;
/// 2p in limbs, each at least as large as the limb of a tight value, so that
/// `a + 2p - b` has no negative limb for tight `b`.
const TWO_P: [u64; 5] = [
    (1 << 53) - 38,
    (1 << 53) - 2,
    (1 << 53) - 2,
    (1 << 53) - 2,
    (1 << 48) - 2,
];
/// p in limbs (p's radix-2^52 digits).
const P: [u64; 5] = [
    (1 << 52) - 19,
    (1 << 52) - 1,
    (1 << 52) - 1,
    (1 << 52) - 1,
    (1 << 47) - 1,
];
/// 2^10 p and 2^11 p in limbs: each limb at least 2^56 (2^57), more than a
/// `Wide` limb (the sum of two), and at most 2^63.
const P_SHL_10: [u64; 5] = [P[0] << 10, P[1] << 10, P[2] << 10, P[3] << 10, P[4] << 10];
const P_SHL_11: [u64; 5] = [P[0] << 11, P[1] << 11, P[2] << 11, P[3] << 11, P[4] << 11];

/// Eight field elements, tight (see the module documentation).
#[derive(Clone, Copy)]
pub struct Fe(pub [__m512i; 5]);

/// Limbs of a field element given by its 32-byte little-endian value (all
/// 256 bits; bit 255 becomes part of the top limb).
pub const fn limbs_of(bytes: [u8; 32]) -> [u64; 5] {
    let mut words = [0u64; 4];
    let mut i = 0;
    while i < 32 {
        words[i / 8] |= (bytes[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    [
        words[0] & MASK52,
        ((words[0] >> 52) | (words[1] << 12)) & MASK52,
        ((words[1] >> 40) | (words[2] << 24)) & MASK52,
        ((words[2] >> 28) | (words[3] << 36)) & MASK52,
        words[3] >> 16,
    ]
}

/// The 255-bit value of an encoded point's `y`: its 32 bytes without bit 255
/// (the sign of `x`). Tight: the top limb is below 2^47.
pub fn y_limbs(encoding: &[u8; 32]) -> [u64; 5] {
    let mut bytes = *encoding;
    bytes[31] &= 0x7f;
    limbs_of(bytes)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

impl Fe {
    /// One element in every lane, from its limbs (tight ones).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn splat(limbs: [u64; 5]) -> Fe {
        Fe(limbs.map(|l| splat(l)))
    }

    /// Lane `j` from `lanes[j]`, given as tight limbs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn from_lanes(lanes: &[[u64; 5]; 8]) -> Fe {
        let limb = |k: usize| {
            let l = |j: usize| lanes[j][k] as i64;
            _mm512_set_epi64(l(7), l(6), l(5), l(4), l(3), l(2), l(1), l(0))
        };
        Fe([limb(0), limb(1), limb(2), limb(3), limb(4)])
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn zero() -> Fe {
        Fe([_mm512_setzero_si512(); 5])
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn one() -> Fe {
        Fe::splat([1, 0, 0, 0, 0])
    }

    /// Carries limbs below 2^63 + 2^57 into the tight form, keeping the
    /// value mod p.
    ///
    /// First the bits of the top limb from 2^255 up are folded into limb 0
    /// (2^255 = 19 mod p; that carry is below 2^17, so 19 times it is exact
    /// in IFMA's 52-bit product and l0 stays below 2^64), then one pass
    /// carries limbs 0..3 upwards, each carry below 2^12. After it
    /// l0..l3 < 2^52, and l4 < 2^47 plus the carry out of l3: tight.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn carry(l: [__m512i; 5]) -> Fe {
        let [mut l0, mut l1, mut l2, mut l3, l4] = l;
        let top = _mm512_srli_epi64::<47>(l4);
        let mut l4 = _mm512_and_si512(l4, splat(MASK47));
        l0 = _mm512_madd52lo_epu64(l0, top, splat(19));
        l1 = _mm512_add_epi64(l1, _mm512_srli_epi64::<52>(l0));
        l0 = _mm512_and_si512(l0, splat(MASK52));
        l2 = _mm512_add_epi64(l2, _mm512_srli_epi64::<52>(l1));
        l1 = _mm512_and_si512(l1, splat(MASK52));
        l3 = _mm512_add_epi64(l3, _mm512_srli_epi64::<52>(l2));
        l2 = _mm512_and_si512(l2, splat(MASK52));
        l4 = _mm512_add_epi64(l4, _mm512_srli_epi64::<52>(l3));
        l3 = _mm512_and_si512(l3, splat(MASK52));
        Fe([l0, l1, l2, l3, l4])
    }

    /// `self + other`. Limbs before the carry are below 2^53.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn add(&self, other: &Fe) -> Fe {
        Fe::carry(core::array::from_fn(|k| {
            _mm512_add_epi64(self.0[k], other.0[k])
        }))
    }

    /// `self - other`, as `self + 2p - other`: each limb of 2p is at least
    /// the bound of the same limb of a tight value, so no limb goes
    /// negative, and all stay below 2^54.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn sub(&self, other: &Fe) -> Fe {
        Fe::carry(core::array::from_fn(|k| {
            _mm512_sub_epi64(_mm512_add_epi64(self.0[k], splat(TWO_P[k])), other.0[k])
        }))
    }

    /// `-self`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn neg(&self) -> Fe {
        Fe::zero().sub(self)
    }

    /// Lanes of `other` where `mask` is set, of `self` elsewhere.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn select(&self, mask: __mmask8, other: &Fe) -> Fe {
        Fe(core::array::from_fn(|k| {
            _mm512_mask_blend_epi64(mask, self.0[k], other.0[k])
        }))
    }

    /// `self * other`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn mul(&self, other: &Fe) -> Fe {
        Fe::carry(self.mul_wide(other).0)
    }

    /// `self^2`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn square(&self) -> Fe {
        Fe::carry(self.square_wide().0)
    }

    /// `self * other`, without the final carry.
    ///
    /// The 25 limb products go, low halves to column `i + j` and high halves
    /// to column `i + j + 1`, into ten 64-bit columns `z`: column k gathers
    /// at most 9 halves below 2^52. Then `fold` folds them.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn mul_wide(&self, other: &Fe) -> Wide {
        let (a, b) = (&self.0, &other.0);
        let mut z = [_mm512_setzero_si512(); 10];
        for i in 0..5 {
            for j in 0..5 {
                z[i + j] = _mm512_madd52lo_epu64(z[i + j], a[i], b[j]);
                z[i + j + 1] = _mm512_madd52hi_epu64(z[i + j + 1], a[i], b[j]);
            }
        }
        fold(z)
    }

    /// `self^2`, without the final carry: the 5 squares and the 10 cross
    /// products once each. Cross products with l4 use 2 l4 (below 2^49, so
    /// IFMA reads all of it) and go straight to their columns; the six
    /// others are summed apart and doubled. A column then holds at most one
    /// half of a square, one of a product with 2 l4 and three of the others
    /// doubled (column 4): 8 halves' worth, within `mul_wide`'s 9.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn square_wide(&self) -> Wide {
        let a = &self.0;
        let twice_a4 = _mm512_add_epi64(a[4], a[4]);
        let mut z = [_mm512_setzero_si512(); 10];
        let mut x = [_mm512_setzero_si512(); 7];
        for i in 0..5 {
            z[2 * i] = _mm512_madd52lo_epu64(z[2 * i], a[i], a[i]);
            z[2 * i + 1] = _mm512_madd52hi_epu64(z[2 * i + 1], a[i], a[i]);
        }
        for i in 0..4 {
            z[i + 4] = _mm512_madd52lo_epu64(z[i + 4], a[i], twice_a4);
            z[i + 5] = _mm512_madd52hi_epu64(z[i + 5], a[i], twice_a4);
            for j in i + 1..4 {
                x[i + j] = _mm512_madd52lo_epu64(x[i + j], a[i], a[j]);
                x[i + j + 1] = _mm512_madd52hi_epu64(x[i + j + 1], a[i], a[j]);
            }
        }
        for k in 1..7 {
            z[k] = _mm512_add_epi64(z[k], _mm512_slli_epi64::<1>(x[k]));
        }
        fold(z)
    }

    /// Lanes where the value is 0 mod p: a tight value is below 2p, so it is
    /// 0 or p, each with one tight form.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn is_zero(&self) -> __mmask8 {
        let mut zero: __mmask8 = 0xff;
        let mut p: __mmask8 = 0xff;
        for (&limb, &p_limb) in self.0.iter().zip(&P) {
            zero &= _mm512_cmpeq_epi64_mask(limb, _mm512_setzero_si512());
            p &= _mm512_cmpeq_epi64_mask(limb, splat(p_limb));
        }
        zero | p
    }

    /// Lanes where `self = other` mod p.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn equals(&self, other: &Fe) -> __mmask8 {
        self.sub(other).is_zero()
    }

    /// Lanes where the reduced value is odd (RFC 8032's "negative" x).
    ///
    /// A tight `v` is below 2p; its reduced value is `v` or `v - p`, and as p
    /// is odd the parity flips exactly when `v >= p`, that is when
    /// `v + 19 >= 2^255` (bit 47 of the carried top limb; `v + 19 < 2^256`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn is_odd(&self) -> __mmask8 {
        let [l0, l1, l2, l3, l4] = self.0;
        let mut c = _mm512_add_epi64(l0, splat(19));
        for l in [l1, l2, l3, l4] {
            c = _mm512_add_epi64(l, _mm512_srli_epi64::<52>(c));
        }
        let at_least_p = _mm512_test_epi64_mask(c, splat(1 << 47));
        let odd = _mm512_test_epi64_mask(l0, splat(1));
        odd ^ at_least_p
    }

    /// The reduced value of lane `lane` as 32 little-endian bytes.
    #[cfg(test)]
    #[target_feature(enable = "avx512f")]
    pub fn lane_bytes(&self, lane: usize) -> [u8; 32] {
        let limbs: [u64; 5] = core::array::from_fn(|k| lanes_of(self.0[k])[lane]);
        canonical_bytes(limbs)
    }
}

/// The eight lanes of a vector.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn lanes_of(v: __m512i) -> [u64; 8] {
    // SAFETY: `__m512i` and `[u64; 8]` are both 64 plain bytes, and every
    // bit pattern is a valid value of either.
    unsafe { core::mem::transmute::<__m512i, [u64; 8]>(v) }
}

/// The reduced value of tight limbs, as 32 little-endian bytes.
#[cfg(test)]
fn canonical_bytes(l: [u64; 5]) -> [u8; 32] {
    // The integer (below 2p) in 64-bit words; l4 < 2^48 fits the last 48 bits.
    let mut value = [
        l[0] | l[1] << 52,
        l[1] >> 12 | l[2] << 40,
        l[2] >> 24 | l[3] << 28,
        l[3] >> 36 | l[4] << 16,
    ];
    // Subtract p when value >= p, i.e. when value + 19 >= 2^255.
    let mut plus19 = value;
    let mut carry = 19u128;
    for w in plus19.iter_mut() {
        let s = *w as u128 + carry;
        *w = s as u64;
        carry = s >> 64;
    }
    if plus19[3] >> 63 == 1 {
        plus19[3] &= (1 << 63) - 1;
        value = plus19;
    }
    let mut out = [0u8; 32];
    for (i, w) in value.iter().enumerate() {
        out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Folds the ten columns of a product into five, congruent mod p.
///
/// 2^260 = 32 * 19 = 608 (mod p), so column `k + 5` belongs to column `k`
/// times 608. A column `z` (below 9 * 2^52) is split as `lo + 2^52 hi`: IFMA
/// multiplies `lo` (its low 52 bits, all it reads) by 608, the low half of
/// the product going to column `k`, the high half (below 608) to `k + 1`;
/// `hi` (below 2^4) is one column up, so 608 hi goes to column `k + 1`.
/// Column 9 holds only the high half of `l4 * l4` (below 2^45 for tight
/// inputs), so its own `hi` is zero; the high half of its fold lands on
/// column 5 again, and is folded once more (608 * 608 < 2^19). Each of the
/// five columns left is below 9 * 2^52 + 2^52 + 2^14 < 2^56: a `Wide`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn fold(z: [__m512i; 10]) -> Wide {
    let k608 = splat(608);
    let mut r = [z[0], z[1], z[2], z[3], z[4]];
    for k in 0..4 {
        r[k] = _mm512_madd52lo_epu64(r[k], z[k + 5], k608);
        r[k + 1] = _mm512_madd52hi_epu64(r[k + 1], z[k + 5], k608);
        let hi = _mm512_srli_epi64::<52>(z[k + 5]);
        r[k + 1] = _mm512_madd52lo_epu64(r[k + 1], hi, k608);
    }
    r[4] = _mm512_madd52lo_epu64(r[4], z[9], k608);
    let wrap = _mm512_madd52hi_epu64(_mm512_setzero_si512(), z[9], k608);
    r[0] = _mm512_madd52lo_epu64(r[0], wrap, k608);
    Wide(r)
}

/// Eight products before their final carry: limbs below 2^56, congruent to
/// the product mod p. Only added and subtracted, which carries the result
/// into a tight `Fe`; never multiplied (IFMA would truncate the limbs).
#[derive(Clone, Copy)]
pub struct Wide([__m512i; 5]);

impl Wide {
    /// `self + other` (limbs below 2^57 before the carry).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn add(&self, other: &Wide) -> Fe {
        Fe::carry(core::array::from_fn(|k| {
            _mm512_add_epi64(self.0[k], other.0[k])
        }))
    }

    /// `self - other`, as `self + 2^10 p - other`: no limb goes negative
    /// (2^10 p's are at least 2^56), and all stay below 2^63 + 2^56.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn sub(&self, other: &Wide) -> Fe {
        Fe::carry(core::array::from_fn(|k| {
            let plus = _mm512_add_epi64(self.0[k], splat(P_SHL_10[k]));
            _mm512_sub_epi64(plus, other.0[k])
        }))
    }

    /// `self - a - b`, as `self + 2^11 p - (a + b)` (limbs of `a + b` below
    /// 2^57, of 2^11 p at least 2^57; below 2^63 + 2^56 before the carry).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn sub_sub(&self, a: &Wide, b: &Wide) -> Fe {
        Fe::carry(core::array::from_fn(|k| {
            let plus = _mm512_add_epi64(self.0[k], splat(P_SHL_11[k]));
            _mm512_sub_epi64(plus, _mm512_add_epi64(a.0[k], b.0[k]))
        }))
    }

    /// `self + 2a - b`, as `self + 2a + 2^10 p - b` (below 2^63 + 2^58).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn add_twice_sub(&self, a: &Wide, b: &Wide) -> Fe {
        Fe::carry(core::array::from_fn(|k| {
            let twice = _mm512_add_epi64(a.0[k], a.0[k]);
            let plus = _mm512_add_epi64(_mm512_add_epi64(self.0[k], twice), splat(P_SHL_10[k]));
            _mm512_sub_epi64(plus, b.0[k])
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ed25519::ifma::tests::{ifma_available, reference, Rng};
    use reference::{add, mul, sub};

    /// A tight value chosen to stress the bounds: random, or with every limb
    /// at its maximum.
    fn tight(rng: &mut Rng, extreme: bool) -> [u64; 5] {
        if extreme {
            return [MASK52, MASK52, MASK52, MASK52, (1 << 47) + (1 << 12)];
        }
        let top_bound = (1u64 << 47) + (1 << 12) + 1;
        [
            rng.next() & MASK52,
            rng.next() & MASK52,
            rng.next() & MASK52,
            rng.next() & MASK52,
            rng.next() % top_bound,
        ]
    }

    fn value(limbs: [u64; 5]) -> reference::U {
        reference::from_limbs(limbs)
    }

    fn check_tight(fe: &Fe) {
        // SAFETY: called only after `ifma_available()`.
        let lanes: [[u64; 8]; 5] = core::array::from_fn(|k| unsafe { lanes_of(fe.0[k]) });
        for lane in 0..8 {
            for (k, limbs) in lanes.iter().enumerate().take(4) {
                assert!(limbs[lane] < 1 << 52, "limb {k}");
            }
            assert!(lanes[4][lane] <= (1 << 47) + (1 << 12));
        }
    }

    #[test]
    fn arithmetic_agrees_with_big_integers_at_the_bounds() {
        if !ifma_available() {
            return;
        }
        let mut rng = Rng(7);
        for round in 0..400 {
            let a: [[u64; 5]; 8] =
                core::array::from_fn(|j| tight(&mut rng, round % 7 == 0 && j < 2));
            let b: [[u64; 5]; 8] =
                core::array::from_fn(|j| tight(&mut rng, round % 5 == 0 && j % 2 == 0));
            // SAFETY: the CPU has AVX-512F and IFMA (checked above).
            unsafe {
                let (fa, fb) = (Fe::from_lanes(&a), Fe::from_lanes(&b));
                let results = [
                    (fa.mul(&fb), "mul"),
                    (fa.square(), "square"),
                    (fa.add(&fb), "add"),
                    (fa.sub(&fb), "sub"),
                    (fa.neg(), "neg"),
                    (fa.mul_wide(&fb).add(&fb.square_wide()), "ab + b^2"),
                    (fa.mul_wide(&fb).sub(&fb.square_wide()), "ab - b^2"),
                    (
                        fa.square_wide()
                            .sub_sub(&fb.square_wide(), &fb.mul_wide(&fa)),
                        "a^2 - b^2 - ab",
                    ),
                    (
                        fa.square_wide()
                            .add_twice_sub(&fb.square_wide(), &fa.mul_wide(&fb)),
                        "a^2 + 2b^2 - ab",
                    ),
                ];
                for (fe, name) in &results {
                    check_tight(fe);
                    for j in 0..8 {
                        let (x, y) = (value(a[j]), value(b[j]));
                        let want = match *name {
                            "mul" => reference::mul(&x, &y),
                            "square" => reference::mul(&x, &x),
                            "add" => reference::add(&x, &y),
                            "sub" => reference::sub(&x, &y),
                            "neg" => reference::sub(&reference::ZERO, &x),
                            _ => {
                                let (xy, xx, yy) = (mul(&x, &y), mul(&x, &x), mul(&y, &y));
                                match *name {
                                    "ab + b^2" => add(&xy, &yy),
                                    "ab - b^2" => sub(&xy, &yy),
                                    "a^2 - b^2 - ab" => sub(&sub(&xx, &yy), &xy),
                                    _ => sub(&add(&xx, &add(&yy, &yy)), &xy),
                                }
                            }
                        };
                        assert_eq!(
                            fe.lane_bytes(j),
                            reference::to_bytes(&want),
                            "{name} lane {j}"
                        );
                    }
                }
                let odd = fa.is_odd();
                let zero = fa.sub(&fa).is_zero();
                assert_eq!(zero, 0xff);
                for (j, limbs) in a.iter().enumerate() {
                    let bytes = reference::to_bytes(&value(*limbs));
                    assert_eq!(odd >> j & 1 == 1, bytes[0] & 1 == 1);
                }
            }
        }
    }

    #[test]
    fn p_and_zero_are_zero_and_one_is_not() {
        if !ifma_available() {
            return;
        }
        // SAFETY: the CPU has AVX-512F and IFMA (checked above).
        unsafe {
            assert_eq!(Fe::splat(P).is_zero(), 0xff);
            assert_eq!(Fe::zero().is_zero(), 0xff);
            assert_eq!(Fe::one().is_zero(), 0);
            assert_eq!(Fe::splat(P).lane_bytes(3), [0; 32]);
        }
    }
}
