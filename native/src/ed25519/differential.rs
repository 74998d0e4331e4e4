//! The lane path (`lanes`) against ed25519-zebra's single verification, the
//! reference for ZIP 215, on generated signatures: valid ones, random
//! corruptions, and every kind of input where Ed25519 verifiers are known
//! to disagree. A disagreement on any input would be a consensus fork.
//!
//! Cases are dealt into batches of random sizes (many of 1 to 17, so that
//! lane tails and lone signatures are common) with a random share of edge
//! cases, from almost none (a failing batch is narrowed down) to all
//! (invalid signatures are dense); each batch is verified by `lanes`, each
//! case alone by zebra, and the answers compared.

use std::collections::HashSet;

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use super::lanes::{self, Item};

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// What a case is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A valid signature by a random key.
    Valid,
    /// A valid signature with one bit of R, A, S or the message flipped.
    FlipR,
    FlipA,
    FlipS,
    FlipMessage,
    /// A (or R, or both) a small-order point, in any of its encodings; the
    /// signature made valid under ZIP 215 or not, at random.
    SmallOrderA,
    SmallOrderR,
    SmallOrderBoth,
    /// A (or R) encoded with y >= p; valid when that decodes to a
    /// small-order point and the rest is built for it.
    NonCanonicalA,
    NonCanonicalR,
    /// S at or above L (S + L, L itself, 2^256 - 1, or random 256 bits).
    SNotReduced,
    /// A = aB + T and R = rB + T' with T, T' of small order: valid under
    /// ZIP 215's cofactored equation.
    MixedOrder,
    /// A (or R) bytes that decode to no point.
    NotAPointA,
    NotAPointR,
    /// Random key, signature and message.
    Random,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::Valid,
        Kind::FlipR,
        Kind::FlipA,
        Kind::FlipS,
        Kind::FlipMessage,
        Kind::SmallOrderA,
        Kind::SmallOrderR,
        Kind::SmallOrderBoth,
        Kind::NonCanonicalA,
        Kind::NonCanonicalR,
        Kind::SNotReduced,
        Kind::MixedOrder,
        Kind::NotAPointA,
        Kind::NotAPointR,
        Kind::Random,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Valid => "valid",
            Kind::FlipR => "flip R",
            Kind::FlipA => "flip A",
            Kind::FlipS => "flip S",
            Kind::FlipMessage => "flip message",
            Kind::SmallOrderA => "small-order A",
            Kind::SmallOrderR => "small-order R",
            Kind::SmallOrderBoth => "small-order A and R",
            Kind::NonCanonicalA => "non-canonical A",
            Kind::NonCanonicalR => "non-canonical R",
            Kind::SNotReduced => "S >= L",
            Kind::MixedOrder => "mixed-order A and R",
            Kind::NotAPointA => "A not a point",
            Kind::NotAPointR => "R not a point",
            Kind::Random => "random",
        }
    }
}

/// One (key, message, signature) triple.
#[derive(Clone, Debug)]
pub struct Case {
    pub key: [u8; 32],
    pub sig: [u8; 64],
    pub msg: Vec<u8>,
    pub kind: Kind,
}

impl Case {
    fn item(&self) -> Item<'_> {
        Item {
            key: &self.key,
            sig: &self.sig,
            msg: &self.msg,
        }
    }
}

/// ed25519-zebra's single verification: the reference answer.
pub fn zebra_verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    ed25519_zebra::VerificationKey::try_from(*key)
        .and_then(|vk| vk.verify(&ed25519_zebra::Signature::from_bytes(sig), msg))
        .is_ok()
}

/// Every encoding of the eight small-order points: the canonical ones, x = 0
/// with the sign bit set, and y + p where that is below 2^255 (y = 0, 1).
pub fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut candidates = Vec::new();
    for t in EIGHT_TORSION.iter() {
        let c = t.compress().to_bytes();
        let mut flipped = c;
        flipped[31] ^= 0x80;
        candidates.extend([c, flipped]);
    }
    candidates.extend(non_canonical_encodings());
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter(|e| {
            CompressedEdwardsY(*e)
                .decompress()
                .is_some_and(|p| p.is_small_order())
        })
        .filter(|e| seen.insert(*e))
        .collect()
}

/// The 38 encodings whose y is p + t, t < 19 (the only y >= p below 2^255),
/// with either sign bit; some decode to points, some do not.
pub fn non_canonical_encodings() -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for t in 0u8..19 {
        // p + t = 2^255 - 19 + t.
        let mut e = [0xffu8; 32];
        e[0] = 0xed + t;
        e[31] = 0x7f;
        for sign in [0u8, 0x80] {
            let mut s = e;
            s[31] |= sign;
            out.push(s);
        }
    }
    out
}

/// A signing key of the generator: the secret scalar and the public point.
struct Key {
    a: Scalar,
    point: EdwardsPoint,
}

/// Draws cases of every kind from a seed.
pub struct Generator {
    rng: StdRng,
    keys: Vec<Key>,
    small: Vec<[u8; 32]>,
    non_canonical: Vec<[u8; 32]>,
}

fn k_of(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

fn signature(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(r);
    sig[32..].copy_from_slice(s);
    sig
}

fn decode(e: &[u8; 32]) -> Option<EdwardsPoint> {
    CompressedEdwardsY(*e).decompress()
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys = (0..64)
            .map(|_| {
                let a = Scalar::from_bytes_mod_order_wide(&rng.random());
                Key {
                    a,
                    point: EdwardsPoint::mul_base(&a),
                }
            })
            .collect();
        Generator {
            rng,
            keys,
            small: small_order_encodings(),
            non_canonical: non_canonical_encodings(),
        }
    }

    fn scalar(&mut self) -> Scalar {
        Scalar::from_bytes_mod_order_wide(&self.rng.random())
    }

    fn message(&mut self) -> Vec<u8> {
        let len = match self.rng.random_range(0..4) {
            0 => 0,
            1 => self.rng.random_range(1..32),
            2 => self.rng.random_range(32..130),
            _ => self.rng.random_range(130..400),
        };
        (0..len).map(|_| self.rng.random()).collect()
    }

    fn pick(&mut self, list: &[[u8; 32]]) -> [u8; 32] {
        list[self.rng.random_range(0..list.len())]
    }

    fn torsion(&mut self) -> EdwardsPoint {
        EIGHT_TORSION[self.rng.random_range(0..8)]
    }

    /// A signature by `a` (public point `a_point`, sent as `a_enc`), with
    /// `extra` (of small order) added to R: valid under ZIP 215.
    fn sign(&mut self, a: Scalar, a_enc: &[u8; 32], extra: EdwardsPoint, msg: &[u8]) -> [u8; 64] {
        let r = self.scalar();
        let r_enc = (EdwardsPoint::mul_base(&r) + extra).compress().to_bytes();
        let s = r + k_of(&r_enc, a_enc, msg) * a;
        signature(&r_enc, s.as_bytes())
    }

    fn valid(&mut self) -> Case {
        let i = self.rng.random_range(0..self.keys.len());
        let (a, key) = (self.keys[i].a, self.keys[i].point.compress().to_bytes());
        let msg = self.message();
        let sig = self.sign(a, &key, EdwardsPoint::default(), &msg);
        Case {
            key,
            sig,
            msg,
            kind: Kind::Valid,
        }
    }

    /// A valid signature with bit `bit` of `bytes` flipped.
    fn flip(&mut self, kind: Kind) -> Case {
        let mut c = self.valid();
        c.kind = kind;
        let bit = self.rng.random_range(0..256usize);
        match kind {
            Kind::FlipR => c.sig[bit / 8] ^= 1 << (bit % 8),
            Kind::FlipA => c.key[bit / 8] ^= 1 << (bit % 8),
            Kind::FlipS => c.sig[32 + bit / 8] ^= 1 << (bit % 8),
            _ => {
                if c.msg.is_empty() {
                    c.msg.push(self.rng.random());
                } else {
                    let bit = self.rng.random_range(0..8 * c.msg.len());
                    c.msg[bit / 8] ^= 1 << (bit % 8);
                }
            }
        }
        c
    }

    /// A is the encoding `a_enc` of a small-order point (or of anything,
    /// for the non-canonical kinds); R is rB + T; S = r makes it valid
    /// when A decodes to a small-order point, S = r + 1 not.
    fn with_small_key(&mut self, key: [u8; 32], kind: Kind) -> Case {
        let msg = self.message();
        let valid = self.rng.random_bool(0.5);
        let sig = if self.rng.random_bool(0.25) {
            // R small too, S = 0 (valid) or random.
            let r = self.pick(&self.small.clone());
            let s = if valid { Scalar::ZERO } else { self.scalar() };
            signature(&r, s.as_bytes())
        } else {
            let r = self.scalar();
            let extra = self.torsion();
            let r_enc = (EdwardsPoint::mul_base(&r) + extra).compress().to_bytes();
            let s = if valid { r } else { r + Scalar::ONE };
            signature(&r_enc, s.as_bytes())
        };
        Case {
            key,
            sig,
            msg,
            kind,
        }
    }

    /// R is the encoding `r_enc`; S = k a makes it valid when R decodes
    /// to a small-order point.
    fn with_small_r(&mut self, r_enc: [u8; 32], kind: Kind) -> Case {
        let i = self.rng.random_range(0..self.keys.len());
        let (a, key) = (self.keys[i].a, self.keys[i].point.compress().to_bytes());
        let msg = self.message();
        let mut s = k_of(&r_enc, &key, &msg) * a;
        if self.rng.random_bool(0.3) {
            s += Scalar::ONE;
        }
        Case {
            key,
            sig: signature(&r_enc, s.as_bytes()),
            msg,
            kind,
        }
    }

    fn s_not_reduced(&mut self) -> Case {
        let mut c = self.valid();
        c.kind = Kind::SNotReduced;
        let s: [u8; 32] = match self.rng.random_range(0..4) {
            0 => {
                // S + L (S < L < 2^253, so no overflow).
                let mut out = [0u8; 32];
                let mut carry = 0u16;
                for i in 0..32 {
                    let v = c.sig[32 + i] as u16 + L[i] as u16 + carry;
                    out[i] = v as u8;
                    carry = v >> 8;
                }
                out
            }
            1 => L,
            2 => [0xff; 32],
            _ => {
                let mut s: [u8; 32] = self.rng.random();
                s[31] |= 0x20 << self.rng.random_range(0..3); // >= 2^253 > L
                s
            }
        };
        c.sig[32..].copy_from_slice(&s);
        c
    }

    fn mixed_order(&mut self) -> Case {
        let i = self.rng.random_range(0..self.keys.len());
        let a = self.keys[i].a;
        let t = self.torsion();
        let key = (self.keys[i].point + t).compress().to_bytes();
        let msg = self.message();
        let extra = self.torsion();
        let sig = self.sign(a, &key, extra, &msg);
        Case {
            key,
            sig,
            msg,
            kind: Kind::MixedOrder,
        }
    }

    fn not_a_point(&mut self) -> [u8; 32] {
        loop {
            let e: [u8; 32] = self.rng.random();
            if decode(&e).is_none() {
                return e;
            }
        }
    }

    /// One case of the given kind.
    pub fn case_of(&mut self, kind: Kind) -> Case {
        match kind {
            Kind::Valid => self.valid(),
            Kind::FlipR | Kind::FlipA | Kind::FlipS | Kind::FlipMessage => self.flip(kind),
            Kind::SmallOrderA => {
                let key = self.pick(&self.small.clone());
                self.with_small_key(key, kind)
            }
            Kind::SmallOrderR => {
                let r = self.pick(&self.small.clone());
                self.with_small_r(r, kind)
            }
            Kind::SmallOrderBoth => {
                let key = self.pick(&self.small.clone());
                let r = self.pick(&self.small.clone());
                let msg = self.message();
                let s = if self.rng.random_bool(0.5) {
                    Scalar::ZERO
                } else {
                    self.scalar()
                };
                Case {
                    key,
                    sig: signature(&r, s.as_bytes()),
                    msg,
                    kind,
                }
            }
            Kind::NonCanonicalA => {
                let key = self.pick(&self.non_canonical.clone());
                self.with_small_key(key, kind)
            }
            Kind::NonCanonicalR => {
                let r = self.pick(&self.non_canonical.clone());
                self.with_small_r(r, kind)
            }
            Kind::SNotReduced => self.s_not_reduced(),
            Kind::MixedOrder => self.mixed_order(),
            Kind::NotAPointA => {
                let mut c = self.valid();
                c.key = self.not_a_point();
                c.kind = kind;
                c
            }
            Kind::NotAPointR => {
                let mut c = self.valid();
                let r = self.not_a_point();
                c.sig[..32].copy_from_slice(&r);
                c.kind = kind;
                c
            }
            Kind::Random => Case {
                key: self.rng.random(),
                sig: self.rng.random(),
                msg: self.message(),
                kind,
            },
        }
    }

    /// A batch: a random size (half of them 1 to 17) and a random share of
    /// edge cases (2%, 10%, 50% or all), the rest valid signatures.
    pub fn batch(&mut self) -> Vec<Case> {
        let size = match self.rng.random_range(0..20) {
            0..10 => self.rng.random_range(1..=17),
            10..17 => self.rng.random_range(18..=100),
            _ => self.rng.random_range(101..=256),
        };
        let edge = [0.02, 0.1, 0.5, 1.0][self.rng.random_range(0..4)];
        (0..size)
            .map(|_| {
                if self.rng.random_bool(edge) {
                    let kind = Kind::ALL[self.rng.random_range(1..Kind::ALL.len())];
                    self.case_of(kind)
                } else {
                    self.valid()
                }
            })
            .collect()
    }
}

/// A case on which the two verifiers disagree.
#[derive(Clone, Debug)]
pub struct Disagreement {
    pub case: Case,
    pub zebra: bool,
    pub lanes: bool,
}

/// What a differential run saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub cases: u64,
    pub batches: u64,
    pub accepted: u64,
    /// Cases and accepted cases per kind, in `Kind::ALL` order.
    pub by_kind: Vec<(u64, u64)>,
    pub disagreements: Vec<Disagreement>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            by_kind: vec![(0, 0); Kind::ALL.len()],
            ..Tally::default()
        }
    }

    fn merge(mut self, other: Tally) -> Tally {
        self.cases += other.cases;
        self.batches += other.batches;
        self.accepted += other.accepted;
        for (mine, theirs) in self.by_kind.iter_mut().zip(&other.by_kind) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        self.disagreements.extend(other.disagreements);
        self.disagreements.truncate(100);
        self
    }

    /// Verifies `cases` as one batch with `lanes` and each alone with zebra.
    pub fn compare(&mut self, cases: &[Case], rng: &mut StdRng) {
        let items: Vec<Item<'_>> = cases.iter().map(Case::item).collect();
        let ours = lanes::verify(&items, rng).expect("the caller checked for AVX-512 IFMA");
        self.batches += 1;
        for (case, &lanes) in cases.iter().zip(&ours) {
            let zebra = zebra_verify(&case.key, &case.msg, &case.sig);
            let k = Kind::ALL.iter().position(|&k| k == case.kind).unwrap_or(0);
            self.cases += 1;
            self.by_kind[k].0 += 1;
            if zebra {
                self.accepted += 1;
                self.by_kind[k].1 += 1;
            }
            if zebra != lanes && self.disagreements.len() < 100 {
                self.disagreements.push(Disagreement {
                    case: case.clone(),
                    zebra,
                    lanes,
                });
            }
        }
    }
}

/// Generated batches until at least `cases` cases, in parallel (each batch
/// from its own seed, so the run is the same on any number of threads), or
/// `None` without AVX-512 IFMA.
pub fn run(cases: u64, seed: u64) -> Option<Tally> {
    if !super::ifma::available() {
        return None;
    }
    // Work in blocks of batches; each block's generator is seeded from
    // (seed, block), so blocks are independent.
    const BLOCK_CASES: u64 = 2000;
    let blocks = cases.div_ceil(BLOCK_CASES).max(1);
    let tally = (0..blocks)
        .into_par_iter()
        .map(|block| {
            let mut generator = Generator::new(seed ^ block.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut rng = StdRng::seed_from_u64(!seed ^ block);
            let mut tally = Tally::new();
            let want = BLOCK_CASES.min(cases - block * BLOCK_CASES);
            while tally.cases < want {
                let batch = generator.batch();
                tally.compare(&batch, &mut rng);
            }
            tally
        })
        .reduce(Tally::new, Tally::merge);
    Some(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(cases: &[Case], rng: &mut StdRng) -> Tally {
        let mut tally = Tally::new();
        tally.compare(cases, rng);
        tally
    }

    #[test]
    fn the_encodings_are_all_there() {
        let small = small_order_encodings();
        assert_eq!(small.len(), 14); // 8 canonical, 2 with x = -0, 4 with y >= p
        let points: HashSet<[u8; 32]> = small
            .iter()
            .map(|e| decode(e).unwrap().compress().to_bytes())
            .collect();
        assert_eq!(points.len(), 8);
        assert_eq!(non_canonical_encodings().len(), 38);
    }

    /// Every small-order encoding as A against every one as R, valid (S = 0)
    /// and not (S = 1); every y >= p encoding as A and as R.
    fn edge_cases(generator: &mut Generator) -> Vec<Case> {
        let small = small_order_encodings();
        let mut cases = Vec::new();
        for a in &small {
            for r in &small {
                for s in [Scalar::ZERO, Scalar::ONE] {
                    cases.push(Case {
                        key: *a,
                        sig: signature(r, s.as_bytes()),
                        msg: b"small".to_vec(),
                        kind: Kind::SmallOrderBoth,
                    });
                }
            }
        }
        for e in non_canonical_encodings() {
            cases.push(generator.with_small_key(e, Kind::NonCanonicalA));
            cases.push(generator.with_small_r(e, Kind::NonCanonicalR));
        }
        for kind in Kind::ALL {
            for _ in 0..8 {
                cases.push(generator.case_of(kind));
            }
        }
        cases
    }

    #[test]
    fn edge_cases_alone_and_in_batches_of_1_to_17_at_every_offset() {
        if !crate::ed25519::ifma::available() {
            return;
        }
        let mut generator = Generator::new(215);
        let mut rng = StdRng::seed_from_u64(8);
        let cases = edge_cases(&mut generator);
        let valid: Vec<Case> = (0..17).map(|_| generator.valid()).collect();
        let mut tally = Tally::new();
        for case in &cases {
            tally = tally.merge(agree(std::slice::from_ref(case), &mut rng));
        }
        let mut next = 0;
        for size in 1..=17 {
            for offset in 0..size {
                // Two edge cases (or one) among valid signatures, one at `offset`.
                let mut batch: Vec<Case> = valid[..size].to_vec();
                batch[offset] = cases[next % cases.len()].clone();
                if size > 2 {
                    batch[(offset + size / 2) % size] = cases[(next + 1) % cases.len()].clone();
                }
                next += 2;
                tally = tally.merge(agree(&batch, &mut rng));
            }
        }
        // All edge cases at once, in dense batches of 17.
        for batch in cases.chunks(17) {
            tally = tally.merge(agree(batch, &mut rng));
        }
        assert!(tally.disagreements.is_empty(), "{:?}", tally.disagreements);
        // Both answers are common: the test cannot pass by rejecting all.
        assert!(tally.accepted > tally.cases / 4 && tally.accepted < tally.cases * 3 / 4);
    }

    #[test]
    fn generated_batches_agree() {
        // Fewer cases unoptimised: the long run is `echorand bench verify
        // --differential`.
        let want = if cfg!(debug_assertions) { 600 } else { 3000 };
        let Some(tally) = run(want, 6) else { return };
        assert!(tally.cases >= want);
        assert!(tally.disagreements.is_empty(), "{:?}", tally.disagreements);
        for (kind, (cases, _)) in Kind::ALL.iter().zip(&tally.by_kind) {
            assert!(*cases > 0, "no case of kind {}", kind.name());
        }
    }
}
