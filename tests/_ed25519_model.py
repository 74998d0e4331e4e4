"""A slow, plain-integer model of Ed25519 under ZIP 215, for cross-checking the native code.

Written from the definitions (RFC 8032 §5.1, ZIP 215): points in extended
coordinates over GF(p), the lenient decoding ZIP 215 asks for (y reduced
mod p, x = 0 allowed with either sign bit) and the cofactored verification
equation. Thousands of times slower than the native verifier; it exists so
that the tests' expectations do not come from the code under test.
"""

from __future__ import annotations

import hashlib
import itertools

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
IDENTITY: Point = (0, 1, 1, 0)


def add(a: Point, b: Point) -> Point:
    """a + b on -x^2 + y^2 = 1 + d x^2 y^2 (the complete formula of RFC 8032 §5.1.4)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    ea = (y1 - x1) * (y2 - x2) % P
    eb = (y1 + x1) * (y2 + x2) % P
    ec = t1 * 2 * D * t2 % P
    ed = z1 * 2 * z2 % P
    e, f, g, h = eb - ea, ed - ec, ed + ec, eb + ea
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(k: int, a: Point) -> Point:
    """[k]a by double-and-add."""
    out = IDENTITY
    while k > 0:
        if k & 1:
            out = add(out, a)
        a = add(a, a)
        k >>= 1
    return out


def equal(a: Point, b: Point) -> bool:
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    """The x with x^2 = (y^2 - 1) / (d y^2 + 1) and parity `sign`; x = 0 keeps sign 1 (ZIP 215)."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P != 0:
        x = x * SQRT_M1 % P
        if (v * x * x - u) % P != 0:
            return None
    if x & 1 != sign:
        x = (P - x) % P
    return x


def decode(encoding: bytes) -> Point | None:
    """The point of a 32-byte encoding, ZIP 215's lenient way; None when it is not on the curve."""
    n = int.from_bytes(encoding, "little")
    y = (n & ((1 << 255) - 1)) % P
    x = _recover_x(y, n >> 255)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def encode(a: Point) -> bytes:
    """The canonical encoding of a point."""
    x, y, z, _ = a
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def is_small_order(a: Point) -> bool:
    return equal(mul(8, a), IDENTITY)


def is_valid_account_key(encoding: bytes) -> bool:
    """A point, canonically encoded, not of small order (PROTOCOL §2)."""
    point = decode(encoding)
    return point is not None and encode(point) == encoding and not is_small_order(point)


BASE: Point = decode((4 * pow(5, -1, P) % P).to_bytes(32, "little")) or IDENTITY


def verify_zip215(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """[8][S]B = [8]R + [8][k]A with k = H(R || A || M) over the bytes as given, S < L."""
    a = decode(public_key)
    r = decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little")
    left = mul(8, mul(s, BASE))
    right = mul(8, add(r, mul(k % L, a)))
    return equal(left, right)


def small_order_points() -> list[bytes]:
    """The canonical encodings of the eight points of order dividing 8.

    [L]Q removes the prime-order part of a point Q and leaves its small-order
    part; those form a cyclic group of order 8, so the multiples of a
    small-order part of order 8 are all eight points.
    """
    for y in itertools.count(2):
        q = decode(y.to_bytes(32, "little"))
        if q is None:
            continue
        t = mul(L, q)
        points = {encode(mul(i, t)) for i in range(8)}
        if len(points) == 8:
            return sorted(points)
    raise AssertionError("unreachable")
