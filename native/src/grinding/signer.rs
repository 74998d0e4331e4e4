//! Ed25519 signatures whose nonce the signer picks: what a grinding leader
//! makes. RFC 8032 §5.1.6 derives the nonce `r = SHA-512(prefix || M)`, but
//! nothing in the verification equation can tell: any `r` gives a valid
//! signature `R = r*B`, `S = r + SHA-512(R || A || M) * a mod L`.
//!
//! Candidate `j` uses the nonce `r_0 + j`, `r_0` RFC 8032's: candidate 0 is
//! the standard signature, and each further one costs a point addition
//! (`R_j = R_{j-1} + B`), a share of a batched point compression and a
//! SHA-512. Only one of them is ever published, so the related nonces leak
//! nothing (two published signatures with nonces `r` and `r + j` would give
//! the key away).

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use crate::vrf::ExpandedKey;

/// Bytes in a signature: `R (32) || S (32)`.
pub const SIGNATURE_SIZE: usize = 64;

pub type Signature = [u8; SIGNATURE_SIZE];

/// RFC 8032's nonce of `message`: `SHA-512(prefix || M) mod L`.
pub fn standard_nonce(key: &ExpandedKey, message: &[u8]) -> Scalar {
    let r: [u8; 64] = Sha512::new()
        .chain_update(key.prefix)
        .chain_update(message)
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&r)
}

/// The signatures of `message` with the nonces `r0 + j`, `j` in
/// `first .. first + count`, in order.
pub fn candidates(
    key: &ExpandedKey,
    message: &[u8],
    r0: Scalar,
    first: u64,
    count: usize,
) -> Vec<Signature> {
    let mut nonce = r0 + Scalar::from(first);
    let mut point = EdwardsPoint::mul_base(&nonce);
    let mut points = Vec::with_capacity(count);
    let mut nonces = Vec::with_capacity(count);
    for _ in 0..count {
        points.push(point);
        nonces.push(nonce);
        point += ED25519_BASEPOINT_POINT;
        nonce += Scalar::ONE;
    }
    let encoded = EdwardsPoint::compress_batch_alloc(&points);
    encoded
        .iter()
        .zip(nonces)
        .map(|(r_point, r)| {
            let h: [u8; 64] = Sha512::new()
                .chain_update(r_point.as_bytes())
                .chain_update(key.public.as_bytes())
                .chain_update(message)
                .finalize()
                .into();
            let s = r + Scalar::from_bytes_mod_order_wide(&h) * key.x;
            let mut sig = [0u8; SIGNATURE_SIZE];
            sig[..32].copy_from_slice(r_point.as_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            sig
        })
        .collect()
}

/// The RFC 8032 signature of `message` (candidate 0).
pub fn sign(key: &ExpandedKey, message: &[u8]) -> Signature {
    let r0 = standard_nonce(key, message);
    let mut out = candidates(key, message, r0, 0, 1);
    out.pop().unwrap_or([0u8; SIGNATURE_SIZE])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_zebra::{Signature as ZebraSignature, SigningKey, VerificationKey};

    #[test]
    fn candidate_zero_is_the_rfc8032_signature_and_all_verify() {
        let seed = [42u8; 32];
        let key = ExpandedKey::from_seed(&seed);
        let message = b"echorand/seed\x00payload";
        let zebra = SigningKey::from(seed);
        let standard: [u8; 64] = zebra.sign(message).into();
        assert_eq!(sign(&key, message), standard);
        let r0 = standard_nonce(&key, message);
        let all = candidates(&key, message, r0, 0, 40);
        let tail = candidates(&key, message, r0, 25, 15);
        assert_eq!(all[25..], tail[..]);
        let vk = VerificationKey::from(&zebra);
        for (j, sig) in all.iter().enumerate() {
            assert!(
                vk.verify(&ZebraSignature::from(*sig), message).is_ok(),
                "{j}"
            );
        }
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 40);
    }
}
