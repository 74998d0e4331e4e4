//! ECVRF-EDWARDS25519-SHA512-ELL2 (RFC 9381, suite `0x04`), pure Rust over
//! curve25519-dalek. The Python glue is in `vrf.rs`; the choices (suite,
//! decoding rule, what a batch shares) are explained there.
//!
//! Names follow the RFC: `x` the secret scalar, `Y` the public key, `H` the
//! input hashed to the curve, `Gamma = x*H`, `k` the nonce, `c` the 16-byte
//! challenge, `s = k + c*x mod q`, `pi = Gamma || c || s`, `beta` the output.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use curve25519_dalek::traits::VartimeMultiscalarMul;
use sha2::{Digest, Sha512};

/// `suite_string` of ECVRF-EDWARDS25519-SHA512-ELL2.
pub const SUITE: u8 = 0x04;
/// Bytes in a secret key (the Ed25519 seed), a public key and a point.
pub const KEY_SIZE: usize = 32;
/// `cLen`: bytes of the challenge.
pub const C_LEN: usize = 16;
/// Bytes in a proof: `Gamma (32) || c (16) || s (32)`.
pub const PROOF_SIZE: usize = KEY_SIZE + C_LEN + 32;
/// Bytes in an output `beta` (one SHA-512).
pub const OUTPUT_SIZE: usize = 64;
/// The hash-to-curve domain separation tag:
/// `"ECVRF_" || h2c_suite_ID_string || suite_string` (RFC 9381 §5.5).
/// Non-empty and shorter than 256 bytes, as `encode_to_curve` requires.
pub const DST: &[u8] = b"ECVRF_edwards25519_XMD:SHA-512_ELL2_NU_\x04";

/// Domain separators inside the suite's hashes (RFC 9381 §5.4.3, §5.2).
const CHALLENGE_FRONT: u8 = 0x02;
const PROOF_TO_HASH_FRONT: u8 = 0x03;
const BACK: u8 = 0x00;

pub type Proof = [u8; PROOF_SIZE];
pub type Output = [u8; OUTPUT_SIZE];

/// An Ed25519 seed expanded as RFC 8032 §5.1.5 says (RFC 9381 §5.1 step 1):
/// `h = SHA-512(seed)`, `x` the clamped low half, `prefix` the high half
/// (the nonce key), `Y = x*B`. The same expansion makes Ed25519 signatures.
#[derive(Clone)]
pub struct ExpandedKey {
    pub x: Scalar,
    pub prefix: [u8; 32],
    pub public: CompressedEdwardsY,
}

impl ExpandedKey {
    pub fn from_seed(seed: &[u8; KEY_SIZE]) -> Self {
        let h: [u8; 64] = Sha512::digest(seed).into();
        let mut low = [0u8; 32];
        let mut prefix = [0u8; 32];
        low.copy_from_slice(&h[..32]);
        prefix.copy_from_slice(&h[32..]);
        let public = EdwardsPoint::mul_base_clamped(low).compress();
        // The clamped integer is below 2^255; as a scalar it acts the same on
        // the prime-order points it multiplies here (B, and H, cofactor cleared).
        let x = Scalar::from_bytes_mod_order(clamp_integer(low));
        Self { x, prefix, public }
    }
}

/// `string_to_point` (RFC 8032 §5.1.3): the point of a canonical encoding.
///
/// `None` when the bytes are not a point, and for the non-canonical
/// encodings RFC 8032 rejects (`y >= p`, or `x = 0` with the sign bit set),
/// which curve25519-dalek would decode: re-encoding must give the input.
pub fn decode_point(bytes: &[u8; KEY_SIZE]) -> Option<EdwardsPoint> {
    let encoded = CompressedEdwardsY(*bytes);
    let point = encoded.decompress()?;
    (point.compress() == encoded).then_some(point)
}

/// `ECVRF_encode_to_curve` (RFC 9381 §5.4.1.2): RFC 9380's
/// `encode_to_curve` with edwards25519_XMD:SHA-512_ELL2_NU_ over
/// `PK_string || alpha_string`. Constant time in `alpha`; the result has
/// its cofactor cleared.
pub fn encode_to_curve(public: &[u8; KEY_SIZE], alpha: &[u8]) -> EdwardsPoint {
    EdwardsPoint::encode_to_curve::<Sha512>(&[public, alpha], &[DST])
}

/// `ECVRF_nonce_generation_RFC8032` (RFC 9381 §5.4.2.2):
/// `k = SHA-512(prefix || h_string) mod q`.
fn nonce(prefix: &[u8; 32], h_string: &[u8; 32]) -> Scalar {
    let k: [u8; 64] = Sha512::new()
        .chain_update(prefix)
        .chain_update(h_string)
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&k)
}

/// `ECVRF_challenge_generation` (RFC 9381 §5.4.3): the first `cLen` bytes of
/// `SHA-512(suite || 0x02 || Y || H || Gamma || U || V || 0x00)`.
fn challenge(points: [&[u8; 32]; 5]) -> [u8; C_LEN] {
    let mut hash = Sha512::new();
    hash.update([SUITE, CHALLENGE_FRONT]);
    for p in points {
        hash.update(p);
    }
    hash.update([BACK]);
    let digest: [u8; 64] = hash.finalize().into();
    let mut c = [0u8; C_LEN];
    c.copy_from_slice(&digest[..C_LEN]);
    c
}

/// The challenge bytes as a scalar: `string_to_int` is little-endian and
/// `c < 2^128 < q`.
fn challenge_scalar(c: &[u8; C_LEN]) -> Scalar {
    let mut wide = [0u8; 32];
    wide[..C_LEN].copy_from_slice(c);
    Scalar::from_bytes_mod_order(wide)
}

/// `beta = SHA-512(suite || 0x03 || point_to_string(8 * Gamma) || 0x00)`
/// from the encoding of `8 * Gamma` (RFC 9381 §5.2).
fn output_of(cleared_gamma: &[u8; 32]) -> Output {
    Sha512::new()
        .chain_update([SUITE, PROOF_TO_HASH_FRONT])
        .chain_update(cleared_gamma)
        .chain_update([BACK])
        .finalize()
        .into()
}

/// `ECVRF_prove` (RFC 9381 §5.1).
pub fn prove(key: &ExpandedKey, alpha: &[u8]) -> Proof {
    let h = encode_to_curve(key.public.as_bytes(), alpha);
    let h_string = h.compress().to_bytes();
    let gamma = h * key.x;
    let k = nonce(&key.prefix, &h_string);
    let u = EdwardsPoint::mul_base(&k);
    let v = h * k;
    let [gamma_c, u_c, v_c] = EdwardsPoint::compress_batch(&[gamma, u, v]);
    let c = challenge([
        key.public.as_bytes(),
        &h_string,
        gamma_c.as_bytes(),
        u_c.as_bytes(),
        v_c.as_bytes(),
    ]);
    let s = k + challenge_scalar(&c) * key.x;
    let mut pi = [0u8; PROOF_SIZE];
    pi[..32].copy_from_slice(gamma_c.as_bytes());
    pi[32..48].copy_from_slice(&c);
    pi[48..].copy_from_slice(s.as_bytes());
    pi
}

/// The output of `prove(key, alpha)` without making the proof: `Gamma` alone
/// (one hash to the curve, one scalar multiplication).
pub fn output(key: &ExpandedKey, alpha: &[u8]) -> Output {
    let h = encode_to_curve(key.public.as_bytes(), alpha);
    output_of((h * key.x).mul_by_cofactor().compress().as_bytes())
}

/// A proof split by `ECVRF_decode_proof` (RFC 9381 §5.4.4).
pub struct Decoded {
    gamma: EdwardsPoint,
    gamma_bytes: [u8; 32],
    c: [u8; C_LEN],
    s: Scalar,
}

/// `ECVRF_decode_proof`: `Gamma` a canonical point, `s < q`; `None` otherwise.
pub fn decode_proof(pi: &Proof) -> Option<Decoded> {
    let mut gamma_bytes = [0u8; 32];
    let mut c = [0u8; C_LEN];
    let mut s_bytes = [0u8; 32];
    gamma_bytes.copy_from_slice(&pi[..32]);
    c.copy_from_slice(&pi[32..48]);
    s_bytes.copy_from_slice(&pi[48..]);
    let gamma = decode_point(&gamma_bytes)?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    Some(Decoded {
        gamma,
        gamma_bytes,
        c,
        s,
    })
}

/// `ECVRF_proof_to_hash` (RFC 9381 §5.2): `None` when `pi` does not decode.
/// It does not verify the proof.
pub fn proof_to_hash(pi: &Proof) -> Option<Output> {
    let d = decode_proof(pi)?;
    Some(output_of(d.gamma.mul_by_cofactor().compress().as_bytes()))
}

/// A public key checked by `ECVRF_validate_key` (RFC 9381 §5.4.5): a
/// canonical encoding of a point that is not of small order.
pub struct PublicKey {
    point: EdwardsPoint,
    bytes: [u8; KEY_SIZE],
}

impl PublicKey {
    pub fn decode(bytes: &[u8; KEY_SIZE]) -> Option<Self> {
        let point = decode_point(bytes)?;
        (!point.is_small_order()).then_some(Self {
            point,
            bytes: *bytes,
        })
    }
}

/// The points a verification must compress, before the challenge is known:
/// `H`, `U = s*B - c*Y`, `V = s*H - c*Gamma`, and `8 * Gamma` for the output.
pub struct Pending {
    c: [u8; C_LEN],
    points: [EdwardsPoint; 4],
}

/// Steps 6 to 8 of `ECVRF_verify` (RFC 9381 §5.3): the curve arithmetic of
/// one verification, up to the points whose encodings the challenge hashes.
pub fn verify_points(key: &PublicKey, alpha: &[u8], d: &Decoded) -> Pending {
    let h = encode_to_curve(&key.bytes, alpha);
    let minus_c = -challenge_scalar(&d.c);
    let u = EdwardsPoint::vartime_double_scalar_mul_basepoint(&minus_c, &key.point, &d.s);
    let v = EdwardsPoint::vartime_multiscalar_mul([d.s, minus_c], [h, d.gamma]);
    Pending {
        c: d.c,
        points: [h, u, v, d.gamma.mul_by_cofactor()],
    }
}

/// Steps 9 to 11 of `ECVRF_verify`, from the compressed `H`, `U`, `V` and
/// `8 * Gamma` of `pending`: the output when the challenge matches.
pub fn finish(
    key: &PublicKey,
    d: &Decoded,
    pending: &Pending,
    compressed: &[CompressedEdwardsY],
) -> Option<Output> {
    let [h, u, v, cleared] = compressed else {
        return None;
    };
    let c = challenge([
        &key.bytes,
        h.as_bytes(),
        &d.gamma_bytes,
        u.as_bytes(),
        v.as_bytes(),
    ]);
    // c is public: comparing it in variable time leaks nothing.
    (c == pending.c).then(|| output_of(cleared.as_bytes()))
}

/// `ECVRF_verify` (RFC 9381 §5.3) with `validate_key`: the output, or
/// `None` for an invalid key or proof.
pub fn verify(public: &[u8; KEY_SIZE], alpha: &[u8], pi: &Proof) -> Option<Output> {
    let key = PublicKey::decode(public)?;
    let d = decode_proof(pi)?;
    let pending = verify_points(&key, alpha, &d);
    let compressed = EdwardsPoint::compress_batch(&pending.points);
    finish(&key, &d, &pending, &compressed)
}

/// One verification of a batch: its inputs, borrowed.
pub struct Item<'a> {
    pub public: &'a [u8; KEY_SIZE],
    pub alpha: &'a [u8],
    pub proof: &'a Proof,
}

/// `verify` of each item, the point compressions of all items sharing one
/// field inversion (Montgomery's trick). Everything else is per proof: the
/// challenge hashes the encodings of `U` and `V`, so they must be computed,
/// one proof at a time, before anything can be checked.
pub fn verify_many(items: &[Item<'_>]) -> Vec<Option<Output>> {
    let mut work = Vec::with_capacity(items.len());
    let mut points = Vec::with_capacity(4 * items.len());
    for item in items {
        let ready = PublicKey::decode(item.public)
            .zip(decode_proof(item.proof))
            .map(|(key, d)| {
                let pending = verify_points(&key, item.alpha, &d);
                points.extend_from_slice(&pending.points);
                (key, d, pending)
            });
        work.push(ready);
    }
    let compressed = EdwardsPoint::compress_batch_alloc(&points);
    let mut at = 0;
    work.iter()
        .map(|ready| {
            ready.as_ref().and_then(|(key, d, pending)| {
                let mine = compressed.get(at..at + 4)?;
                at += 4;
                finish(key, d, pending, mine)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 9381 Appendix B.4, Example 19 (the others are in the Python tests).
    #[test]
    fn example_19() {
        let key = ExpandedKey::from_seed(&hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        let pk: [u8; 32] = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(key.public.to_bytes(), pk);
        let pi = prove(&key, b"");
        let want: Proof = hex(concat!(
            "7d9c633ffeee27349264cf5c667579fc583b4bda63ab71d001f89c10003ab46f",
            "14adf9a3cd8b8412d9038531e865c341",
            "cafa73589b023d14311c331a9ad15ff2fb37831e00f0acaa6d73bc9997b06501"
        ));
        assert_eq!(pi, want);
        let beta: Output = hex(concat!(
            "9d574bf9b8302ec0fc1e21c3ec5368269527b87b462ce36dab2d14ccf80c53cc",
            "cf6758f058c5b1c856b116388152bbe509ee3b9ecfe63d93c3b4346c1fbc6c54"
        ));
        assert_eq!(verify(&pk, b"", &pi), Some(beta));
        assert_eq!(proof_to_hash(&pi), Some(beta));
        assert_eq!(output(&key, b""), beta);
        assert_eq!(verify(&pk, b"x", &pi), None);
    }

    #[test]
    fn small_order_keys_and_non_canonical_points_are_refused() {
        let key = ExpandedKey::from_seed(&[7; 32]);
        let pi = prove(&key, b"a");
        for t in EIGHT_TORSION {
            assert_eq!(verify(&t.compress().to_bytes(), b"a", &pi), None);
        }
        // The identity spelt with y = p + 1 decodes in dalek, not here.
        let mut one_plus_p = [0xffu8; 32];
        one_plus_p[0] = 0xee;
        one_plus_p[31] = 0x7f;
        assert!(CompressedEdwardsY(one_plus_p).decompress().is_some());
        assert!(decode_point(&one_plus_p).is_none());
    }

    #[test]
    fn verify_many_agrees_with_verify() {
        let keys: Vec<ExpandedKey> = (0..9u8).map(|i| ExpandedKey::from_seed(&[i; 32])).collect();
        let alphas: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; i as usize]).collect();
        let mut proofs: Vec<Proof> = keys.iter().zip(&alphas).map(|(k, a)| prove(k, a)).collect();
        proofs[3][40] ^= 1; // c
        proofs[5][0] ^= 1; // Gamma
        proofs[7][63] ^= 0x80; // s >= q
        let publics: Vec<[u8; 32]> = keys.iter().map(|k| k.public.to_bytes()).collect();
        let items: Vec<Item<'_>> = (0..9)
            .map(|i| Item {
                public: &publics[i],
                alpha: &alphas[i],
                proof: &proofs[i],
            })
            .collect();
        let many = verify_many(&items);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(
                many[i],
                verify(item.public, item.alpha, item.proof),
                "item {i}"
            );
            assert_eq!(many[i].is_some(), ![3, 5, 7].contains(&i), "item {i}");
        }
    }
}
