//! Tables of multiples in memory, and the lane-parallel multiscalar
//! multiplication that reads them.
//!
//! Every point of a chunk (each signature's A and R, and B) has a table
//! block of nine entries, the identity then 1P..8P, each entry the 20
//! limbs of a `Niels` point padded to three cache lines. A lane adds the
//! entry its digit names; lanes read different points and different
//! entries, so an entry is fetched with 20 gathers, one per limb, whose
//! indices are qword offsets into the table buffer.
//!
//! A run computes, in each lane j, Q_j = sum over its slots of
//! [a_i]A_i + [r_i]R_i, plus [b_j]B, by Straus's method on signed radix-16
//! digits: 64 digit positions from the top, four doublings between them,
//! every slot's entries added at each position. The lanes share the
//! doublings; each lane's sum is its own, and its verdict is whether
//! [8]Q_j is the identity.

use core::arch::x86_64::*;

use super::point::{multiples, Niels, Point, Projective, SignedNiels, NIELS_LIMBS};

/// One cache line of table memory.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Line(pub [u64; 8]);

/// Qwords per table entry: 20 limbs padded to three lines.
pub const ENTRY: usize = 24;
/// Entries per point: the identity, then 1P..8P.
const ENTRIES: usize = 9;
/// Qwords per point's block of entries.
pub const BLOCK: usize = ENTRY * ENTRIES;
/// Lines per block.
const BLOCK_LINES: usize = BLOCK / 8;
/// Signed radix-16 digits (in -8..8) of a scalar below 2^253.
pub const DIGITS: usize = 64;
/// Digits of a scalar below 2^131 (the coefficients z are below 2^128).
pub const SHORT_DIGITS: usize = 33;

/// Table blocks for a chunk of points; block `b` is at qwords
/// `b * BLOCK .. (b + 1) * BLOCK`.
///
/// The memory is reused from chunk to chunk (`in_buffer`, `into_buffer`)
/// and not cleared: a block holds whatever was written last, so every block
/// below `blocks` must be written (`store`, `set_block`) before a run reads
/// it. The gathers only need the memory to be initialised, which it is.
pub struct Tables {
    lines: Vec<Line>,
    blocks: usize,
}

impl Tables {
    /// Room for `blocks` blocks in `lines`, grown if it is too short.
    pub fn in_buffer(mut lines: Vec<Line>, blocks: usize) -> Tables {
        if lines.len() < blocks * BLOCK_LINES {
            lines.resize(blocks * BLOCK_LINES, Line([0; 8]));
        }
        Tables { lines, blocks }
    }

    /// The memory, for the next chunk.
    pub fn into_buffer(self) -> Vec<Line> {
        self.lines
    }

    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Writes the blocks of eight points: lane j's entries (the identity,
    /// then 1P..8P) into block `first + j`, for the lanes below `count`.
    #[target_feature(enable = "avx512f")]
    pub fn store(&mut self, first: usize, count: usize, multiples: &[Niels; 8]) {
        assert!(first + count <= self.blocks && count <= 8);
        let identity = Niels::IDENTITY_LIMBS.map(|l| _mm512_set1_epi64(l as i64));
        let zero = _mm512_setzero_si512();
        for e in 0..ENTRIES {
            let limbs = if e == 0 {
                identity
            } else {
                multiples[e - 1].vectors()
            };
            // The entry's 24 qwords (20 limbs, 4 of padding) in eight lanes,
            // transposed 8 by 8 into each lane's three lines.
            let rows: [__m512i; ENTRY] =
                core::array::from_fn(|k| if k < NIELS_LIMBS { limbs[k] } else { zero });
            for g in 0..ENTRY / 8 {
                let lines = super::transpose(core::array::from_fn(|i| rows[8 * g + i]));
                for (lane, line) in lines.iter().enumerate().take(count) {
                    let at = (first + lane) * BLOCK_LINES + e * (ENTRY / 8) + g;
                    self.lines[at] = Line(super::field::lanes_of(*line));
                }
            }
        }
    }

    /// Writes the tables of up to eight points, lane j into block `first + j`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn store_points(&mut self, first: usize, count: usize, points: &Point) {
        self.store(first, count, &multiples(points));
    }

    /// Asks for the cache lines of the entries at `offsets` (qword offsets
    /// into the buffer, one per lane), to be read soon.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn prefetch(&self, offsets: __m512i) {
        let base = self.lines.as_ptr() as *const i8;
        for offset in super::field::lanes_of(offsets) {
            for line in 0..ENTRY / 8 {
                // A prefetch reads nothing and faults on no address; the
                // address is computed without `add` so that no pointer
                // arithmetic claims to stay in bounds.
                let at = base.wrapping_add(8 * offset as usize + 64 * line);
                _mm_prefetch::<_MM_HINT_T0>(at);
            }
        }
    }

    /// Entry `offset / ENTRY` of every lane's block, negated in the lanes
    /// of `negative`: the point -P = (Y - X, Y + X, 2Z, -2dT) has P's first
    /// two coordinates swapped, so those are gathered from swapped places;
    /// the sign of 2dT is left to the addition (`SignedNiels`).
    ///
    /// # Safety
    /// Every lane of `offsets` must be `b * BLOCK + e * ENTRY` for a block
    /// `b < self.blocks()` and an entry `e < 9`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn gather(&self, offsets: __m512i, negative: __mmask8) -> SignedNiels {
        let base = self.lines.as_ptr() as *const i64;
        // Y + X is limbs 0..5 of an entry, Y - X limbs 5..10.
        let five = _mm512_set1_epi64(5);
        let plus = _mm512_mask_add_epi64(offsets, negative, offsets, five);
        let minus = _mm512_mask_add_epi64(offsets, !negative, offsets, five);
        let limbs = core::array::from_fn(|k| {
            let (at, k) = match k {
                0..5 => (plus, k),
                5..10 => (minus, k - 5),
                _ => (offsets, k),
            };
            // SAFETY: by the contract each lane's offset is the start of an
            // entry inside the buffer; `at` adds at most 5 to it and k is
            // below 20 - 5 where it does (below 20 otherwise), so every
            // read stays inside the lane's entry of ENTRY = 24 qwords. The
            // buffer is initialised u64s, read as i64.
            unsafe { _mm512_i64gather_epi64::<8>(at, base.add(k)) }
        });
        SignedNiels {
            niels: Niels::from_vectors(limbs),
            negative,
        }
    }
}

/// A scalar's signed radix-16 digits in the form a run reads: the entry
/// offset `|d| * ENTRY` of each digit (at most 192, so a byte) and a bit
/// per digit for its sign. The fields are private: made only by `new` and
/// `ZERO`, every offset is that of an entry, which the gathers rely on.
#[derive(Clone, Copy)]
pub struct Digits<const N: usize> {
    offsets: [u8; N],
    negative: u64,
}

impl<const N: usize> Digits<N> {
    /// The digits d_i in -8..8 of a little-endian scalar x, with
    /// x = sum d_i 16^i: nibble i of y = x + 0x88...8 (N eights) is d_i + 8,
    /// since adding 8 at every position and reading each nibble back less 8
    /// leaves x. That needs y below 16^N, which holds for any x below 2^253
    /// when N = 64 (every scalar mod L) and below 2^131 when N = 33 (the
    /// coefficients z, below 2^128). A scalar out of range is stopped here (a
    /// panic) rather than mis-recoded.
    pub fn new(scalar: &[u8; 32]) -> Digits<N> {
        const { assert!(N <= 64) };
        let x: [u64; 4] = core::array::from_fn(|w| {
            u64::from_le_bytes(scalar[8 * w..8 * w + 8].try_into().expect("8 bytes"))
        });
        // y = x + sum of 8 * 16^i for i < N, word by word.
        let mut y = [0u64; 4];
        let mut carry = false;
        for w in 0..4 {
            let nibbles = N.saturating_sub(16 * w).min(16);
            let eights = if nibbles == 16 {
                0x8888_8888_8888_8888
            } else {
                0x8888_8888_8888_8888 & ((1u64 << (4 * nibbles)) - 1)
            };
            let (sum, c1) = x[w].overflowing_add(eights);
            let (sum, c2) = sum.overflowing_add(carry as u64);
            y[w] = sum;
            carry = c1 || c2;
        }
        // Nothing of y at or above bit 4N.
        let bits = 4 * N;
        let fits = !carry
            && (0..4).all(|w| match bits.checked_sub(64 * w) {
                Some(b) if b >= 64 => true,
                Some(b) if b > 0 => y[w] >> b == 0,
                _ => y[w] == 0,
            });
        assert!(fits, "scalar out of range");
        let mut offsets = [0u8; N];
        let mut negative = 0u64;
        for (i, offset) in offsets.iter_mut().enumerate() {
            let nibble = (y[i / 16] >> (4 * (i % 16))) & 15;
            // |nibble - 8| * ENTRY, and whether nibble - 8 < 0.
            *offset = (nibble.abs_diff(8) as usize * ENTRY) as u8;
            negative |= u64::from(nibble < 8) << i;
        }
        Digits { offsets, negative }
    }

    /// All digits zero: the scalar 0, for lanes and slots left empty.
    pub const ZERO: Digits<N> = Digits {
        offsets: [0; N],
        negative: 0,
    };
}

/// One slot of a run: in each lane, a signature's A and R with their
/// scalars' digits (the zero scalar on the B block for an empty lane).
#[derive(Clone, Copy)]
pub struct Slot<'a> {
    pub a_block: [usize; 8],
    pub a: [&'a Digits<DIGITS>; 8],
    pub r_block: [usize; 8],
    pub r: [&'a Digits<SHORT_DIGITS>; 8],
}

/// Eight lanes' digits of one scalar each, by position: the entry offsets
/// of position `pos` as the bytes of `offsets[pos]` (lane j in byte j), and
/// the lanes where the digit is negative.
struct Columns<const N: usize> {
    offsets: [u64; N],
    negative: [__mmask8; N],
}

impl<const N: usize> Columns<N> {
    fn new(lanes: [&Digits<N>; 8]) -> Columns<N> {
        let mut columns = Columns {
            offsets: [0; N],
            negative: [0; N],
        };
        for pos in 0..N {
            let mut bytes = [0u8; 8];
            for (j, digits) in lanes.iter().enumerate() {
                bytes[j] = digits.offsets[pos];
                columns.negative[pos] |= (((digits.negative >> pos) & 1) as u8) << j;
            }
            columns.offsets[pos] = u64::from_le_bytes(bytes);
        }
        columns
    }

    /// The qword offsets of the entries of position `pos` in blocks `base`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn at(&self, base: __m512i, pos: usize) -> (__m512i, __mmask8) {
        let bytes = _mm_cvtsi64_si128(self.offsets[pos] as i64);
        let offsets = _mm512_add_epi64(base, _mm512_cvtepu8_epi64(bytes));
        (offsets, self.negative[pos])
    }
}

/// A slot's digits by position, and the qword offsets of its blocks.
struct SlotColumns {
    a_base: __m512i,
    r_base: __m512i,
    a: Columns<DIGITS>,
    r: Columns<SHORT_DIGITS>,
}

/// Eight block numbers as qword offsets, one per lane.
#[inline]
#[target_feature(enable = "avx512f")]
fn block_offsets(blocks: &[usize; 8]) -> __m512i {
    let o = |j: usize| (blocks[j] * BLOCK) as i64;
    _mm512_set_epi64(o(7), o(6), o(5), o(4), o(3), o(2), o(1), o(0))
}

/// The lanes j where [8](sum of the slots' [a]A + [r]R, plus [b_j]B) is
/// the identity. B's table is block 0 of `tables`.
///
/// Panics if a slot names a block outside `tables`, which would be a bug in
/// the caller.
#[target_feature(enable = "avx512f,avx512ifma")]
pub fn run(tables: &Tables, slots: &[Slot<'_>], b: &[Digits<DIGITS>; 8]) -> __mmask8 {
    let blocks = tables.blocks();
    assert!(blocks > 0);
    let slots: Vec<SlotColumns> = slots
        .iter()
        .map(|s| {
            assert!(s.a_block.iter().chain(&s.r_block).all(|&blk| blk < blocks));
            SlotColumns {
                a_base: block_offsets(&s.a_block),
                r_base: block_offsets(&s.r_block),
                a: Columns::new(s.a),
                r: Columns::new(s.r),
            }
        })
        .collect();
    let b = Columns::new(b.each_ref());
    let zero = _mm512_setzero_si512();
    // The sum after each position, projective: a doubling comes next.
    let mut acc = Projective::identity();
    let mut lookups = Vec::with_capacity(2 * slots.len() + 1);
    for pos in (0..DIGITS).rev() {
        let mut sum = if pos == DIGITS - 1 {
            Point::identity()
        } else {
            acc.double_projective()
                .double_projective()
                .double_projective()
                .double()
        };
        // The entries this position adds: each slot's A (and R, in R's
        // positions), then B's last.
        lookups.clear();
        for slot in &slots {
            lookups.push(slot.a.at(slot.a_base, pos));
            if pos < SHORT_DIGITS {
                lookups.push(slot.r.at(slot.r_base, pos));
            }
        }
        lookups.push(b.at(zero, pos));
        // Each entry is gathered one addition ahead of its own, so that
        // its cache lines arrive while the addition before it computes.
        // SAFETY (both gathers): each lane's offset is a block number below
        // `blocks` (checked above; block 0, B's, exists) times BLOCK, plus
        // |digit| * ENTRY with |digit| <= 8 (`Digits`): an entry's start.
        for &(offsets, _) in lookups.iter().take(2) {
            tables.prefetch(offsets);
        }
        let (offsets, negative) = lookups[0];
        let mut next = unsafe { tables.gather(offsets, negative) };
        for (i, &(offsets, negative)) in lookups.iter().enumerate().skip(1) {
            if let Some(&(ahead, _)) = lookups.get(i + 1) {
                tables.prefetch(ahead);
            }
            let entry = next;
            // SAFETY: as above.
            next = unsafe { tables.gather(offsets, negative) };
            sum.add_assign(&entry);
        }
        acc = sum.add_projective(&next);
    }
    acc.double_projective()
        .double_projective()
        .double_projective()
        .is_identity()
}

/// The table block of B, built on first use.
#[target_feature(enable = "avx512f,avx512ifma")]
pub fn basepoint_block() -> &'static [Line] {
    static BLOCK_OF_B: std::sync::OnceLock<Vec<Line>> = std::sync::OnceLock::new();
    BLOCK_OF_B.get_or_init(|| {
        // The closure inherits this function's target features.
        let encodings = [[super::point::BASEPOINT; 8]];
        let [(b, decoded)] = super::point::decompress(&encodings);
        assert_eq!(decoded, 0xff, "B decodes");
        let mut tables = Tables::in_buffer(Vec::new(), 1);
        tables.store_points(0, 1, &b);
        tables.lines
    })
}

impl Tables {
    /// Copies a block (`BLOCK_LINES` lines) into block `at`.
    pub fn set_block(&mut self, at: usize, block: &[Line]) {
        self.lines[at * BLOCK_LINES..(at + 1) * BLOCK_LINES].copy_from_slice(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ed25519::ifma::tests::Rng;

    /// sum d_i 16^i from the digits, as (positive part, negative part):
    /// each |d_i| <= 8 fits its nibble, so neither part carries.
    fn parts<const N: usize>(d: &Digits<N>) -> ([u64; 5], [u64; 5]) {
        let (mut pos, mut neg) = ([0u64; 5], [0u64; 5]);
        for i in 0..N {
            let magnitude = d.offsets[i] as u64 / ENTRY as u64;
            assert!(magnitude <= 8 && (d.offsets[i] as usize).is_multiple_of(ENTRY));
            let part = if d.negative >> i & 1 == 1 {
                &mut neg
            } else {
                &mut pos
            };
            part[i / 16] |= magnitude << (4 * (i % 16));
        }
        (pos, neg)
    }

    fn add(a: [u64; 5], b: [u64; 5]) -> [u64; 5] {
        let mut out = [0u64; 5];
        let mut carry = 0u128;
        for i in 0..5 {
            let s = a[i] as u128 + b[i] as u128 + carry;
            out[i] = s as u64;
            carry = s >> 64;
        }
        out
    }

    fn check<const N: usize>(x: [u8; 32]) {
        let d = Digits::<N>::new(&x);
        let (pos, neg) = parts(&d);
        let mut words = [0u64; 5];
        for w in 0..4 {
            words[w] = u64::from_le_bytes(x[8 * w..8 * w + 8].try_into().unwrap());
        }
        assert_eq!(pos, add(words, neg), "{x:02x?}");
    }

    #[test]
    fn digits_add_up_to_the_scalar() {
        let mut rng = Rng(9);
        let top = |bits: usize| -> [u8; 32] {
            core::array::from_fn(|i| {
                if 8 * (i + 1) <= bits {
                    0xff
                } else if 8 * i < bits {
                    (1u8 << (bits - 8 * i)) - 1
                } else {
                    0
                }
            })
        };
        for x in [[0u8; 32], top(253), top(128), top(1), top(252)] {
            check::<DIGITS>(x);
        }
        check::<SHORT_DIGITS>(top(128));
        check::<SHORT_DIGITS>([0u8; 32]);
        for _ in 0..2000 {
            let mut x: [u8; 32] = rng.bytes();
            x[31] &= 0x1f; // below 2^253
            check::<DIGITS>(x);
            let mut z = [0u8; 32];
            z[..16].copy_from_slice(&x[..16]);
            check::<SHORT_DIGITS>(z);
        }
    }

    #[test]
    #[should_panic(expected = "scalar out of range")]
    fn a_long_scalar_is_refused() {
        let mut z = [0u8; 32];
        z[16] = 0x10; // 2^132 = 16^33
        Digits::<SHORT_DIGITS>::new(&z);
    }

    #[test]
    #[should_panic(expected = "scalar out of range")]
    fn a_scalar_of_256_bits_is_refused() {
        Digits::<DIGITS>::new(&[0xff; 32]);
    }
}
