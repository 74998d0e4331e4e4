"""A slow, plain-integer model of ECVRF-EDWARDS25519-SHA512-ELL2 (RFC 9381), for cross-checks.

Written from the definitions, not from the native code: RFC 9380's
expand_message_xmd (SHA-512), hash_to_field and the straight-line
Elligator 2 map to curve25519 (§6.7.1) followed by the rational map to
edwards25519 (Appendix D.1), then RFC 9381's prove (§5.1), proof_to_hash
(§5.2) and verify (§5.3) with validate_key and RFC 8032's strict decoding.
Point arithmetic comes from `_ed25519_model`. Thousands of times slower
than the native code; it exists so that the tests' expectations do not
come from the code under test.
"""

from __future__ import annotations

import hashlib

from _ed25519_model import BASE, IDENTITY, L, P, Point, add, decode, encode, equal, mul

SUITE = b"\x04"
DST = b"ECVRF_edwards25519_XMD:SHA-512_ELL2_NU_" + SUITE
C_LEN = 16
J = 486662  # curve25519: v^2 = u^3 + J u^2 + u
Z = 2  # Elligator 2's non-square for curve25519 (RFC 9380 §8.5)


def _sqrt(a: int) -> int | None:
    """A square root of a mod p (p = 5 mod 8), or None."""
    r = pow(a, (P + 3) // 8, P)
    if r * r % P == a % P:
        return r
    r = r * pow(2, (P - 1) // 4, P) % P
    return r if r * r % P == a % P else None


def _sgn0(x: int) -> int:
    return x % P % 2


def _is_square(a: int) -> bool:
    return a % P == 0 or pow(a, (P - 1) // 2, P) == 1


# sqrt(-486664) with sgn0 = 0, the constant of the rational map (RFC 9380 App. D.1).
_S = _sqrt(-486664 % P)
assert _S is not None
SQRT_M486664 = _S if _sgn0(_S) == 0 else P - _S


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1 with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    ell = -(-length // 64)
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime)
    b0d = b0.digest()
    blocks = [hashlib.sha512(b0d + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0d, blocks[-1], strict=True))
        blocks.append(hashlib.sha512(mixed + bytes([i]) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_field(msg: bytes, dst: bytes) -> int:
    """One element of GF(p): L = 48 bytes, big-endian, reduced mod p (RFC 9380 §5.2)."""
    return int.from_bytes(expand_message_xmd(msg, dst, 48), "big") % P


def elligator2(u: int) -> tuple[int, int]:
    """map_to_curve_elligator2 on curve25519 (RFC 9380 §6.7.1, K = 1): a point (s, t)."""
    denominator = (1 + Z * u * u) % P
    x1 = -J * pow(denominator, P - 2, P) % P  # inv0(0) = 0
    if x1 == 0:
        x1 = -J % P
    gx1 = (x1**3 + J * x1 * x1 + x1) % P
    x2 = (-x1 - J) % P
    gx2 = (x2**3 + J * x2 * x2 + x2) % P
    if _is_square(gx1):
        x, y = x1, _sqrt(gx1)
        assert y is not None
        y = y if _sgn0(y) == 1 else P - y
    else:
        x, y = x2, _sqrt(gx2)
        assert y is not None
        y = y if _sgn0(y) == 0 else P - y
    return x, y


def to_edwards(s: int, t: int) -> Point:
    """The rational map curve25519 -> edwards25519 (RFC 9380 Appendix D.1)."""
    if t % P == 0 or (s + 1) % P == 0:
        return IDENTITY
    v = SQRT_M486664 * s * pow(t, P - 2, P) % P
    w = (s - 1) * pow(s + 1, P - 2, P) % P
    return (v, w, 1, v * w % P)


def encode_to_curve(public_key: bytes, alpha: bytes) -> Point:
    """ECVRF_encode_to_curve_h2c_suite (RFC 9381 §5.4.1.2): cofactor cleared."""
    u = hash_to_field(public_key + alpha, DST)
    return mul(8, to_edwards(*elligator2(u)))


def decode_strict(encoding: bytes) -> Point | None:
    """RFC 8032 §5.1.3: lenient decoding, then refuse any encoding that is not canonical."""
    point = decode(encoding)
    if point is None or encode(point) != encoding:
        return None
    return point


def expand(seed: bytes) -> tuple[int, bytes, bytes]:
    """RFC 8032 §5.1.5: (secret scalar x, nonce prefix, public key) of a 32-byte seed."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:], encode(mul(a, BASE))


def _neg(a: Point) -> Point:
    """-a: (x, y) -> (-x, y)."""
    x, y, z, t = a
    return (-x % P, y, z, -t % P)


def _challenge(*points: Point) -> bytes:
    data = SUITE + b"\x02" + b"".join(encode(p) for p in points) + b"\x00"
    return hashlib.sha512(data).digest()[:C_LEN]


def _output(gamma: Point) -> bytes:
    return hashlib.sha512(SUITE + b"\x03" + encode(mul(8, gamma)) + b"\x00").digest()


def prove(seed: bytes, alpha: bytes) -> bytes:
    """ECVRF_prove (RFC 9381 §5.1)."""
    x, prefix, public_key = expand(seed)
    h = encode_to_curve(public_key, alpha)
    gamma = mul(x, h)
    k = int.from_bytes(hashlib.sha512(prefix + encode(h)).digest(), "little") % L
    y = decode_strict(public_key)
    assert y is not None
    c = _challenge(y, h, gamma, mul(k, BASE), mul(k, h))
    s = (k + int.from_bytes(c, "little") * x) % L
    return encode(gamma) + c + s.to_bytes(32, "little")


def proof_to_hash(proof: bytes) -> bytes | None:
    """ECVRF_proof_to_hash (RFC 9381 §5.2): None when the proof does not decode."""
    gamma = decode_strict(proof[:32])
    if gamma is None or int.from_bytes(proof[48:], "little") >= L:
        return None
    return _output(gamma)


def verify(public_key: bytes, alpha: bytes, proof: bytes) -> bytes | None:
    """ECVRF_verify (RFC 9381 §5.3) with validate_key: the output, or None."""
    y = decode_strict(public_key)
    if y is None or equal(mul(8, y), IDENTITY) or len(proof) != 80:
        return None
    gamma = decode_strict(proof[:32])
    c = int.from_bytes(proof[32:48], "little")
    s = int.from_bytes(proof[48:], "little")
    if gamma is None or s >= L:
        return None
    h = encode_to_curve(public_key, alpha)
    u = add(mul(s, BASE), _neg(mul(c, y)))
    v = add(mul(s, h), _neg(mul(c, gamma)))
    if _challenge(y, h, gamma, u, v) != proof[32:48]:
        return None
    return _output(gamma)
