"""Committee security: how likely the adversary is to control a committee (PROTOCOL §5).

A committee of `N_c` seats is drawn by stake; with an adversary of stake fraction `f`, the
number of its seats in one step is (as the seats are independent draws) `Bin(N_c, f)`.
Two events break a step, for each threshold `t` (`t_h` for certificates, `t_f` for final
votes):

- **alone**: the adversary holds more than `t` seats and passes the threshold with no
  honest vote: `P[Bin(N_c, f) > t]`;
- **equivocating**: the adversary votes for two values, and the honest seats split
  between them: two quorums of `t + 1` need `2(t + 1) <= (N_c - A) + 2A`, that is
  `A > 2t - N_c`: `P[Bin(N_c, f) > 2t - N_c]`.

Both are computed exactly, in integers (`f = a/d`: the tail is a sum of
`C(N_c, k) a^k (d - a)^(N_c - k)` over `d^N_c`), with no floating point that could
underflow. A genesis is refused when any of the four exceeds `2^-80`, unless it says
`insecure_committee` (devnets and tests): Algorand's committee-size argument, whose
figures this reproduces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from echorand.protocol.params import Params

SECURITY_BITS = 80
"""A genesis is secure when every failure probability is at most 2^-SECURITY_BITS."""
BOUND = Fraction(1, 1 << SECURITY_BITS)


def binomial_tail(n: int, f: Fraction, t: int) -> Fraction:
    """`P[Bin(n, f) > t]`, exactly. `t < 0` gives 1, `t >= n` gives 0."""
    if n < 0 or not 0 <= f <= 1:
        raise ValueError(f"need n >= 0 and f in [0, 1], got n={n}, f={f}")
    if t < 0:
        return Fraction(1)
    if t >= n or f == 0:
        return Fraction(0)
    a, d = f.numerator, f.denominator
    b = d - a
    if b == 0:
        return Fraction(1)
    # term_k = C(n, k) a^k b^(n-k); term_{k+1} = term_k (n - k) a / ((k + 1) b), exactly.
    k = t + 1
    term = math.comb(n, k) * a**k * b ** (n - k)
    total = 0
    while True:
        total += term
        if k == n:
            break
        term = term * (n - k) * a // ((k + 1) * b)
        k += 1
    return Fraction(total, d**n)


def log2(p: Fraction) -> float:
    """log2 of a positive fraction without converting it to a float (no underflow)."""
    if p <= 0:
        return -math.inf
    num, den = p.numerator, p.denominator
    shift = num.bit_length() - den.bit_length()
    scaled = Fraction(num, den) / Fraction(2) ** shift
    return shift + math.log2(scaled)


def scientific(p: Fraction) -> str:
    """`p` as `m.me-x` (3 significant digits), even below the float range."""
    if p == 0:
        return "0"
    exponent = math.floor(log2(p) * math.log10(2))
    mantissa = p / Fraction(10) ** exponent
    while mantissa >= 10:
        mantissa /= 10
        exponent += 1
    while mantissa < 1:
        mantissa *= 10
        exponent -= 1
    return f"{float(mantissa):.2f}e{exponent:+03d}"


@dataclass(frozen=True, slots=True)
class Threshold:
    """The two failure probabilities of one threshold."""

    name: str
    """`t_h` or `t_f`."""
    t: int
    alone: Fraction
    """P[Bin(N_c, f) > t]: the adversary passes the threshold by itself."""
    equivocating: Fraction
    """P[Bin(N_c, f) > 2t - N_c]: by voting twice it completes two quorums in one step."""

    @property
    def secure(self) -> bool:
        return self.alone <= BOUND and self.equivocating <= BOUND

    def to_json(self) -> dict[str, object]:
        return {
            "t": self.t,
            "alone": scientific(self.alone),
            "equivocating": scientific(self.equivocating),
            "log2_alone": round(log2(self.alone), 1),
            "log2_equivocating": round(log2(self.equivocating), 1),
        }


@dataclass(frozen=True, slots=True)
class CommitteeSecurity:
    """The committee analysis of a genesis's parameters."""

    n_c: int
    f: Fraction
    thresholds: tuple[Threshold, Threshold]
    """For t_h (certificates) and t_f (final votes)."""

    @property
    def secure(self) -> bool:
        """Whether every probability is at most 2^-80."""
        return all(t.secure for t in self.thresholds)

    def problems(self) -> list[str]:
        """What exceeds 2^-80, in words."""
        out = []
        for t in self.thresholds:
            for event, p in (("alone", t.alone), ("equivocating", t.equivocating)):
                if p > BOUND:
                    out.append(
                        f"{t.name} = {t.t}: the adversary ({self.f} of the stake) passes it"
                        f" {event} with probability {scientific(p)} (2^{log2(p):.1f}),"
                        f" above 2^-{SECURITY_BITS}"
                    )
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "n_c": self.n_c,
            "f": str(self.f),
            "bound": f"2^-{SECURITY_BITS}",
            "secure": self.secure,
            **{t.name: t.to_json() for t in self.thresholds},
        }


def threshold(name: str, n: int, f: Fraction, t: int) -> Threshold:
    return Threshold(name, t, binomial_tail(n, f, t), binomial_tail(n, f, 2 * t - n))


def analyse(params: Params) -> CommitteeSecurity:
    """The committee security of `params` (N_c, f, t_h, t_f)."""
    n, f = params.n_c, params.f
    return CommitteeSecurity(
        n, f, (threshold("t_h", n, f, params.t_h), threshold("t_f", n, f, params.t_f))
    )
