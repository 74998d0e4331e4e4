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

use super::point::{multiples, Niels, Point, Projective, NIELS_LIMBS};

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
/// Signed radix-16 digits of a scalar below 2^256 (digits in -8..=8).
pub const DIGITS: usize = 64;
/// Digits of a scalar below 2^128 (the last one is 0 or 1).
pub const SHORT_DIGITS: usize = 33;

/// Table blocks for a chunk of points; block `b` is at qwords
/// `b * BLOCK .. (b + 1) * BLOCK`.
pub struct Tables {
    lines: Vec<Line>,
}

impl Tables {
    /// `blocks` blocks, each entry the identity until written.
    pub fn new(blocks: usize) -> Tables {
        let mut entry = [0u64; ENTRY];
        entry[..NIELS_LIMBS].copy_from_slice(&Niels::IDENTITY_LIMBS);
        let mut block = [Line([0; 8]); BLOCK_LINES];
        for (i, line) in block.iter_mut().enumerate() {
            line.0
                .copy_from_slice(&entry[(i * 8) % ENTRY..(i * 8) % ENTRY + 8]);
        }
        Tables {
            lines: block.repeat(blocks),
        }
    }

    pub fn blocks(&self) -> usize {
        self.lines.len() / BLOCK_LINES
    }

    /// Writes the entries 1P..8P of eight points, lane j into block
    /// `first + j`, for the lanes below `count`.
    #[target_feature(enable = "avx512f")]
    pub fn store(&mut self, first: usize, count: usize, multiples: &[Niels; 8]) {
        for (e, niels) in multiples.iter().enumerate() {
            let vectors = niels.vectors().map(|v| super::field::lanes_of(v));
            for lane in 0..count {
                let mut entry = [0u64; ENTRY];
                for (limb, vector) in entry.iter_mut().zip(&vectors) {
                    *limb = vector[lane];
                }
                let at = (first + lane) * BLOCK_LINES + (e + 1) * (ENTRY / 8);
                for (i, line) in self.lines[at..at + ENTRY / 8].iter_mut().enumerate() {
                    line.0.copy_from_slice(&entry[8 * i..8 * i + 8]);
                }
            }
        }
    }

    /// Writes the tables of up to eight points, lane j into block `first + j`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn store_points(&mut self, first: usize, count: usize, points: &Point) {
        self.store(first, count, &multiples(points));
    }

    /// The 20 limbs of entry `offset / ENTRY` of every lane's block,
    /// `offset` being a qword offset into the buffer.
    ///
    /// # Safety
    /// Every lane of `offsets` must be `b * BLOCK + e * ENTRY` for a block
    /// `b < self.blocks()` and an entry `e < 9`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn gather(&self, offsets: __m512i) -> Niels {
        let base = self.lines.as_ptr() as *const i64;
        Niels::from_vectors(core::array::from_fn(|k| {
            // SAFETY: by the contract each lane's offset is the start of an
            // entry inside the buffer, and k < 20 < ENTRY stays inside that
            // entry; the buffer is initialised u64s, read as i64.
            unsafe { _mm512_i64gather_epi64::<8>(offsets, base.add(k)) }
        }))
    }
}

/// A scalar's signed radix-16 digits in the form a run reads: the entry
/// offset `|d| * ENTRY` of each digit (at most 192, so a byte) and a bit
/// per digit for its sign.
#[derive(Clone, Copy)]
pub struct Digits<const N: usize> {
    pub offsets: [u8; N],
    pub negative: u64,
}

impl<const N: usize> Digits<N> {
    /// The digits of a little-endian scalar below 16^(N-1) * 8, so that
    /// the recoding of its N nibbles into digits in -8..8 leaves the last
    /// carry in the last digit (at most 8): below 2^253 for N = 64 (every
    /// scalar mod L), below 2^128 for N = 33.
    pub fn new(scalar: &[u8; 32]) -> Digits<N> {
        let mut offsets = [0u8; N];
        let mut negative = 0u64;
        let mut carry = 0i32;
        for (i, offset) in offsets.iter_mut().enumerate() {
            let nibble = if i < 64 {
                ((scalar[i / 2] >> (4 * (i % 2))) & 15) as i32
            } else {
                0
            };
            let v = nibble + carry;
            let digit = if i + 1 < N {
                carry = (v + 8) >> 4;
                v - 16 * carry
            } else {
                v
            };
            // Table lookups rely on |digit| <= 8: below the last position
            // the recoding gives -8..8; the last digit is small when the
            // scalar is in range, and a caller passing one out of range is
            // stopped here rather than reading past a table.
            assert!((-8..=8).contains(&digit), "scalar out of range");
            *offset = (digit.unsigned_abs() as usize * ENTRY) as u8;
            negative |= ((digit < 0) as u64) << i;
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
pub struct Slot {
    pub a_block: [usize; 8],
    pub a: [Digits<DIGITS>; 8],
    pub r_block: [usize; 8],
    pub r: [Digits<SHORT_DIGITS>; 8],
}

/// Eight lanes' digits of one scalar each, by position: the entry offsets
/// of position `pos` as the bytes of `offsets[pos]` (lane j in byte j), and
/// the lanes where the digit is negative.
struct Columns<const N: usize> {
    offsets: [u64; N],
    negative: [__mmask8; N],
}

impl<const N: usize> Columns<N> {
    fn new(lanes: &[Digits<N>; 8]) -> Columns<N> {
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
pub fn run(tables: &Tables, slots: &[Slot], b: &[Digits<DIGITS>; 8]) -> __mmask8 {
    let blocks = tables.blocks();
    assert!(blocks > 0);
    let slots: Vec<SlotColumns> = slots
        .iter()
        .map(|s| {
            assert!(s.a_block.iter().chain(&s.r_block).all(|&blk| blk < blocks));
            SlotColumns {
                a_base: block_offsets(&s.a_block),
                r_base: block_offsets(&s.r_block),
                a: Columns::new(&s.a),
                r: Columns::new(&s.r),
            }
        })
        .collect();
    let b = Columns::new(b);
    let zero = _mm512_setzero_si512();
    // The sum after each position, projective: a doubling comes next.
    let mut acc = Projective::identity();
    for pos in (0..DIGITS).rev() {
        let mut sum = if pos == DIGITS - 1 {
            Point::identity()
        } else {
            acc.double_projective()
                .double_projective()
                .double_projective()
                .double()
        };
        for slot in &slots {
            let (offsets, negative) = slot.a.at(slot.a_base, pos);
            // SAFETY: each lane's offset is a block number below `blocks`
            // (checked above) times BLOCK, plus |digit| * ENTRY with
            // |digit| <= 8 (`Digits::new`): the start of an entry.
            sum = sum.add(&unsafe { tables.gather(offsets) }, negative);
            if pos < SHORT_DIGITS {
                let (offsets, negative) = slot.r.at(slot.r_base, pos);
                // SAFETY: as for A.
                sum = sum.add(&unsafe { tables.gather(offsets) }, negative);
            }
        }
        let (offsets, negative) = b.at(zero, pos);
        // SAFETY: block 0 exists (checked above); the offsets are
        // |digit| * ENTRY with |digit| <= 8.
        acc = sum.add_projective(&unsafe { tables.gather(offsets) }, negative);
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
        let mut tables = Tables::new(1);
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
