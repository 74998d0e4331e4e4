"""Delegation (docs/protocol.md §16): substitute votes counted per principal, at the end of
the step's interval, overridden by the principal's own vote; fallbacks; certificates; the
simulator with delegation under every Byzantine behaviour and across a restart."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from _helpers import assert_safe
from _sandbox import CHAIN, EMPTY_VALUE, PARAMS, Sandbox, key

from echorand.core.bba import Vote, build_certificate
from echorand.core.events import Send, TimerKind
from echorand.core.round import Round
from echorand.core.validate import CachingVerifier, NativeVerifier, verify_messages
from echorand.protocol.certificate import CertificateError, check_certificate
from echorand.protocol.committee import RoundContext
from echorand.protocol.delegation import (
    Mode,
    fallback_signer,
    sign_bba_substitute,
    sign_gc_substitute,
)
from echorand.protocol.params import Params
from echorand.protocol.signing import sign_proposal, sign_vote
from echorand.protocol.sortition import StakeTable
from echorand.sim.byzantine import BEHAVIOURS
from echorand.sim.simulation import SimConfig, Simulation, run
from echorand.wire.messages import (
    BbaSubstitute,
    Block,
    Certificate,
    DecodeError,
    GcSubstitute,
    decode,
)

N = 16
V = (b"\x07" * 32, 0)
SEED = hashlib.sha256(b"delegation seed").digest()
PREV = CHAIN
"""Round 1 follows the sandbox genesis, so that the sandbox's EMPTY_VALUE is this round's."""
TABLE = StakeTable([1_000] * N)
PUBLIC = [key(a).public_key for a in range(N)]
FALLBACK = Params(n_g=5, n_c=20, k=2, lam_ms=100, big_lam_ms=300, fallback=True)


def context(delegates: dict[int, int], params: Params = PARAMS, active=()) -> RoundContext:
    return RoundContext(
        params,
        1,
        SEED,
        PREV,
        TABLE,
        active=active,
        delegates=lambda a: delegates.get(a),
        chain=CHAIN,
    )


def principals(step: int, count: int, exclude: set[int] = frozenset()) -> list[int]:
    """Accounts with seats in A_step (a fixed context), by id."""
    ctx = context({})
    return [a for a in sorted(ctx.weights(step)) if a not in exclude][:count]


def outsiders(step: int) -> list[int]:
    ctx = context({})
    return [a for a in range(N) if ctx.weight(step, a) == 0]


def bba_sub(step: int, signer: int, principal: int, mode: int, b: int = 0, value=V):
    return sign_bba_substitute(key(signer), CHAIN, 1, step, signer, principal, mode, b, value)


def gc_sub(step: int, signer: int, principal: int, mode: int, value=V):
    return sign_gc_substitute(key(signer), CHAIN, 1, step, signer, principal, mode, value)


def observer(ctx: RoundContext, keys=None) -> Round:
    return Round(ctx, keys or {}, 0, lambda r: ())


# --- counting ---------------------------------------------------------------------


def test_a_delegated_vote_counts_exactly_once_and_only_after_the_interval() -> None:
    p, d = principals(4, 2)
    ctx = context({p: d})
    rnd = observer(ctx)
    w_p, w_d = ctx.weight(4, p), ctx.weight(4, d)
    sub = bba_sub(4, d, p, Mode.EXPLICIT)
    assert rnd.on_substitute(sub, 10)
    votes = rnd.step_votes(4)
    assert votes.tally.weight((0, V)) == 0  # held until the step's interval ends
    rnd.on_timer(4, TimerKind.DEADLINE, 500)
    assert votes.tally.weight((0, V)) == w_p
    assert not rnd.on_substitute(sub, 510)  # a repeat adds nothing
    assert not rnd.on_substitute(bba_sub(4, d, p, Mode.EXPLICIT, b=1, value=EMPTY_VALUE), 510)
    own_d = sign_vote(key(d), CHAIN, 1, 4, d, 0, V)
    assert rnd.on_bba_signature(own_d, 520)  # the delegate's own seats are its own
    assert votes.tally.weight((0, V)) == w_p + w_d
    assert votes.substitutes_for(Vote(0, V)) == [(p, d, Mode.EXPLICIT, sub.cert_sig)]
    assert votes.votes_for(Vote(0, V)) == [(d, own_d.cert_sig)]


def test_after_the_interval_a_substitute_counts_on_arrival() -> None:
    p, d = principals(3, 2)
    ctx = context({p: d})
    rnd = observer(ctx)
    rnd.on_timer(3, TimerKind.DEADLINE, 400)
    assert rnd.on_substitute(gc_sub(3, d, p, Mode.EXPLICIT), 410)
    assert rnd.gc.step3.weight(V) == ctx.weight(3, p)


def test_the_original_overrides_its_delegate() -> None:
    p, d = principals(4, 2)
    ctx = context({p: d})
    rnd = observer(ctx)
    rnd.on_substitute(bba_sub(4, d, p, Mode.EXPLICIT), 10)
    rnd.on_timer(4, TimerKind.DEADLINE, 500)
    votes = rnd.step_votes(4)
    own = sign_vote(key(p), CHAIN, 1, 4, p, 1, EMPTY_VALUE)
    assert rnd.on_bba_signature(own, 600)
    assert votes.tally.weight((0, V)) == 0
    assert votes.tally.weight((1, EMPTY_VALUE)) == ctx.weight(4, p)
    assert votes.votes_for(Vote(1, EMPTY_VALUE)) == [(p, own.cert_sig)]
    assert votes.substitutes_for(Vote(0, V)) == []
    assert not rnd.on_bba_signature(sign_vote(key(p), CHAIN, 1, 4, p, 0, V), 610)  # equivocation
    assert not rnd.on_substitute(bba_sub(4, d, p, Mode.EXPLICIT, b=1, value=EMPTY_VALUE), 620)


def test_an_original_heard_first_leaves_no_room_for_substitutes() -> None:
    p, d = principals(2, 2)
    rnd = observer(context({p: d}))
    assert rnd.on_gc_proposal(sign_proposal(key(p), CHAIN, 1, 2, p, EMPTY_VALUE), 10)
    assert not rnd.on_substitute(gc_sub(2, d, p, Mode.EXPLICIT), 20)
    rnd.on_timer(2, TimerKind.DEADLINE, 400)
    assert rnd.gc.step2.weight(V) == 0


def test_explicit_beats_fallback_and_the_original_beats_both() -> None:
    p = principals(4, 1)[0]
    active = tuple(outsiders(4)[:3])
    ctx = context({p: active[0]}, FALLBACK, active)
    c = ctx.fallback(4, p)
    assert c is not None and c in active
    d = next(a for a in range(N) if a not in (p, c) and ctx.weight(4, a) == 0)
    ctx = context({p: d}, FALLBACK, active)
    rnd = observer(ctx)
    votes = rnd.step_votes(4)
    w = ctx.weight(4, p)
    rnd.on_timer(4, TimerKind.DEADLINE, 500)
    assert rnd.on_substitute(bba_sub(4, c, p, Mode.FALLBACK, b=1, value=EMPTY_VALUE), 510)
    assert votes.tally.weight((1, EMPTY_VALUE)) == w
    assert rnd.on_substitute(bba_sub(4, d, p, Mode.EXPLICIT), 520)
    assert (votes.tally.weight((1, EMPTY_VALUE)), votes.tally.weight((0, V))) == (0, w)
    assert not rnd.on_substitute(bba_sub(4, c, p, Mode.FALLBACK, b=1, value=EMPTY_VALUE), 530)
    assert rnd.on_bba_signature(sign_vote(key(p), CHAIN, 1, 4, p, 1, EMPTY_VALUE), 540)
    assert (votes.tally.weight((1, EMPTY_VALUE)), votes.tally.weight((0, V))) == (w, 0)
    assert votes.substitutes == {}


def test_fallback_signer_is_the_whitepapers_c_n() -> None:
    active = (3, 8, 9, 12)
    # C_n = ceil(n K / N_c), n 1-based: seats 1..5 -> member 1, 6..10 -> 2, ...
    assert [fallback_signer(active, s, 20) for s in (0, 4, 5, 9, 10, 19)] == [3, 3, 8, 8, 9, 12]
    assert fallback_signer((), 0, 20) is None


def test_fallback_never_applies_to_producers() -> None:
    active = tuple(range(N))
    ctx = context({}, FALLBACK, active)
    producer = ctx.producer_seats()[0]
    assert ctx.fallback(1, producer) is None
    assert not ctx.may_substitute(1, producer, (producer + 1) % N, Mode.FALLBACK)
    assert not ctx.may_substitute(1, producer, (producer + 1) % N, Mode.EXPLICIT)
    verifier = CachingVerifier(NativeVerifier())
    sub = gc_sub(1, (producer + 1) % N, producer, Mode.FALLBACK)
    [verdict] = verify_messages([sub], ctx, PUBLIC.__getitem__, verifier, 20)
    assert verdict.reason == "wrong step"


def test_fallback_is_off_unless_the_genesis_turns_it_on() -> None:
    p = principals(4, 1)[0]
    ctx = context({}, PARAMS, ())
    assert ctx.fallback(4, p) is None


def test_only_the_named_signer_may_substitute_and_the_signature_covers_the_principal() -> None:
    p, q, d = principals(4, 3)
    ctx = context({p: d, q: d})
    verifier = CachingVerifier(NativeVerifier())
    good = bba_sub(4, d, p, Mode.EXPLICIT)
    stranger = next(a for a in range(N) if a not in (p, q, d))
    wrong_signer = bba_sub(4, stranger, p, Mode.EXPLICIT)
    fields = (1, 4, d, q, Mode.EXPLICIT, 0, V[0], V[1], good.cert_sig, good.signature)
    rewrapped = BbaSubstitute(*fields)  # d's vote for p presented as one for q
    verdicts = verify_messages(
        [good, wrong_signer, rewrapped], ctx, PUBLIC.__getitem__, verifier, 20
    )
    assert [v.reason for v in verdicts] == [None, "not a substitute", "bad signature"]


def test_substitute_encoding_round_trips_and_rejects_bad_input() -> None:
    p, d = principals(4, 2)
    for msg in (bba_sub(4, d, p, Mode.EXPLICIT), gc_sub(2, d, p, Mode.FALLBACK)):
        data = msg.encode()
        assert data[0] == (0x06 if isinstance(msg, BbaSubstitute) else 0x05)
        assert decode(data) == msg
        with pytest.raises(DecodeError):
            decode(data + b"\x00")
    bad_mode = bytearray(gc_sub(2, d, p, Mode.EXPLICIT).encode())
    bad_mode[29] = 3
    with pytest.raises(DecodeError, match="mode"):
        decode(bytes(bad_mode))
    with pytest.raises(ValueError, match="principal"):
        GcSubstitute(1, 2, d, d, Mode.EXPLICIT, V[0], V[1], bytes(64))


# --- a node acting as delegate ---------------------------------------------------------


def test_a_delegate_node_speaks_for_a_silent_principal_at_the_end_of_the_interval() -> None:
    p, d = principals(2, 2)
    ctx = context({p: d})
    rnd = Round(ctx, {d: key(d)}, 0, lambda r: ())
    rnd.start()
    rnd.drain()
    rnd.on_timer(2, TimerKind.LEADER, 200)
    rnd.on_timer(2, TimerKind.DEADLINE, 400)
    value = rnd.values[2]
    sent = [a.message for a in rnd.drain() if isinstance(a, Send)]
    assert sent == [
        sign_proposal(key(d), CHAIN, 1, 2, d, value),
        gc_sub(2, d, p, Mode.EXPLICIT, value),
    ]
    assert rnd.gc.step2.weight(value) == ctx.weight(2, p) + ctx.weight(2, d)


def test_a_delegate_node_stays_quiet_when_the_principal_spoke() -> None:
    p, d = principals(2, 2)
    rnd = Round(context({p: d}), {d: key(d)}, 0, lambda r: ())
    rnd.start()
    rnd.drain()
    rnd.on_gc_proposal(sign_proposal(key(p), CHAIN, 1, 2, p, EMPTY_VALUE), 100)
    rnd.on_timer(2, TimerKind.LEADER, 200)
    rnd.on_timer(2, TimerKind.DEADLINE, 400)
    sent = [a.message for a in rnd.drain() if isinstance(a, Send)]
    assert sent == [sign_proposal(key(d), CHAIN, 1, 2, d, rnd.values[2])]


# --- certificates -------------------------------------------------------------------


def _certificate_round():
    """A round at which step 5's b = 1 votes pass only with a substitute."""
    ctx = context({})
    members = sorted(ctx.weights(5).items(), key=lambda kv: kv[1])
    p, w_p = members[-1]
    d = next(a for a in range(N) if a != p and ctx.weight(5, a) == 0)
    own: list[int] = []
    total = 0
    for a, w in members[:-1]:
        if total + w <= PARAMS.t_h:
            own.append(a)
            total += w
    assert total + w_p > PARAMS.t_h
    ctx = context({p: d})
    rnd = observer(ctx)
    for a in own:
        rnd.on_bba_signature(sign_vote(key(a), CHAIN, 1, 5, a, 1, EMPTY_VALUE), 10)
    rnd.on_timer(5, TimerKind.DEADLINE, 500)
    rnd.on_substitute(bba_sub(5, d, p, Mode.EXPLICIT, b=1, value=EMPTY_VALUE), 510)
    return ctx, rnd, p, d


def test_a_certificate_carries_substitutes_and_an_acceptor_checks_them() -> None:
    ctx, rnd, p, d = _certificate_round()
    assert rnd.decision == (5, Vote(1, EMPTY_VALUE))
    cert = build_certificate(1, 5, Vote(1, EMPTY_VALUE), rnd.votes[5])
    assert [(principal, signer) for principal, signer, _, _ in cert.substitutes] == [(p, d)]
    assert Certificate.from_bytes(cert.encode()) == cert  # the ledger and sync carry them
    verifier = CachingVerifier(NativeVerifier())
    block = Block.empty(1, PREV)
    check_certificate(cert, block, ctx, PUBLIC.__getitem__, verifier)
    without = Certificate(cert.round, cert.step, cert.b, *cert.value, cert.votes)
    # the own votes alone are not enough
    with pytest.raises(CertificateError, match="weight"):
        check_certificate(without, block, ctx, PUBLIC.__getitem__, verifier)
    other = next(a for a in range(N) if a not in (p, d))
    with pytest.raises(CertificateError, match="may not speak"):
        check_certificate(cert, block, context({p: other}), PUBLIC.__getitem__, verifier)


def test_substitute_votes_relabelled_as_another_step_are_refused() -> None:
    # PROTOCOL revision 2: a substitute's cert_sig signs the step too; the same votes claimed
    # for another b = 1 step (whose committee has the same members here) do not verify
    ctx, rnd, p, _ = _certificate_round()
    cert = build_certificate(1, 5, Vote(1, EMPTY_VALUE), rnd.votes[5])
    verifier = CachingVerifier(NativeVerifier())
    block = Block.empty(1, PREV)
    accounts = (*cert.signers, *cert.principals)

    def fits(step: int) -> bool:  # every voter sits in that step's committee, above t_h
        weights = [ctx.weight(step, a) for a in accounts]
        return all(weights) and sum(weights) > PARAMS.t_h

    step = next((s for s in range(8, 200, 3) if fits(s)), None)
    assert step is not None, "precondition: a b = 1 step with the same voters"
    relabelled = Certificate(1, step, 1, *cert.value, cert.votes, cert.substitutes)
    with pytest.raises(CertificateError, match=rf"bad signature from \[.*{p}"):
        check_certificate(relabelled, block, ctx, PUBLIC.__getitem__, verifier)


def test_a_certificate_never_counts_a_principal_twice() -> None:
    _, rnd, _, d = _certificate_round()
    cert = build_certificate(1, 5, Vote(1, EMPTY_VALUE), rnd.votes[5])
    signer = cert.signers[0]
    entry = (signer, d, Mode.EXPLICIT, bytes(64))
    with pytest.raises(ValueError, match="also an own signer"):
        Certificate(cert.round, cert.step, cert.b, *cert.value, cert.votes, [entry])


# --- the simulator ------------------------------------------------------------------

DELEGATION = dict(
    nodes=5,
    accounts=4,
    rounds=4,
    participation=0.6,
    offline="accounts",
    delegate_offline=0.5,
    fallback=True,
    max_time_ms=120_000,
)


def test_delegation_and_fallback_let_a_low_participation_network_make_blocks() -> None:
    config = {**DELEGATION, "accounts": 8, "max_time_ms": 30_000}
    plain = run(SimConfig(**{**config, "delegate_offline": 0.0, "fallback": False}, seed=3))
    delegated = run(SimConfig(**config, seed=3))
    assert plain.committed == 0
    assert delegated.committed == 4 and delegated.forks == []
    assert delegated.bad_certificates == []
    modes = {
        mode for chain in delegated.chains for _, c in chain for _, _, mode, _ in c.substitutes
    }
    assert modes == {Mode.EXPLICIT, Mode.FALLBACK}


@pytest.mark.parametrize("behaviour", [b for b in BEHAVIOURS if b != "honest"])
def test_no_fork_with_delegation_under_each_byzantine_behaviour(behaviour: str) -> None:
    config = SimConfig(**DELEGATION, seed=5, byzantine=0.2, behaviour=behaviour)
    result = run(config)
    assert_safe(result, min_committed=config.rounds)


def test_delegation_survives_a_node_restart() -> None:
    base = SimConfig(**{**DELEGATION, "rounds": 8}, seed=3)
    delegate = min(Simulation(base).ledger.delegates.values())
    node = delegate // base.accounts
    result = run(replace(base, crashes=((node, 1_000, 2_500),)))
    assert result.committed == 8 and result.forks == [] and result.bad_certificates == []
    assert [b for b, _ in result.chains[node]] == [b for b, _ in result.chains[0]]
    late = [
        c
        for chain, times in zip(result.chains, result.commit_ms, strict=True)
        for (_, c), at in zip(chain, times, strict=True)
        if at > 2_500
    ]
    signers = {signer for c in late for _, signer, _, _ in c.substitutes}
    assert delegate in signers  # the restarted node acts for its principals again


def test_a_node_core_routes_decoded_substitutes_into_the_round() -> None:
    sb = Sandbox()
    p = next(a for a in range(1, 16) if sb.ctx.weight(2, a) > 0)
    d = next(a for a in range(1, 16) if a != p)
    gc = sign_gc_substitute(key(d), CHAIN, 1, 2, d, p, Mode.EXPLICIT, EMPTY_VALUE)
    bba = sign_bba_substitute(key(d), CHAIN, 1, 1, d, p, Mode.FALLBACK, 1, EMPTY_VALUE)
    frames = [gc.encode(), bba.encode()]
    received = [decode(f) for f in frames]
    assert received == [gc, bba]
    sb.recv(*received)
    # both reached the substitute checks (no delegate, no fallback in this sandbox)
    assert sb.node.stats["not a substitute"] == 1
    assert sb.node.stats["wrong step"] == 1
