//! SHA-512 (FIPS 180-4) of eight messages at once, one per 64-bit lane:
//! the challenge k = SHA-512(R || A || M) of eight signatures.
//!
//! SHA-512's words are 64 bits, so a lane holds one message's word and one
//! instruction does a step of all eight hashes; AVX-512 has the 64-bit
//! rotations (`vprorq`) and a three-input logic instruction (`vpternlogq`)
//! for Ch, Maj and the three-way exclusive ors. Messages of different
//! lengths take different numbers of blocks: a lane whose message has
//! ended keeps its state while the others go on.

use core::arch::x86_64::*;

use super::field::lanes_of;
use super::transpose;

/// Round constants: the first 64 bits of the fractional parts of the cube
/// roots of the first 80 primes.
const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];
/// The initial hash value: the first 64 bits of the fractional parts of
/// the square roots of the first 8 primes.
const H0: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// Bytes in a block.
const BLOCK: usize = 128;

/// One lane's input: a 64-byte prefix (R || A) then the message.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub prefix: &'a [u8; 64],
    pub message: &'a [u8],
}

impl Input<'_> {
    fn len(&self) -> usize {
        64 + self.message.len()
    }

    /// Blocks of the padded input: the data, a 0x80 byte, and the 128-bit
    /// bit length.
    fn blocks(&self) -> usize {
        (self.len() + 17).div_ceil(BLOCK)
    }

    /// Block `b` of the padded input, as 16 big-endian words.
    fn block(&self, b: usize) -> [u64; 16] {
        let mut bytes = [0u8; BLOCK];
        let (start, end) = (b * BLOCK, (b + 1) * BLOCK);
        // The parts of the prefix and of the message inside the block.
        if start < 64 {
            bytes[..64 - start].copy_from_slice(&self.prefix[start..]);
        }
        let (from, to) = (start.max(64), end.min(self.len()));
        if from < to {
            bytes[from - start..to - start].copy_from_slice(&self.message[from - 64..to - 64]);
        }
        if (start..end).contains(&self.len()) {
            bytes[self.len() - start] = 0x80;
        }
        if b + 1 == self.blocks() {
            let bits = (self.len() as u128) * 8;
            bytes[BLOCK - 16..].copy_from_slice(&bits.to_be_bytes());
        }
        core::array::from_fn(|w| u64::from_be_bytes(bytes[8 * w..8 * w + 8].try_into().expect("8")))
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

/// x ^ y ^ z.
#[inline]
#[target_feature(enable = "avx512f")]
fn xor3(x: __m512i, y: __m512i, z: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0x96>(x, y, z)
}

/// Ch(e, f, g) = (e & f) ^ (!e & g).
#[inline]
#[target_feature(enable = "avx512f")]
fn ch(e: __m512i, f: __m512i, g: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0xca>(e, f, g)
}

/// Maj(a, b, c) = (a & b) ^ (a & c) ^ (b & c).
#[inline]
#[target_feature(enable = "avx512f")]
fn maj(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0xe8>(a, b, c)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn add(a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi64(a, b)
}

/// The compression function on eight states, each lane with its own block.
#[inline]
#[target_feature(enable = "avx512f")]
fn compress(state: &mut [__m512i; 8], words: &[__m512i; 16]) {
    let mut w = *words;
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (t, &k) in K.iter().enumerate() {
        if t >= 16 {
            // W_t = s1(W_{t-2}) + W_{t-7} + s0(W_{t-15}) + W_{t-16}, in a
            // ring of 16 where slot t % 16 holds W_{t-16}.
            let w2 = w[(t - 2) % 16];
            let w15 = w[(t - 15) % 16];
            let s0 = xor3(
                _mm512_ror_epi64::<1>(w15),
                _mm512_ror_epi64::<8>(w15),
                _mm512_srli_epi64::<7>(w15),
            );
            let s1 = xor3(
                _mm512_ror_epi64::<19>(w2),
                _mm512_ror_epi64::<61>(w2),
                _mm512_srli_epi64::<6>(w2),
            );
            w[t % 16] = add(add(w[t % 16], s0), add(w[(t - 7) % 16], s1));
        }
        let big_s1 = xor3(
            _mm512_ror_epi64::<14>(e),
            _mm512_ror_epi64::<18>(e),
            _mm512_ror_epi64::<41>(e),
        );
        let t1 = add(add(h, big_s1), add(ch(e, f, g), add(splat(k), w[t % 16])));
        let big_s0 = xor3(
            _mm512_ror_epi64::<28>(a),
            _mm512_ror_epi64::<34>(a),
            _mm512_ror_epi64::<39>(a),
        );
        let t2 = add(big_s0, maj(a, b, c));
        h = g;
        g = f;
        f = e;
        e = add(d, t1);
        d = c;
        c = b;
        b = a;
        a = add(t1, t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = add(*s, v);
    }
}

/// The SHA-512 digests of eight inputs.
#[target_feature(enable = "avx512f")]
pub fn sha512x8(inputs: &[Input<'_>; 8]) -> [[u8; 64]; 8] {
    let blocks = inputs.map(|i| i.blocks());
    let mut state = H0.map(|h| splat(h));
    let zero = [0u64; 16];
    for b in 0..blocks.iter().copied().max().unwrap_or(0) {
        let lane_words: [[u64; 16]; 8] = core::array::from_fn(|j| {
            if b < blocks[j] {
                inputs[j].block(b)
            } else {
                zero
            }
        });
        // Word t of the eight lanes in vector t: two 8 by 8 transposes.
        let half = |h: usize| {
            let rows: [__m512i; 8] = core::array::from_fn(|j| {
                let v = |t: usize| lane_words[j][8 * h + t] as i64;
                _mm512_set_epi64(v(7), v(6), v(5), v(4), v(3), v(2), v(1), v(0))
            });
            transpose(rows)
        };
        let (low, high) = (half(0), half(1));
        let words: [__m512i; 16] =
            core::array::from_fn(|t| if t < 8 { low[t] } else { high[t - 8] });
        let active = (0..8).fold(0u8, |m, j| m | (u8::from(b < blocks[j]) << j));
        let mut next = state;
        compress(&mut next, &words);
        for (s, n) in state.iter_mut().zip(next) {
            *s = _mm512_mask_blend_epi64(active, *s, n);
        }
    }
    let digests = transpose(state);
    core::array::from_fn(|j| {
        let words = lanes_of(digests[j]);
        let mut out = [0u8; 64];
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ed25519::ifma::tests::{ifma_available, Rng};
    use sha2::{Digest, Sha512};

    #[test]
    fn digests_agree_with_sha2_at_every_length_around_the_block_edges() {
        if !ifma_available() {
            return;
        }
        let mut rng = Rng(12);
        let prefixes: [[u8; 64]; 8] = core::array::from_fn(|_| rng.bytes());
        let data: Vec<u8> = (0..700).map(|_| rng.next() as u8).collect();
        // Message lengths 0..=400 spread over the lanes, so that lanes of
        // one call end after different numbers of blocks.
        for start in (0..=400).step_by(8) {
            let lens: [usize; 8] = core::array::from_fn(|j| (start + 37 * j) % 401);
            let inputs: [Input<'_>; 8] = core::array::from_fn(|j| Input {
                prefix: &prefixes[j],
                message: &data[j..j + lens[j]],
            });
            // SAFETY: the CPU has AVX-512F (checked above).
            let ours = unsafe { sha512x8(&inputs) };
            for j in 0..8 {
                let mut h = Sha512::new();
                h.update(prefixes[j]);
                h.update(inputs[j].message);
                let want: [u8; 64] = h.finalize().into();
                assert_eq!(ours[j], want, "length {}", lens[j]);
            }
        }
    }
}
