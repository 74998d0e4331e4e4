"""The chaos checker on hand-made histories and ledgers: a clean run passes, and each planted
violation (a lost transaction, a duplicated one, a forked ledger, ...) is caught, so that the
checker cannot pass vacuously. Fast: no process, no namespace."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from echorand.ledger.mempool import ALREADY_QUEUED
from echorand.node.node import EXIT_DISK_FULL
from echorand.tools.chaos.checker import TRANSIENT, check, final_round
from echorand.tools.chaos.history import (
    ACK,
    HEAL,
    REFUSED,
    START,
    TIMEOUT,
    CommittedTx,
    CommitTime,
    FaultEvent,
    History,
    NodeExit,
    NodeLedger,
    Op,
    TipSample,
)
from echorand.wire.transactions import INSUFFICIENT_BALANCE, NONCE_TOO_HIGH, NONCE_TOO_LOW

NODES = 3
ROUNDS = 10
LANE_KEY = "aa" * 32
GENESIS_TOTAL = 1_000_000


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tx_id(nonce: int) -> str:
    return h(f"tx {nonce}")


def chain(txs: dict[int, list[int]], fork_at: int | None = None) -> list[str]:
    """Block hashes of rounds 1..ROUNDS (another branch from `fork_at` on)."""
    return [
        h(f"block {r}{' fork' if fork_at is not None and r >= fork_at else ''} {txs.get(r)}")
        for r in range(1, ROUNDS + 1)
    ]


def ledger(
    node: int,
    placed: dict[int, list[int]],
    *,
    fork_at: int | None = None,
    final: int = ROUNDS,
    tip: int = ROUNDS,
    **changes: object,
) -> NodeLedger:
    """Node `node`'s ledger: the lane's transactions of nonces `placed[round]` in each round."""
    txs = tuple(
        CommittedTx(r, tx_id(n), LANE_KEY, n)
        for r, nonces in sorted(placed.items())
        for n in nonces
    )
    base = NodeLedger(
        node=node,
        tip=tip,
        final_round=final,
        hashes=tuple(chain(placed, fork_at)[:tip]),
        empty_rounds=tuple(r for r in range(1, tip + 1) if r not in placed),
        txs=tuple(t for t in txs if t.round <= tip),
        supply=(GENESIS_TOTAL, 500, GENESIS_TOTAL + 500),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


PLACED = {2: [0, 1], 4: [2], 7: [3]}


def op(nonce: int, outcome: str = ACK, start: float = 0.0, **changes: object) -> Op:
    base = Op(0, nonce, tx_id(nonce), nonce % NODES, start, start + 0.01, outcome)
    return replace(base, **changes)  # type: ignore[arg-type]


def history(ops: list[Op] | None = None, **changes: object) -> History:
    """A clean run: one partition healed at 5 s, every node committing after it."""
    samples = [TipSample(0.0, k, 0, h("genesis")) for k in range(NODES)]
    samples += [TipSample(5.2 + k / 10, k, 6, chain(PLACED)[5]) for k in range(NODES)]
    base = History(
        seed=7,
        nodes=NODES,
        lanes=[LANE_KEY],
        ops=ops if ops is not None else [op(n, start=n) for n in range(4)],
        faults=[
            FaultEvent(1.0, "partition", START, (), "halves 0 | 12"),
            FaultEvent(5.0, "partition", HEAL, (), "halves 0 | 12"),
        ],
        samples=samples,
        final_heal=9.0,
        caught_up_round=8,
        end=12.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def ledgers(**per_node: NodeLedger) -> list[NodeLedger]:
    out = [ledger(k, PLACED) for k in range(NODES)]
    for key, value in per_node.items():
        out[int(key.removeprefix("n"))] = value
    return out


def violations(hist: History, legs: list[NodeLedger]) -> list[str]:
    verdict = check(hist, legs)
    assert verdict.valid == (not verdict.violations)
    return list(verdict.violations)


def test_a_clean_run_passes_with_its_figures() -> None:
    verdict = check(history(), ledgers())
    assert verdict.valid, verdict.violations
    f = verdict.figures
    assert f["faults"] == {"partition": 1}
    assert f["rounds"] == ROUNDS
    assert f["blocks"] == {"final": ROUNDS, "tentative": 0, "empty": 7, "lowest_tip": ROUNDS}
    t = f["transactions"]
    assert (t["submitted"], t["acknowledged"], t["committed"]) == (4, 4, 4)
    assert (t["lost"], t["duplicated"], t["refused_later"]) == (0, 0, 0)
    assert f["forks"] == {"detected": 0, "resolved": 0, "reported_by_nodes": None}
    assert f["recovery_s"] == {"heals": 1, "measured": 1, "max": 0.4, "p50": 0.4}


def test_a_lost_transaction_is_caught() -> None:
    placed = {2: [0, 1], 4: [2]}  # nonce 3 was acknowledged and never committed
    found = violations(history(), [ledger(k, placed) for k in range(NODES)])
    assert len(found) == 1 and found[0].startswith("lost: ") and "nonce 3" in found[0]
    assert (
        check(history(), [ledger(k, placed) for k in range(NODES)]).figures["transactions"]["lost"]
        == 1
    )


def test_a_duplicated_transaction_is_caught_on_the_node_that_holds_it() -> None:
    twice = {2: [0, 1], 4: [2], 7: [3], 9: [1]}
    found = violations(history(), ledgers(n2=ledger(2, twice)))
    assert any(v.startswith("duplicated: ") and "node 2" in v for v in found), found
    figures = check(history(), ledgers(n2=ledger(2, twice))).figures
    assert figures["transactions"]["duplicated"] == 1


def test_a_forked_ledger_is_caught_at_a_round_both_nodes_hold_final() -> None:
    forked = ledger(1, PLACED, fork_at=6)
    found = violations(history(), ledgers(n1=forked))
    assert any(v.startswith("final fork: round 6 ") for v in found), found
    assert any(v.startswith("not converged: node 1") for v in found), found
    assert check(history(), ledgers(n1=forked)).figures["forks"]["detected"] == ROUNDS - 5


def test_different_tentative_blocks_are_no_final_fork_but_must_converge() -> None:
    tentative = ledger(1, PLACED, fork_at=9, final=8)
    others = [ledger(k, PLACED, final=8) for k in (0, 2)]
    found = violations(history(), [others[0], tentative, others[1]])
    assert not any(v.startswith("final fork") for v in found), found
    assert any(v.startswith("not converged: node 1") and "round 9" in v for v in found), found


def test_a_forked_branch_beyond_every_final_round_and_the_lowest_tip_passes() -> None:
    shorter = [ledger(k, PLACED, final=8, tip=8) for k in (0, 2)]
    ahead = ledger(1, PLACED, fork_at=9, final=8)  # rounds 9, 10 only it holds
    assert violations(history(), [shorter[0], ahead, shorter[1]]) == []


def test_a_node_that_did_not_catch_up_is_not_converged() -> None:
    behind = ledger(2, {2: [0, 1], 4: [2]}, tip=5)
    found = violations(history(), ledgers(n2=behind))
    assert found == ["not converged: node 2 ended at round 5, below round 8 which a node had"
                     " reached at the final heal"]  # fmt: skip


def test_a_transaction_refused_later_for_good_is_not_lost() -> None:
    ops = [op(n, start=n) for n in range(4)]
    ops.append(op(3, REFUSED, start=6.0, reason=INSUFFICIENT_BALANCE, resubmit=True))
    placed = {2: [0, 1], 4: [2]}
    verdict = check(history(ops), [ledger(k, placed) for k in range(NODES)])
    assert verdict.valid, verdict.violations
    assert verdict.figures["transactions"]["refused_later"] == 1


@pytest.mark.parametrize("reason", [*sorted(TRANSIENT), NONCE_TOO_LOW])
def test_a_transient_refusal_or_a_used_nonce_does_not_excuse_a_missing_transaction(
    reason: str,
) -> None:
    ops = [op(n, start=n) for n in range(4)]
    ops.append(op(3, REFUSED, start=6.0, reason=reason, resubmit=True))
    placed = {2: [0, 1], 4: [2]}
    found = violations(history(ops), [ledger(k, placed) for k in range(NODES)])
    assert len(found) == 1 and found[0].startswith("lost: "), found


def test_a_refusal_before_the_acknowledgement_does_not_excuse_it() -> None:
    ops = [op(3, REFUSED, start=0.0, reason=INSUFFICIENT_BALANCE)]
    ops += [op(n, start=1.0 + n) for n in range(4)]
    placed = {2: [0, 1], 4: [2]}
    found = violations(history(ops), [ledger(k, placed) for k in range(NODES)])
    assert len(found) == 1 and found[0].startswith("lost: ")


def test_unacknowledged_transactions_may_commit_or_not() -> None:
    ops = [op(n, start=n) for n in range(3)]
    ops += [op(3, TIMEOUT, start=3.0), op(4, REFUSED, start=4.0, reason=NONCE_TOO_HIGH)]
    verdict = check(history(ops), ledgers())  # 3 committed after a timeout; 4 never
    assert verdict.valid, verdict.violations
    t = verdict.figures["transactions"]
    assert (t["acknowledged"], t["committed"], t["committed_unacknowledged"]) == (3, 4, 1)


def test_a_committed_transaction_nobody_submitted_is_caught() -> None:
    ops = [op(n, start=n) for n in range(3)]  # nonce 3 never submitted, yet committed
    found = violations(history(ops), ledgers())
    assert len(found) == 1 and found[0].startswith("made up: ") and "nonce 3" in found[0]


def test_a_run_that_acknowledged_nothing_is_vacuous() -> None:
    ops = [op(n, TIMEOUT, start=n) for n in range(4)]
    found = violations(history(ops), [ledger(k, {}) for k in range(NODES)])
    assert found == ["vacuous: no transaction was acknowledged, so nothing was tested"]


def test_a_broken_ledger_invariant_is_caught() -> None:
    bad_store = ledger(0, PLACED, store_problem="stored accounts differ from the state")
    bad_supply = ledger(1, PLACED, supply=(GENESIS_TOTAL, 500, GENESIS_TOTAL + 499))
    found = violations(history(), ledgers(n0=bad_store, n1=bad_supply))
    assert found == [
        "ledger of node 0: stored accounts differ from the state",
        f"ledger of node 1: the balances sum to {GENESIS_TOTAL + 499}, not genesis"
        f" {GENESIS_TOTAL} + minted 500",
    ]


def test_a_clean_stop_on_a_full_disk_is_expected_and_anything_else_is_a_crash() -> None:
    clean = NodeExit(3.0, 1, EXIT_DISK_FULL, True, "stopped, the disk is full")
    assert violations(history(exits=[clean]), ledgers()) == []
    crash = NodeExit(3.0, 1, 1, False, "Traceback\nKeyError: 7")
    unclean = NodeExit(4.0, 2, 1, True, "lmdb.Error")
    found = violations(history(exits=[clean, crash, unclean]), ledgers())
    assert found == [
        "node 1 exited with status 1 at 3.0 s (a crash): KeyError: 7",
        "node 2 exited with status 1 at 4.0 s (its disk was full but it did not stop"
        " cleanly): lmdb.Error",
    ]


def test_a_node_that_never_commits_after_a_heal_is_caught() -> None:
    samples = [TipSample(0.0, k, 0, h("genesis")) for k in range(NODES)]
    samples += [TipSample(5.2, k, 6, chain(PLACED)[5]) for k in (0, 1)]
    found = violations(history(samples=samples), ledgers())
    assert found == [
        "no recovery: node 2 committed nothing after the heal of partition (halves 0 | 12) at 5.0 s"
    ]
    status = [None, None, {"tip": 0, "round": 1, "step": 40}]
    again = [
        FaultEvent(7.0, "kill", START, (0,), "node 0"),
        FaultEvent(8.0, "kill", HEAL, (0,), "node 0"),
    ]
    later = [TipSample(8.5, k, 7, chain(PLACED)[6]) for k in (0, 1)]
    grouped = history(samples=samples + later, final_status=status, faults=history().faults + again)
    assert violations(grouped, ledgers()) == [
        "no recovery: node 2 committed nothing after the heal of partition (halves 0 | 12)"
        " at 5.0 s nor after the 1 heal(s) after it; at the end it was in round 1, step 40"
    ]


def test_recovery_uses_the_nodes_commit_times_when_they_cover_the_rounds() -> None:
    commits = [CommitTime(k, 1, 4.0) for k in range(NODES)]  # before the heal
    commits += [CommitTime(k, 2, 5.05 + k / 100) for k in range(NODES)]
    heal = check(history(commits=commits), ledgers()).figures["heals"][0]
    assert heal["nodes"] == {"0": 0.05, "1": 0.06, "2": 0.07} and heal["all_s"] == 0.07
    gap = [c for c in commits if not (c.node == 2 and c.round == 1)]
    heal = check(history(commits=gap), ledgers()).figures["heals"][0]
    assert heal["nodes"]["2"] == pytest.approx(0.4)  # back to the samples


def test_final_round_comes_from_the_status_when_the_node_reports_one() -> None:
    assert final_round(None, 12) == 12
    assert final_round({"tip": {"round": 12}}, 12) == 12
    assert final_round({"final_round": 9}, 12) == 9
    assert final_round({"final_round": 15}, 12) == 12
    assert final_round({"final_round": True}, 12) == 12


def test_fork_evidence_the_nodes_report_is_summed() -> None:
    legs = [ledger(k, PLACED, fork_evidence=k) for k in range(NODES)]
    assert check(history(), legs).figures["forks"]["reported_by_nodes"] == 3


def test_history_and_ledgers_round_trip_through_json() -> None:
    hist = history(
        exits=[NodeExit(3.0, 1, EXIT_DISK_FULL, True, "x")],
        commits=[CommitTime(0, 2, 5.1)],
        ops=[op(0), op(1, REFUSED, reason=ALREADY_QUEUED, resubmit=True)],
    )
    assert History.from_json(hist.to_json()) == hist
    leg = ledger(0, PLACED, store_problem="x", fork_evidence=2)
    assert NodeLedger.from_json(leg.to_json()) == leg
