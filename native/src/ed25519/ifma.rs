//! Ed25519 arithmetic for eight signatures at once on AVX-512 IFMA.
//!
//! Each of the eight 64-bit lanes of a 512-bit vector holds a different
//! point, and one instruction works on the same limb of all eight; the
//! 52-bit multiply-accumulate instructions (`vpmadd52luq`, `vpmadd52huq`)
//! make a field multiplication of eight elements about as costly as a few
//! scalar ones. Everything the verifier computes per signature runs here:
//! point decoding (`point::decompress`), the tables of multiples, and the
//! multiscalar multiplication with one sum per lane (`msm::run`).
//!
//! Every function is compiled with `#[target_feature(enable = "avx512f,
//! avx512ifma")]`. Calling one from code without those features is unsafe,
//! and sound only once `available()` has returned true: that is the one
//! contract of this module, kept by `lanes`, its only caller.

pub mod field;
pub mod msm;
pub mod point;
pub mod sha512;

use core::arch::x86_64::*;

/// The 8 by 8 transpose of qwords: lane j of the result's vector i is lane
/// i of `rows[j]`.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn transpose(rows: [__m512i; 8]) -> [__m512i; 8] {
    let idx = |i: [i64; 8]| _mm512_set_epi64(i[7], i[6], i[5], i[4], i[3], i[2], i[1], i[0]);
    // Pairs of rows interleaved: t[2i] holds the even lanes of rows 2i and
    // 2i + 1, t[2i + 1] the odd ones.
    let t: [__m512i; 8] = core::array::from_fn(|i| {
        let (a, b) = (rows[i & !1], rows[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // Then pairs of those: lanes 0, 1 of each 128-bit half from one, 2, 3
    // from the other.
    let (lo, hi) = (
        idx([0, 1, 8, 9, 4, 5, 12, 13]),
        idx([2, 3, 10, 11, 6, 7, 14, 15]),
    );
    let u = [
        _mm512_permutex2var_epi64(t[0], lo, t[2]),
        _mm512_permutex2var_epi64(t[1], lo, t[3]),
        _mm512_permutex2var_epi64(t[0], hi, t[2]),
        _mm512_permutex2var_epi64(t[1], hi, t[3]),
        _mm512_permutex2var_epi64(t[4], lo, t[6]),
        _mm512_permutex2var_epi64(t[5], lo, t[7]),
        _mm512_permutex2var_epi64(t[4], hi, t[6]),
        _mm512_permutex2var_epi64(t[5], hi, t[7]),
    ];
    // Finally the halves: rows 0-3 from u[i], rows 4-7 from u[i + 4].
    let (low, high) = (
        idx([0, 1, 2, 3, 8, 9, 10, 11]),
        idx([4, 5, 6, 7, 12, 13, 14, 15]),
    );
    core::array::from_fn(|i| {
        let (a, b) = (u[i % 4], u[i % 4 + 4]);
        _mm512_permutex2var_epi64(a, if i < 4 { low } else { high }, b)
    })
}

/// Whether this CPU (and OS) runs AVX-512F and AVX-512 IFMA.
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma")
}

#[cfg(test)]
pub mod tests {
    //! Helpers for the tests of the IFMA modules.

    pub use super::available as ifma_available;
    use core::arch::x86_64::*;

    #[test]
    fn transpose_transposes() {
        if !super::available() {
            return;
        }
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe {
            let rows: [__m512i; 8] = core::array::from_fn(|i| {
                let v = |j: i64| (10 * i as i64) + j;
                _mm512_set_epi64(v(7), v(6), v(5), v(4), v(3), v(2), v(1), v(0))
            });
            let cols = super::transpose(rows);
            for (j, col) in cols.iter().enumerate() {
                let lanes = super::field::lanes_of(*col);
                for (i, &x) in lanes.iter().enumerate() {
                    assert_eq!(x, 10 * i as u64 + j as u64);
                }
            }
        }
    }

    /// A small deterministic generator (SplitMix64) for test inputs.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
            core::array::from_fn(|_| self.next() as u8)
        }
    }

    /// Arithmetic mod p = 2^255 - 19 on plain 64-bit words, written from the
    /// definitions, slow and independent of the vector code it checks.
    pub mod reference {
        /// An integer mod p, reduced, as four little-endian words.
        pub type U = [u64; 4];
        pub const ZERO: U = [0; 4];
        const P: U = [
            0xffff_ffff_ffff_ffed,
            0xffff_ffff_ffff_ffff,
            0xffff_ffff_ffff_ffff,
            0x7fff_ffff_ffff_ffff,
        ];

        fn geq(a: &U, b: &U) -> bool {
            for i in (0..4).rev() {
                if a[i] != b[i] {
                    return a[i] > b[i];
                }
            }
            true
        }

        fn sub_raw(a: &U, b: &U) -> U {
            let mut out = [0u64; 4];
            let mut borrow = 0u64;
            for i in 0..4 {
                let (d, b1) = a[i].overflowing_sub(b[i]);
                let (d, b2) = d.overflowing_sub(borrow);
                out[i] = d;
                borrow = (b1 || b2) as u64;
            }
            out
        }

        /// Reduces a value below 2^256 + small (given as 5 words) mod p.
        fn reduce_wide(mut w: [u64; 5]) -> U {
            // 2^255 = 19: fold bit 255 and up, twice, then subtract p if needed.
            for _ in 0..2 {
                let top = (w[4] << 1) | (w[3] >> 63);
                w[3] &= (1 << 63) - 1;
                w[4] = 0;
                let mut carry = top as u128 * 19;
                for x in w.iter_mut().take(4) {
                    let s = *x as u128 + carry;
                    *x = s as u64;
                    carry = s >> 64;
                }
                w[4] = carry as u64;
            }
            let mut out = [w[0], w[1], w[2], w[3]];
            while geq(&out, &P) {
                out = sub_raw(&out, &P);
            }
            out
        }

        pub fn add(a: &U, b: &U) -> U {
            let mut w = [0u64; 5];
            let mut carry = 0u128;
            for i in 0..4 {
                let s = a[i] as u128 + b[i] as u128 + carry;
                w[i] = s as u64;
                carry = s >> 64;
            }
            w[4] = carry as u64;
            reduce_wide(w)
        }

        pub fn sub(a: &U, b: &U) -> U {
            add(a, &sub_raw(&P, b))
        }

        pub fn mul(a: &U, b: &U) -> U {
            let mut wide = [0u128; 8];
            for i in 0..4 {
                let mut carry = 0u128;
                for j in 0..4 {
                    let t = a[i] as u128 * b[j] as u128 + wide[i + j] + carry;
                    wide[i + j] = t & u64::MAX as u128;
                    carry = t >> 64;
                }
                wide[i + 4] = carry;
            }
            // value = lo + 2^256 hi = lo + 38 hi (mod p).
            let mut w = [0u64; 5];
            let mut carry = 0u128;
            for i in 0..4 {
                let s = wide[i] + wide[i + 4] * 38 + carry;
                w[i] = s as u64;
                carry = s >> 64;
            }
            w[4] = carry as u64;
            let mut w2 = [w[0], w[1], w[2], w[3], 0];
            let mut c = w[4] as u128 * 38;
            for x in w2.iter_mut().take(4) {
                let s = *x as u128 + c;
                *x = s as u64;
                c = s >> 64;
            }
            w2[4] = c as u64;
            reduce_wide(w2)
        }

        /// 1 / a (a nonzero), as a^(p - 2).
        pub fn invert(a: &U) -> U {
            let mut e = P;
            e[0] -= 2;
            let mut out = from_limbs([1, 0, 0, 0, 0]);
            for i in (0..255).rev() {
                out = mul(&out, &out);
                if e[i / 64] >> (i % 64) & 1 == 1 {
                    out = mul(&out, a);
                }
            }
            out
        }

        /// The value of radix-2^52 limbs (the top one may exceed 52 bits).
        pub fn from_limbs(l: [u64; 5]) -> U {
            let words = [
                l[0] | l[1] << 52,
                l[1] >> 12 | l[2] << 40,
                l[2] >> 24 | l[3] << 28,
                l[3] >> 36 | l[4] << 16,
                l[4] >> 48,
            ];
            reduce_wide(words)
        }

        pub fn from_bytes(b: &[u8; 32]) -> U {
            let w: [u64; 4] = core::array::from_fn(|i| {
                u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap())
            });
            reduce_wide([w[0], w[1], w[2], w[3], 0])
        }

        pub fn to_bytes(a: &U) -> [u8; 32] {
            let mut out = [0u8; 32];
            for i in 0..4 {
                out[8 * i..8 * i + 8].copy_from_slice(&a[i].to_le_bytes());
            }
            out
        }
    }
}
