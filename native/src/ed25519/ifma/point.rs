//! Points of edwards25519, eight at a time: decoding under ZIP 215, the
//! twisted Edwards formulas, and the tables of multiples that the
//! multiscalar multiplication reads.
//!
//! The curve is `-x^2 + y^2 = 1 + d x^2 y^2`. Points are in extended
//! coordinates (X : Y : Z : T), x = X/Z, y = Y/Z, xy = T/Z (Hisil, Wong,
//! Carter, Dawson, "Twisted Edwards curves revisited", 2008). With a = -1
//! and d not a square, their addition formula is complete: it is right for
//! every pair of points, the identity, small-order points and equal points
//! included, which is what lets a lane add whatever its table lookup gives.

use core::arch::x86_64::*;

use super::field::{y_limbs, Fe};

/// d = -121665 / 121666.
const D: [u64; 5] = [
    0xb4dca135978a3,
    0x4d4141d8ab75e,
    0x779e89800700a,
    0xfe738cc740797,
    0x52036cee2b6f,
];
/// 2d.
const D2: [u64; 5] = [
    0x69b9426b2f159,
    0x9a8283b156ebd,
    0xef3d13000e014,
    0xfce7198e80f2e,
    0x2406d9dc56df,
];
/// A square root of -1 (2^((p-1)/4)).
const SQRT_M1: [u64; 5] = [
    0xe1b274a0ea0b0,
    0x6ad2fe478c4e,
    0xdfbd7a72f4318,
    0xdf0b2b4d00993,
    0x2b8324804fc1,
];

/// Eight points in extended coordinates.
#[derive(Clone, Copy)]
pub struct Point {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
    pub t: Fe,
}

/// Eight points in projective coordinates (X : Y : Z), what a doubling
/// needs and what an addition followed by a doubling gives.
#[derive(Clone, Copy)]
pub struct Projective {
    x: Fe,
    y: Fe,
    z: Fe,
}

/// Eight points ready to be added: (Y + X, Y - X, 2Z, 2dT).
#[derive(Clone, Copy)]
pub struct Niels {
    pub y_plus_x: Fe,
    pub y_minus_x: Fe,
    pub z2: Fe,
    pub t2d: Fe,
}

/// Eight points ±P ready to be added: (Y + X, Y - X, 2Z) of ±P, the 2dT of
/// P, and the lanes where the point is -P (whose 2dT is minus the one held).
#[derive(Clone, Copy)]
pub struct SignedNiels {
    pub niels: Niels,
    pub negative: __mmask8,
}

impl From<Niels> for SignedNiels {
    fn from(niels: Niels) -> SignedNiels {
        SignedNiels { niels, negative: 0 }
    }
}

/// The field elements of a `Niels`, in the order they are stored in a table.
pub const NIELS_LIMBS: usize = 20;

impl Niels {
    /// The identity, (1, 1, 2, 0), as limbs in table order.
    pub const IDENTITY_LIMBS: [u64; NIELS_LIMBS] =
        [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// The 20 vectors in table order (limb k of coordinate c at 5c + k).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn vectors(&self) -> [__m512i; NIELS_LIMBS] {
        let c = [&self.y_plus_x, &self.y_minus_x, &self.z2, &self.t2d];
        core::array::from_fn(|i| c[i / 5].0[i % 5])
    }

    /// The inverse of `vectors`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn from_vectors(v: [__m512i; NIELS_LIMBS]) -> Niels {
        let fe = |c: usize| Fe(core::array::from_fn(|k| v[5 * c + k]));
        Niels {
            y_plus_x: fe(0),
            y_minus_x: fe(1),
            z2: fe(2),
            t2d: fe(3),
        }
    }
}

impl Point {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn identity() -> Point {
        Point {
            x: Fe::zero(),
            y: Fe::one(),
            z: Fe::one(),
            t: Fe::zero(),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn projective(&self) -> Projective {
        Projective {
            x: self.x,
            y: self.y,
            z: self.z,
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn niels(&self) -> Niels {
        Niels {
            y_plus_x: self.y.add(&self.x),
            y_minus_x: self.y.sub(&self.x),
            z2: self.z.add(&self.z),
            t2d: self.t.mul(&Fe::splat(D2)),
        }
    }

    /// The products of the addition formula ("add-2008-hwcd-3"): E, F, G, H
    /// with the sum being (EF : GH : FG : EH). In lanes where `q` is -P, C =
    /// T1 * 2dT2 changes sign, which swaps F = D - C and G = D + C.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn sum_terms(&self, q: &SignedNiels) -> [Fe; 4] {
        let (n, negative) = (&q.niels, q.negative);
        // A, B, C, D are only added and subtracted: left wide.
        let a = self.y.sub(&self.x).mul_wide(&n.y_minus_x);
        let b = self.y.add(&self.x).mul_wide(&n.y_plus_x);
        let c = self.t.mul_wide(&n.t2d);
        let d = self.z.mul_wide(&n.z2);
        let e = b.sub(&a);
        let h = b.add(&a);
        let d_minus_c = d.sub(&c);
        let d_plus_c = d.add(&c);
        let f = d_minus_c.select(negative, &d_plus_c);
        let g = d_plus_c.select(negative, &d_minus_c);
        [e, f, g, h]
    }

    /// `self + q`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn add(&self, q: &SignedNiels) -> Point {
        let mut sum = *self;
        sum.add_assign(q);
        sum
    }

    /// `self += q`, in place: the sum is written over `self` rather than
    /// returned and copied.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn add_assign(&mut self, q: &SignedNiels) {
        let [e, f, g, h] = self.sum_terms(q);
        self.x = e.mul(&f);
        self.y = g.mul(&h);
        self.z = f.mul(&g);
        self.t = e.mul(&h);
    }

    /// `self + q` without T, for a doubling next.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn add_projective(&self, q: &SignedNiels) -> Projective {
        let [e, f, g, h] = self.sum_terms(q);
        Projective {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn double(&self) -> Point {
        self.projective().double()
    }
}

impl Projective {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn identity() -> Projective {
        Point::identity().projective()
    }

    /// Lanes where the point is the identity: X = 0 and Y = Z.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn is_identity(&self) -> __mmask8 {
        self.x.is_zero() & self.y.equals(&self.z)
    }

    /// The products of the doubling formula ("dbl-2008-hwcd", a = -1), each
    /// factor negated (which leaves the projective point unchanged):
    /// A = X^2, B = Y^2, E = (X + Y)^2 - A - B, G = B - A,
    /// F' = A + 2Z^2 - B, H' = A + B; the double is (EF' : GH' : F'G : EH').
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn double_terms(&self) -> [Fe; 4] {
        // The four squares are only added and subtracted: left wide.
        let a = self.x.square_wide();
        let b = self.y.square_wide();
        let zz = self.z.square_wide();
        let s = self.x.add(&self.y).square_wide();
        let e = s.sub_sub(&a, &b);
        let g = b.sub(&a);
        let f = a.add_twice_sub(&zz, &b);
        let h = a.add(&b);
        [e, f, g, h]
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn double(&self) -> Point {
        let [e, f, g, h] = self.double_terms();
        Point {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
            t: e.mul(&h),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn double_projective(&self) -> Projective {
        let [e, f, g, h] = self.double_terms();
        Projective {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
        }
    }
}

/// `[x^((p-5)/8); N]`, p - 5 over 8 being 2^252 - 3, for N independent
/// vectors stepped together so that their multiplications overlap.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn pow_p58<const N: usize>(x: &[Fe; N]) -> [Fe; N] {
    let sq = |v: &[Fe; N], n: u32| -> [Fe; N] {
        let mut v = *v;
        for _ in 0..n {
            v = v.map(|f| f.square());
        }
        v
    };
    let mul = |a: &[Fe; N], b: &[Fe; N]| -> [Fe; N] { core::array::from_fn(|i| a[i].mul(&b[i])) };
    let t0 = sq(x, 1); // 2
    let t1 = mul(x, &sq(&t0, 2)); // 9
    let t0 = mul(&t0, &t1); // 11
    let t1 = mul(&t1, &sq(&t0, 1)); // 31 = 2^5 - 1
    let t2 = mul(&sq(&t1, 5), &t1); // 2^10 - 1
    let t3 = mul(&sq(&t2, 10), &t2); // 2^20 - 1
    let t4 = mul(&sq(&t3, 20), &t3); // 2^40 - 1
    let t5 = mul(&sq(&t4, 10), &t2); // 2^50 - 1
    let t6 = mul(&sq(&t5, 50), &t5); // 2^100 - 1
    let t7 = mul(&sq(&t6, 100), &t6); // 2^200 - 1
    let t8 = mul(&sq(&t7, 50), &t5); // 2^250 - 1
    mul(&sq(&t8, 2), x) // 2^252 - 3
}

/// Decodes `N` vectors of eight point encodings under ZIP 215, as
/// curve25519-dalek's `CompressedEdwardsY::decompress` does (which is what
/// ed25519-zebra uses): y is the low 255 bits, taken mod p even when they
/// are p or more; x is the root of x^2 = (y^2 - 1) / (d y^2 + 1) whose
/// reduced value is even, negated when bit 255 is set (so x = 0 with the
/// bit set decodes to x = 0). An encoding decodes when the ratio is a
/// square; the mask has the bit of each lane that decoded. Lanes that do
/// not decode hold some point, to be ignored.
#[target_feature(enable = "avx512f,avx512ifma")]
pub fn decompress<const N: usize>(encodings: &[[[u8; 32]; 8]; N]) -> [(Point, __mmask8); N] {
    let one = Fe::one();
    let y: [Fe; N] = core::array::from_fn(|i| {
        Fe::from_lanes(&core::array::from_fn(|j| y_limbs(&encodings[i][j])))
    });
    let sign: [__mmask8; N] =
        core::array::from_fn(|i| (0..8).fold(0, |m, j| m | (encodings[i][j][31] >> 7) << j));
    let yy: [Fe; N] = core::array::from_fn(|i| y[i].square());
    let u: [Fe; N] = core::array::from_fn(|i| yy[i].sub(&one));
    let v: [Fe; N] = core::array::from_fn(|i| yy[i].mul(&Fe::splat(D)).add(&one));
    // sqrt(u/v) = u v^3 (u v^7)^((p-5)/8), up to a factor sqrt(-1).
    let v3: [Fe; N] = core::array::from_fn(|i| v[i].square().mul(&v[i]));
    let uv3: [Fe; N] = core::array::from_fn(|i| u[i].mul(&v3[i]));
    let uv7: [Fe; N] = core::array::from_fn(|i| uv3[i].mul(&v3[i].mul(&v[i])));
    let pow = pow_p58(&uv7);
    core::array::from_fn(|i| {
        let r = uv3[i].mul(&pow[i]);
        let check = v[i].mul(&r.square());
        let correct = check.equals(&u[i]);
        let flipped = check.add(&u[i]).is_zero();
        let r = r.select(flipped, &r.mul(&Fe::splat(SQRT_M1)));
        let r = r.select(r.is_odd(), &r.neg());
        let x = r.select(sign[i], &r.neg());
        let point = Point {
            x,
            y: y[i],
            z: one,
            t: x.mul(&y[i]),
        };
        (point, correct | flipped)
    })
}

/// The multiples 1P, 2P, ..., 8P of eight points, ready to be added.
#[target_feature(enable = "avx512f,avx512ifma")]
pub fn multiples(p: &Point) -> [Niels; 8] {
    let p1 = p.niels();
    let p2 = p.double();
    let p3 = p2.add(&p1.into());
    let p4 = p2.double();
    let p5 = p4.add(&p1.into());
    let p6 = p3.double();
    let p7 = p6.add(&p1.into());
    let p8 = p4.double();
    [
        p1,
        p2.niels(),
        p3.niels(),
        p4.niels(),
        p5.niels(),
        p6.niels(),
        p7.niels(),
        p8.niels(),
    ]
}

/// The base point B of RFC 8032, encoded.
pub const BASEPOINT: [u8; 32] = {
    let mut b = [0x66u8; 32];
    b[0] = 0x58;
    b
};

/// The field constants, for the tests that check them.
#[cfg(test)]
pub const CONSTANTS: [[u64; 5]; 3] = [D, D2, SQRT_M1];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ed25519::differential::{non_canonical_encodings, small_order_encodings};
    use crate::ed25519::ifma::field::limbs_of;
    use crate::ed25519::ifma::tests::{ifma_available, reference, Rng};
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;

    fn fe(limbs: [u64; 5]) -> reference::U {
        reference::from_limbs(limbs)
    }

    #[test]
    fn constants_are_what_they_claim() {
        let [d, d2, i] = CONSTANTS.map(fe);
        let small = |v: u64| reference::from_limbs([v, 0, 0, 0, 0]);
        // d * 121666 = -121665
        let lhs = reference::add(&reference::mul(&d, &small(121666)), &small(121665));
        assert_eq!(lhs, reference::ZERO);
        assert_eq!(reference::add(&d, &d), d2);
        assert_eq!(
            reference::add(&reference::mul(&i, &i), &small(1)),
            reference::ZERO
        );
        let b = fe(limbs_of(BASEPOINT));
        assert_eq!(reference::to_bytes(&b), BASEPOINT);
    }

    /// Encodings of every sort: points (full, small and mixed order),
    /// non-canonical ones, and random bytes (about half of which decode).
    fn encodings(rng: &mut Rng) -> Vec<[u8; 32]> {
        let mut out = small_order_encodings();
        out.extend(non_canonical_encodings());
        for i in 0..200u64 {
            let p = EdwardsPoint::mul_base(&Scalar::from(i * 7919 + 1));
            let t = curve25519_dalek::constants::EIGHT_TORSION[(i % 8) as usize];
            out.push(p.compress().to_bytes());
            out.push((p + t).compress().to_bytes());
            out.push(rng.bytes());
        }
        out
    }

    #[test]
    fn decoding_agrees_with_dalek_on_every_sort_of_encoding() {
        if !ifma_available() {
            return;
        }
        let mut rng = Rng(3);
        let all = encodings(&mut rng);
        let mut decoded = 0;
        for chunk in all.chunks(16) {
            let mut vectors = [[[0u8; 32]; 8]; 2];
            for (q, e) in chunk.iter().enumerate() {
                vectors[q / 8][q % 8] = *e;
            }
            // SAFETY: the CPU has AVX-512F and IFMA (checked above).
            let points = unsafe { decompress(&vectors) };
            for (q, e) in chunk.iter().enumerate() {
                let (point, mask) = &points[q / 8];
                let lane = q % 8;
                let dalek = CompressedEdwardsY(*e).decompress();
                assert_eq!(mask >> lane & 1 == 1, dalek.is_some(), "{e:02x?}");
                let Some(dalek) = dalek else { continue };
                decoded += 1;
                // The same affine point: Z = 1, so x and y compare directly;
                // dalek's compression of its point gives its (reduced) y and
                // the parity of its x.
                let bytes = dalek.compress().to_bytes();
                // SAFETY: as above.
                let (x, y, t) = unsafe {
                    (
                        point.x.lane_bytes(lane),
                        point.y.lane_bytes(lane),
                        point.t.lane_bytes(lane),
                    )
                };
                let mut y_want = bytes;
                y_want[31] &= 0x7f;
                assert_eq!(y, y_want);
                assert_eq!(x[0] & 1, bytes[31] >> 7, "x parity of {e:02x?}");
                let x_ref = reference::from_bytes(&x);
                let y_ref = reference::from_bytes(&y);
                // On the curve: -x^2 + y^2 = 1 + d x^2 y^2, and t = xy.
                let xx = reference::mul(&x_ref, &x_ref);
                let yy = reference::mul(&y_ref, &y_ref);
                let lhs = reference::sub(&yy, &xx);
                let d = fe(CONSTANTS[0]);
                let one = reference::from_limbs([1, 0, 0, 0, 0]);
                let rhs = reference::add(&one, &reference::mul(&d, &reference::mul(&xx, &yy)));
                assert_eq!(lhs, rhs);
                assert_eq!(reference::from_bytes(&t), reference::mul(&x_ref, &y_ref));
            }
        }
        assert!(decoded > 400);
    }

    #[test]
    fn multiples_agree_with_dalek() {
        if !ifma_available() {
            return;
        }
        let mut rng = Rng(4);
        let points: Vec<EdwardsPoint> = (0..8u64)
            .map(|i| {
                let p = EdwardsPoint::mul_base(&Scalar::from(rng.next()));
                p + curve25519_dalek::constants::EIGHT_TORSION[i as usize]
            })
            .collect();
        let vectors = [core::array::from_fn(|j| points[j].compress().to_bytes())];
        // SAFETY: the CPU has AVX-512F and IFMA (checked above).
        let table = unsafe {
            let [(p, mask)] = decompress(&vectors);
            assert_eq!(mask, 0xff);
            multiples(&p)
        };
        for (k, niels) in table.iter().enumerate() {
            for (lane, point) in points.iter().enumerate() {
                let want = point * Scalar::from(k as u64 + 1);
                let wanted = want.compress().to_bytes();
                // Affine y = (Y+X + Y-X) / (2Z) and x = (Y+X - (Y-X)) / (2Z):
                // compare y * 2Z with 2Y and x * 2Z with 2X.
                // SAFETY: as above.
                let [ypx, ymx, z2, t2d] = unsafe {
                    [niels.y_plus_x, niels.y_minus_x, niels.z2, niels.t2d]
                        .map(|f| reference::from_bytes(&f.lane_bytes(lane)))
                };
                // Affine x = (Y+X - (Y-X)) / 2Z and y = (Y+X + Y-X) / 2Z,
                // encoded, must be dalek's encoding of k P.
                let inv = reference::invert(&z2);
                let x = reference::mul(&reference::sub(&ypx, &ymx), &inv);
                let y = reference::mul(&reference::add(&ypx, &ymx), &inv);
                let mut encoded = reference::to_bytes(&y);
                encoded[31] |= (reference::to_bytes(&x)[0] & 1) << 7;
                assert_eq!(encoded, wanted, "k={}", k + 1);
                // 2dT / 2Z = d xy.
                let d = fe(CONSTANTS[0]);
                let dxy = reference::mul(&d, &reference::mul(&x, &y));
                assert_eq!(reference::mul(&t2d, &inv), dxy, "k={}", k + 1);
            }
        }
    }
}
