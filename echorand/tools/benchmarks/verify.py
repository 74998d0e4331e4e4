"""Ed25519 verification: our ZIP 215 verifier against PyNaCl; the VRF against Ed25519 verify.

Rows: one signature (`crypto.verify`, then OpenSSL through `cryptography`,
then one signature through `crypto.verify_batch`, each against
`nacl.signing.VerifyKey.verify`), then batches (`crypto.verify_batch` on one
thread and on all cores against PyNaCl verifying the same signatures one by
one), then a batch with about 1% invalid signatures, which our verifier
narrows down to give each its answer. The ratio is PyNaCl's time over the
row's. With `differential=N`, a last row runs the lane verifier against
ed25519-zebra's single verification on N generated signatures (valid ones,
corruptions and the ZIP 215 edge cases) and reports any disagreement.

Then what the seed's VRF (`echorand.wire.vrf`, RFC 9381 ECVRF) costs beside
Ed25519: PyNaCl signing, VRF prove and verify per call, and `vrf.verify_batch`
on one thread and on all cores, each against our Ed25519 `verify` of one
signature measured in the same run (n of them for a batch of n). There the
ratio is below 1: `extra["ed25519_verifies"]`, its inverse, says how many
Ed25519 verifications one operation costs.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from echorand import _native
from echorand.tools.benchmarks import Report, Row, best_time
from echorand.wire import vrf
from echorand.wire.constants import CERT_TAG, SEED_TAG
from echorand.wire.crypto import Keypair, signing_payload, verify, verify_batch

TARGET_RATIOS = {64: 7.0, 1024: 9.0}
"""Per core (one thread): batch size -> the least ratio to PyNaCl."""


def _target(n: int) -> str:
    return f">= {TARGET_RATIOS[n]:g}x PyNaCl per core at batch {n}"


class Signatures:
    """n signatures by n distinct keys over messages of `message_size` bytes."""

    def __init__(self, n: int, message_size: int, seed: int) -> None:
        rng = random.Random(seed)
        keypairs = [Keypair.from_seed(rng.randbytes(32)) for _ in range(n)]
        self.messages = [
            signing_payload(CERT_TAG, rng.randbytes(max(0, message_size - len(CERT_TAG) - 1)))
            for _ in range(n)
        ]
        self.keypairs = keypairs
        self.public_keys = [k.public_key for k in keypairs]
        self.signatures = [k.sign(m) for k, m in zip(keypairs, self.messages, strict=True)]
        self.verify_keys = [VerifyKey(k) for k in self.public_keys]

    def corrupted(self, fraction: float, seed: int) -> tuple[list[bytes], int]:
        """The signatures with `fraction` of them (at least one) made invalid, and how many.

        A corrupted signature has one bit of its S flipped: well formed, and wrong.
        """
        rng = random.Random(seed)
        count = max(1, round(len(self.signatures) * fraction))
        out = list(self.signatures)
        for i in rng.sample(range(len(out)), count):
            out[i] = out[i][:32] + bytes([out[i][32] ^ 0x01]) + out[i][33:]
        return out, count


class Proofs:
    """n VRF proofs by the keys of `signatures` over seed-payload-sized alphas."""

    def __init__(self, signatures: Signatures, seed: int) -> None:
        rng = random.Random(seed)
        self.public_keys = signatures.public_keys
        self.alphas = [signing_payload(SEED_TAG, rng.randbytes(72)) for _ in signatures.public_keys]
        self.proofs = [
            vrf.prove(k.seed, a) for k, a in zip(signatures.keypairs, self.alphas, strict=True)
        ]


def pynacl_verify_all(
    keys: Sequence[VerifyKey], msgs: Sequence[bytes], sigs: Sequence[bytes]
) -> int:
    """PyNaCl verifying each signature alone; returns how many it accepted."""
    accepted = 0
    for key, msg, sig in zip(keys, msgs, sigs, strict=True):
        try:
            key.verify(msg, sig)
            accepted += 1
        except BadSignatureError:
            pass
    return accepted


def openssl_verifier(public_key: bytes) -> Callable[[bytes, bytes], bool] | None:
    """OpenSSL's Ed25519 verification through `cryptography` (None if it is not installed)."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return None
    key = Ed25519PublicKey.from_public_bytes(public_key)

    def check(message: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return check


def _threads_label(threads: int | None) -> str:
    if threads is None:
        return f"all cores ({os.cpu_count() or 1})"
    return "1 thread" if threads == 1 else f"{threads} threads"


def _check_same_answers(ours: list[bool], pynacl_accepted: int) -> None:
    """Both sides must do the same work: equal counts of accepted signatures."""
    if sum(ours) != pynacl_accepted:
        raise RuntimeError(
            f"verify_batch accepted {sum(ours)} signatures, PyNaCl {pynacl_accepted}: "
            "the comparison would be meaningless"
        )


def differential_row(cases: int, seed: int) -> Row:
    """The lane verifier against ed25519-zebra on `cases` generated signatures.

    Raises `RuntimeError` on a CPU without AVX-512 IFMA (the lanes are unused
    there) and when the two verifiers disagree on any case, naming the first.
    """
    start = time.perf_counter()
    tally = _native.verify_differential(cases, seed)
    seconds = time.perf_counter() - start
    wrong = tally["disagreements"]
    if wrong:
        first = wrong[0]
        raise RuntimeError(
            f"the lane verifier and ed25519-zebra disagree on {len(wrong)} case(s), "
            f"first a {first['kind']} case: zebra {first['zebra']}, lanes {first['lanes']}, "
            f"key {first['public_key'].hex()}, signature {first['signature'].hex()}, "
            f"message {first['message'].hex()}"
        )
    return Row(
        name=f"differential: {tally['cases']} cases vs ed25519-zebra single",
        seconds=seconds,
        items=tally["cases"],
        target="no disagreement",
        target_met=True,
        extra={
            "batches": tally["batches"],
            "accepted": tally["accepted"],
            "disagreements": 0,
            **{f"cases {kind}": n for kind, (n, _) in tally["by_kind"].items()},
        },
    )


def _single_rows(data: Signatures, timing: dict[str, float]) -> list[Row]:
    """One signature: ours, OpenSSL, and ours through verify_batch, each against PyNaCl."""
    key, msg, sig = data.public_keys[0], data.messages[0], data.signatures[0]
    pynacl = best_time(partial(data.verify_keys[0].verify, msg, sig), **timing)
    rows = [
        Row(
            name="verify, one signature",
            seconds=best_time(partial(verify, key, msg, sig), **timing),
            baseline="PyNaCl VerifyKey.verify",
            baseline_seconds=pynacl,
        )
    ]
    openssl = openssl_verifier(key)
    if openssl is not None:
        if not openssl(msg, sig):
            raise RuntimeError("OpenSSL rejects a valid signature: the comparison is meaningless")
        rows.append(
            Row(
                name="OpenSSL (cryptography), one signature",
                seconds=best_time(partial(openssl, msg, sig), **timing),
                baseline="PyNaCl VerifyKey.verify",
                baseline_seconds=pynacl,
            )
        )
    rows.append(
        Row(
            name="verify_batch 1, 1 thread",
            seconds=best_time(partial(verify_batch, [key], [msg], [sig], threads=1), **timing),
            baseline="PyNaCl VerifyKey.verify",
            baseline_seconds=pynacl,
        )
    )
    return rows


def run(
    batch_sizes: Sequence[int] = (64, 1024),
    threads: Sequence[int | None] = (1, None),
    message_size: int = 100,
    invalid_fraction: float = 0.01,
    differential: int = 0,
    repeat: int = 5,
    min_seconds: float = 0.05,
    seed: int = 1,
) -> Report:
    """Time single and batch verification against PyNaCl (see the module docstring).

    The target rows are the batches of `TARGET_RATIOS` on one thread: a node
    checks votes in batches of about 64, blocks' transactions in larger
    ones, and one thread is one core. `invalid_fraction` (0 to skip) sets
    the invalid share of the invalid row, at the largest batch size on all
    cores; `differential` (0 to skip) the cases of the differential row.
    """
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch_sizes must be positive, got {tuple(batch_sizes)}")
    if not 0 <= invalid_fraction <= 1:
        raise ValueError(f"invalid_fraction must be in [0, 1], got {invalid_fraction}")
    if differential < 0:
        raise ValueError(f"differential must be >= 0, got {differential}")
    timing = {"repeat": repeat, "min_seconds": min_seconds}
    data = Signatures(max(batch_sizes), message_size, seed)
    backend = _native.verify_backend()
    report = Report(title=f"Ed25519 verification (ZIP 215, batches: {backend}) vs PyNaCl")
    report.machine["verify_backend"] = backend
    for row in _single_rows(data, timing):
        report.add(row)

    for n in batch_sizes:
        batch = (data.public_keys[:n], data.messages[:n], data.signatures[:n])
        pynacl = partial(pynacl_verify_all, data.verify_keys[:n], batch[1], batch[2])
        baseline = best_time(pynacl, **timing)
        for t in threads:
            ours = partial(verify_batch, *batch, threads=t)
            _check_same_answers(ours(), pynacl())
            row = Row(
                name=f"verify_batch {n}, {_threads_label(t)}",
                seconds=best_time(ours, **timing),
                items=n,
                baseline=f"PyNaCl, {n} one by one",
                baseline_seconds=baseline,
            )
            if n in TARGET_RATIOS and t == 1 and row.ratio is not None:
                met = row.ratio >= TARGET_RATIOS[n]
                row = replace(row, target=_target(n), target_met=met)
            report.add(row)

    if invalid_fraction > 0:
        _add_invalid_row(report, data, invalid_fraction, seed, timing)
    _add_vrf_rows(report, data, batch_sizes, threads, seed, timing)
    if differential > 0:
        report.add(differential_row(differential, seed))
    return report


def _add_invalid_row(
    report: Report,
    data: Signatures,
    invalid_fraction: float,
    seed: int,
    timing: dict[str, Any],
) -> None:
    """The largest batch, all cores, about `invalid_fraction` of it invalid, against PyNaCl."""
    n = len(data.signatures)
    sigs, bad = data.corrupted(invalid_fraction, seed)
    ours = partial(verify_batch, data.public_keys, data.messages, sigs)
    pynacl = partial(pynacl_verify_all, data.verify_keys, data.messages, sigs)
    _check_same_answers(ours(), pynacl())
    report.add(
        Row(
            name=f"verify_batch {n}, {_threads_label(None)}, {bad} invalid",
            seconds=best_time(ours, **timing),
            items=n,
            baseline=f"PyNaCl, {n} one by one",
            baseline_seconds=best_time(pynacl, **timing),
            extra={"invalid": bad},
        )
    )


def _against_verify(name: str, seconds: float, verify_seconds: float, items: int = 1) -> Row:
    """A row timed against `items` Ed25519 verifications (ours, one signature each)."""
    baseline = "Ed25519 verify (ours)" + (f" x {items}" if items > 1 else "")
    return Row(
        name=name,
        seconds=seconds,
        items=items,
        baseline=baseline,
        baseline_seconds=verify_seconds * items,
        extra={"ed25519_verifies": seconds / (verify_seconds * items)},
    )


def _add_vrf_rows(
    report: Report,
    data: Signatures,
    batch_sizes: Sequence[int],
    threads: Sequence[int | None],
    seed: int,
    timing: dict[str, Any],
) -> None:
    """Ed25519 signing and the VRF, each as a multiple of one Ed25519 verification."""
    one = report.rows[0].seconds  # our `verify`, one signature, measured in this run
    key, msg = data.keypairs[0], data.messages[0]
    report.add(
        _against_verify("Ed25519 sign (PyNaCl)", best_time(partial(key.sign, msg), **timing), one)
    )
    proofs = Proofs(data, seed)
    pk, alpha, proof = proofs.public_keys[0], proofs.alphas[0], proofs.proofs[0]
    prove = best_time(partial(vrf.prove, key.seed, alpha), **timing)
    report.add(_against_verify("VRF prove", prove, one))
    report.add(
        _against_verify(
            "VRF verify", best_time(partial(vrf.verify, pk, alpha, proof), **timing), one
        )
    )
    for n in batch_sizes:
        batch = (proofs.public_keys[:n], proofs.alphas[:n], proofs.proofs[:n])
        for t in threads:
            call = partial(vrf.verify_batch, *batch, threads=t)
            if None in call():
                raise RuntimeError("a VRF proof of the benchmark does not verify")
            seconds = best_time(call, **timing)
            report.add(
                _against_verify(f"VRF verify_batch {n}, {_threads_label(t)}", seconds, one, n)
            )
