"""The Ed25519 vector files of tests/data/ed25519 and valid signatures to mix them with."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from echorand.wire.crypto import Keypair

DATA = Path(__file__).parent / "data" / "ed25519"


@dataclass(frozen=True, slots=True)
class Case:
    """One (key, message, signature) triple and what ZIP 215 says of it."""

    name: str
    public_key: bytes
    message: bytes
    signature: bytes
    expected: bool


def _load(name: str) -> object:
    with open(DATA / name, encoding="utf-8") as f:
        return json.load(f)


SPECCHECK_EXPECTED = "VVVVVVXXXVVV"
"""ZIP 215 on speccheck's cases.json, in file order (V accepted, X rejected)."""


@functools.cache
def speccheck() -> list[Case]:
    cases = _load("speccheck-cases.json")
    assert isinstance(cases, list) and len(cases) == len(SPECCHECK_EXPECTED)
    return [
        Case(
            f"speccheck-{i}",
            bytes.fromhex(c["pub_key"]),
            bytes.fromhex(c["message"]),
            bytes.fromhex(c["signature"]),
            SPECCHECK_EXPECTED[i] == "V",
        )
        for i, c in enumerate(cases)
    ]


WYCHEPROOF_ZIP215_DEVIATIONS = {151}
"""tcIds whose Wycheproof `result` ZIP 215 overturns: 151, an R encoding y = 1
with the sign bit of x set, which ZIP 215 decodes (x = 0) and accepts."""


@functools.cache
def wycheproof() -> list[Case]:
    """All Wycheproof tests, signatures of any length (some are truncated or padded)."""
    suite = _load("wycheproof-ed25519_test.json")
    assert isinstance(suite, dict)
    cases = []
    for group in suite["testGroups"]:
        key = bytes.fromhex(group["publicKey"]["pk"])
        for test in group["tests"]:
            valid = test["result"] == "valid"
            if test["tcId"] in WYCHEPROOF_ZIP215_DEVIATIONS:
                valid = not valid
            cases.append(
                Case(
                    f"wycheproof-{test['tcId']}",
                    key,
                    bytes.fromhex(test["msg"]),
                    bytes.fromhex(test["sig"]),
                    valid,
                )
            )
    assert len(cases) == suite["numberOfTests"] == 151
    return cases


CCTV_FLAGS = {
    "LowOrderA",
    "LowOrderR",
    "LowOrderComponentA",
    "LowOrderComponentR",
    "LowOrderResidue",
    "NonCanonicalA",
    "NonCanonicalR",
    "ReencodedK",
}


def cctv_zip215_expectation(flags: set[str]) -> bool:
    """What ZIP 215 says of a CCTV ed25519vectors case, from its flags.

    Every case is built to satisfy the cofactored equation
    [8][S]B = [8]R + [8][k]A with a canonical S < L, k hashed over the A and
    R bytes as given. The flags name the ways a verifier may still reject it:

    - LowOrderA / LowOrderR: a small-order point. ZIP 215 keeps no blocklist.
    - LowOrderComponentA / LowOrderComponentR: a torsion component. Allowed.
    - LowOrderResidue: only the cofactored equation holds. ZIP 215 uses it.
    - NonCanonicalA / NonCanonicalR: y >= p or x = -0. ZIP 215 decodes these.
    - ReencodedK (newer CCTV files only): k was hashed over the canonical
      re-encoding instead of the bytes sent, so ZIP 215's k differs: reject.

    So a case is accepted unless it is ReencodedK ("ZIP215 rules require
    accepting all vectors", CCTV's README). go-algorand's rule, by contrast,
    rejects LowOrderA, NonCanonicalA and NonCanonicalR.
    """
    unknown = flags - CCTV_FLAGS
    if unknown:
        raise ValueError(f"unknown CCTV flags {sorted(unknown)}: decide them before testing")
    return "ReencodedK" not in flags


@functools.cache
def cctv() -> list[Case]:
    vectors = _load("cctv-ed25519vectors.json")
    assert isinstance(vectors, list) and len(vectors) == 768
    return [
        Case(
            f"cctv-{i}-{'+'.join(v['Flags'] or ['none'])}",
            bytes.fromhex(v["A"]),
            v["M"].encode(),
            bytes.fromhex(v["R"] + v["S"]),
            cctv_zip215_expectation(set(v["Flags"] or [])),
        )
        for i, v in enumerate(vectors)
    ]


def well_formed(cases: list[Case]) -> list[Case]:
    """The cases with a 32-byte key and a 64-byte signature (others raise ValueError)."""
    return [c for c in cases if len(c.public_key) == 32 and len(c.signature) == 64]


@functools.cache
def valid_cases(n: int) -> tuple[Case, ...]:
    """n valid signatures by deterministic keys, over distinct messages."""
    out = []
    for i in range(n):
        keypair = Keypair.from_seed(i.to_bytes(32, "big"))
        message = b"echorand/test\x00" + i.to_bytes(4, "big") * (1 + i % 7)
        out.append(Case(f"valid-{i}", keypair.public_key, message, keypair.sign(message), True))
    return tuple(out)
