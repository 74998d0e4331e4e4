//! Key material in bulk: public keys from seeds, and the deterministic seeds
//! of a devnet, on all cores.

use curve25519_dalek::edwards::EdwardsPoint;
use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};

use super::accounts::{Key, KEY_SIZE};

/// The domain tag of devnet key seeds.
pub const DEVNET_KEY_TAG: &[u8] = b"echorand/devnet-key";

/// Seeds per parallel work item.
const CHUNK: usize = 1024;

/// Points compressed together with one field inversion (Montgomery's trick).
const BATCH: usize = 64;

/// The Ed25519 public key of each 32-byte seed in `seeds` (RFC 8032 §5.1.5:
/// the clamped low half of SHA-512(seed) times the base point), on all
/// cores. The points are compressed `BATCH` at a time, sharing one
/// inversion.
pub fn derive_public_keys(seeds: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; seeds.len() / KEY_SIZE * KEY_SIZE];
    out.par_chunks_mut(KEY_SIZE * CHUNK)
        .zip(seeds.par_chunks(KEY_SIZE * CHUNK))
        .for_each(|(dst, src)| {
            for (d, s) in dst
                .chunks_mut(KEY_SIZE * BATCH)
                .zip(src.chunks(KEY_SIZE * BATCH))
            {
                derive_batch(s, d);
            }
        });
    out
}

/// Up to `BATCH` public keys of `seeds` into `out`.
fn derive_batch(seeds: &[u8], out: &mut [u8]) {
    let mut points = [EdwardsPoint::default(); BATCH];
    for (p, s) in points.iter_mut().zip(seeds.chunks_exact(KEY_SIZE)) {
        let h = Sha512::digest(s);
        if let Some(low) = h.first_chunk::<32>() {
            *p = EdwardsPoint::mul_base_clamped(*low);
        }
    }
    let compressed = EdwardsPoint::compress_batch(&points);
    for (d, c) in out.chunks_exact_mut(KEY_SIZE).zip(&compressed) {
        d.copy_from_slice(c.as_bytes());
    }
}

/// `H("echorand/devnet-key" || 0x00 || master || u64be(i))` for
/// `i in first .. first + count`, concatenated.
pub fn devnet_seeds(master: &Key, first: u64, count: usize) -> Vec<u8> {
    let mut prefix = Sha256::new();
    prefix.update(DEVNET_KEY_TAG);
    prefix.update([0u8]);
    prefix.update(master);
    let mut out = vec![0u8; count * KEY_SIZE];
    out.par_chunks_mut(KEY_SIZE * CHUNK)
        .enumerate()
        .for_each(|(c, dst)| {
            let start = first.wrapping_add((c * CHUNK) as u64);
            for (j, d) in dst.chunks_exact_mut(KEY_SIZE).enumerate() {
                let mut h = prefix.clone();
                h.update(start.wrapping_add(j as u64).to_be_bytes());
                d.copy_from_slice(&h.finalize());
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1_public_key() {
        // RFC 8032 §7.1, TEST 1.
        let seed = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let pk = hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(derive_public_keys(&seed), pk.to_vec());
    }

    #[test]
    fn chunks_agree_with_one_by_one() {
        let seeds = devnet_seeds(&[7; 32], 0, 2 * CHUNK + 3);
        let all = derive_public_keys(&seeds);
        for (i, s) in seeds.chunks_exact(32).enumerate().step_by(7) {
            let sk = ed25519_zebra::SigningKey::try_from(s).unwrap();
            let pk: [u8; 32] = ed25519_zebra::VerificationKeyBytes::from(&sk).into();
            assert_eq!(pk.to_vec(), all[i * 32..i * 32 + 32].to_vec(), "seed {i}");
        }
        let tail = devnet_seeds(&[7; 32], 5, 3);
        assert_eq!(tail, seeds[5 * 32..8 * 32].to_vec());
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
