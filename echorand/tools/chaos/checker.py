"""The checker of a chaos run: the history and every node's ledger in, a verdict out.

A run is valid when all of these hold (each failure is a violation, named in words):

1. Final agreement: no two nodes hold different blocks at a round both consider final
   (`final_round`).
2. Convergence: after the final heal all nodes hold one chain: the same block at every
   round up to the lowest tip, and that tip at least the highest one any node had reached
   when the last fault was healed.
3. Exactly once: no transaction (id), and no (sender, nonce), is in any node's chain twice.
4. None lost: every transaction a node acknowledged (its API answered 200) is in the
   chain, unless a node refused it later, when the client resubmitted it, for a reason
   that means it can never commit (`PERMANENT`: not a full pool, a nonce gap, a copy
   already queued). The client resubmits what is not committed (`echorand.tools.chaos.client`),
   as a real client must: a mempool is not durable, so a node killed after acknowledging a
   transaction and before relaying it loses it, and only a resubmission brings it back.
   "Nonce too low" on a resubmission says the nonce is used: by this very transaction,
   since a lane signs one transaction per nonce, so it must then be in the chain.
5. Nothing made up: every committed transaction of a lane's sender was submitted.
6. The ledger invariants on every node: `Ledger.check_store` (the stored state is the
   tip's, supply = genesis + minted).
7. Clean exits: a node exits on its own only when its disk is full, and then with the
   status `EXIT_DISK_FULL` (a clean stop); any other exit is a crash.
8. Recovery: after each heal every node commits again before the run ends; the time from
   the heal to that commit is measured (the recovery time: by the node's own commit time
   of each round, `CommitTime`, else by the monitor's samples).
9. Not vacuous: at least one transaction was acknowledged and committed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from echorand.ledger.mempool import ALREADY_QUEUED, MEMPOOL_FULL, SENDER_LIMIT
from echorand.node.backpressure import NODE_BUSY
from echorand.node.node import EXIT_DISK_FULL
from echorand.sim.stats import percentile
from echorand.tools.chaos.history import (
    ACK,
    HEAL,
    REFUSED,
    START,
    FaultEvent,
    History,
    NodeLedger,
    Op,
    TipSample,
)
from echorand.wire.transactions import NONCE_TOO_HIGH, NONCE_TOO_LOW

TRANSIENT = frozenset({MEMPOOL_FULL, SENDER_LIMIT, NONCE_TOO_HIGH, ALREADY_QUEUED, NODE_BUSY})
"""Refusals that say "not now": the transaction may still commit."""
USED = NONCE_TOO_LOW
"""The sender's nonce is used: by this transaction (a lane signs one per nonce)."""
SHOWN = 10
"""Violations of one kind listed one by one; the rest are counted."""


def final_round(status: Mapping[str, Any] | None, tip: int) -> int:
    """The last round a node considers final. A node that reports `final_round` in its
    `GET /status` (finality votes) has final blocks up to there and tentative ones after;
    a node that does not never rolls a committed block back, so all of them are final."""
    reported = None if status is None else status.get("final_round")
    if isinstance(reported, int) and not isinstance(reported, bool):
        return max(0, min(reported, tip))
    return tip


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    violations: tuple[str, ...]
    figures: dict[str, Any]


def _listed(kind: str, items: Sequence[str]) -> list[str]:
    shown = list(items[:SHOWN])
    if len(items) > SHOWN:
        shown.append(f"{kind}: and {len(items) - SHOWN} more")
    return shown


# --- chains ----------------------------------------------------------------------------


def final_forks(ledgers: Sequence[NodeLedger]) -> list[str]:
    """Rounds final on two nodes that hold different blocks there (the first per pair)."""
    out = []
    for i, a in enumerate(ledgers):
        for b in ledgers[i + 1 :]:
            upto = min(a.final_round, b.final_round, a.tip, b.tip)
            for r in range(1, upto + 1):
                ha, hb = a.hashes[r - 1], b.hashes[r - 1]
                if ha != hb:
                    differ = sum(
                        1 for s in range(r, upto + 1) if a.hashes[s - 1] != b.hashes[s - 1]
                    )
                    out.append(
                        f"final fork: round {r} is final on nodes {a.node} and {b.node} but they"
                        f" hold different blocks ({ha[:16]}.. and {hb[:16]}..); {differ} final"
                        " round(s) differ"
                    )
                    break
    return out


def reference(ledgers: Sequence[NodeLedger]) -> NodeLedger:
    """The longest chain (the lowest node id among equals): the one the others must follow."""
    return max(ledgers, key=lambda ledger: (ledger.tip, -ledger.node))


def convergence(ledgers: Sequence[NodeLedger], caught_up_round: int) -> list[str]:
    """All chains equal up to the lowest tip, and every tip at least `caught_up_round`."""
    if not ledgers:
        return ["no ledger was read"]
    out = []
    ref = reference(ledgers)
    for ledger in ledgers:
        if ledger.tip < caught_up_round:
            out.append(
                f"not converged: node {ledger.node} ended at round {ledger.tip}, below round"
                f" {caught_up_round} which a node had reached at the final heal"
            )
        for r in range(1, min(ledger.tip, ref.tip) + 1):
            if ledger.hashes[r - 1] != ref.hashes[r - 1]:
                out.append(
                    f"not converged: node {ledger.node} holds another block than node"
                    f" {ref.node} at round {r} ({ledger.hashes[r - 1][:16]}.. and"
                    f" {ref.hashes[r - 1][:16]}..)"
                )
                break
    return out


def invariants(ledgers: Iterable[NodeLedger]) -> list[str]:
    out = []
    for ledger in ledgers:
        if ledger.store_problem is not None:
            out.append(f"ledger of node {ledger.node}: {ledger.store_problem}")
        genesis, minted, total = ledger.supply
        if genesis + minted != total:
            out.append(
                f"ledger of node {ledger.node}: the balances sum to {total}, not genesis"
                f" {genesis} + minted {minted}"
            )
    return out


def fork_figures(history: History, ledgers: Sequence[NodeLedger]) -> dict[str, int | None]:
    """Rounds where two different blocks were seen (in the monitor's samples during the run,
    or in the ledgers at the end), and how many of them all nodes agree on at the end."""
    seen: dict[int, set[str]] = defaultdict(set)
    for sample in history.samples:
        if sample.tip is not None and sample.hash is not None and sample.tip > 0:
            seen[sample.tip].add(sample.hash)
    for ledger in ledgers:
        for r, h in enumerate(ledger.hashes, start=1):
            if r in seen:
                seen[r].add(h)
    ends: dict[int, set[str]] = defaultdict(set)
    for ledger in ledgers:
        for r, h in enumerate(ledger.hashes, start=1):
            ends[r].add(h)
    detected = {r for r, hashes in seen.items() if len(hashes) > 1}
    detected |= {r for r, hashes in ends.items() if len(hashes) > 1}
    resolved = {r for r in detected if len(ends.get(r, ())) == 1}
    reported = [ledger.fork_evidence for ledger in ledgers if ledger.fork_evidence is not None]
    return {
        "detected": len(detected),
        "resolved": len(resolved),
        "reported_by_nodes": sum(reported) if reported else None,
    }


# --- transactions ------------------------------------------------------------------------


def _excused(ops: Sequence[Op], acked_at: float) -> str | None:
    """The permanent reason a node gave for this transaction after it was acknowledged."""
    for op in ops:
        late = op.start >= acked_at and op.outcome == REFUSED and op.reason is not None
        if late and op.reason not in TRANSIENT and op.reason != USED:
            return op.reason
    return None


def transactions(
    history: History, ledgers: Sequence[NodeLedger]
) -> tuple[dict[str, Any], list[str]]:
    """Exactly once, none lost, nothing made up; the transaction figures."""
    problems: list[str] = []
    by_tx: dict[str, list[Op]] = defaultdict(list)
    for op in history.ops:
        by_tx[op.tx].append(op)
    duplicated: set[str] = set()
    dup_lines: list[str] = []
    for ledger in ledgers:
        ids = Counter(t.tx for t in ledger.txs)
        slots = Counter((t.sender, t.nonce) for t in ledger.txs)
        for tx, n in sorted(ids.items()):
            if n > 1:
                rounds = sorted(t.round for t in ledger.txs if t.tx == tx)
                duplicated.add(tx)
                dup_lines.append(
                    f"duplicated: transaction {tx[:16]}.. is {n} times in node {ledger.node}'s"
                    f" chain (rounds {rounds})"
                )
        for (sender, nonce), n in sorted(slots.items()):
            if n > 1 and not any(ids[t.tx] > 1 for t in ledger.txs if t.sender == sender):
                dup_lines.append(
                    f"duplicated: sender {sender[:16]}.. used nonce {nonce} {n} times in node"
                    f" {ledger.node}'s chain"
                )
    problems += _listed("duplicated", dup_lines)

    ref = reference(ledgers) if ledgers else None
    committed = {t.tx: t for t in ref.txs} if ref is not None else {}
    acked: dict[str, float] = {}
    for op in history.ops:
        if op.outcome == ACK:
            acked.setdefault(op.tx, op.end)
    lost: list[str] = []
    refused_later: dict[str, str] = {}
    for tx, at in sorted(acked.items(), key=lambda item: item[1]):
        if tx in committed:
            continue
        reason = _excused(by_tx[tx], at)
        if reason is not None:
            refused_later[tx] = reason
            continue
        first = by_tx[tx][0]
        lost.append(
            f"lost: transaction {tx[:16]}.. (lane {first.lane}, nonce {first.nonce}) was"
            f" acknowledged at {at:.1f} s and is not in the chain of node"
            f" {ref.node if ref is not None else '-'}"
        )
    problems += _listed("lost", lost)

    lane_keys = set(history.lanes)
    phantoms = [
        f"made up: transaction {t.tx[:16]}.. (sender {t.sender[:16]}.., nonce {t.nonce}) in"
        f" round {t.round} was never submitted"
        for t in (ref.txs if ref is not None else ())
        if t.sender in lane_keys and t.tx not in by_tx
    ]
    problems += _listed("made up", phantoms)

    refusals = Counter(op.reason or "" for op in history.ops if op.outcome == REFUSED)
    outcomes = Counter(op.outcome for op in history.ops)
    lane_committed = sum(1 for tx in committed if tx in by_tx)
    figures = {
        "requests": len(history.ops),
        "resubmissions": sum(1 for op in history.ops if op.resubmit),
        "outcomes": dict(outcomes),
        "refusals": dict(refusals),
        "submitted": len(by_tx),
        "acknowledged": len(acked),
        "committed": lane_committed,
        "committed_unacknowledged": sum(1 for tx in committed if tx in by_tx and tx not in acked),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "refused_later": len(refused_later),
    }
    if not acked:
        problems.append("vacuous: no transaction was acknowledged, so nothing was tested")
    elif not lane_committed:
        problems.append("vacuous: no transaction of the client was committed")
    return figures, problems


# --- processes and recovery --------------------------------------------------------------


def exits(history: History) -> tuple[dict[str, int], list[str]]:
    """Node exits: clean stops on a full disk are expected, anything else is a crash."""
    clean = 0
    crashes = []
    for e in history.exits:
        if e.disk_full and e.code == EXIT_DISK_FULL:
            clean += 1
            continue
        why = "its disk was full but it did not stop cleanly" if e.disk_full else "a crash"
        tail = e.log_tail.strip().splitlines()[-1:] or [""]
        crashes.append(
            f"node {e.node} exited with status {e.code} at {e.t:.1f} s ({why}): {tail[0]}"
        )
    return {"disk_full_stops": clean, "crashes": len(crashes)}, _listed("crash", crashes)


def tip_at(samples: Sequence[TipSample], t: float) -> int:
    """A node's last tip the monitor saw at or before `t` (-1: none), from its samples in
    time order."""
    tip = -1
    for s in samples:
        if s.t > t:
            break
        if s.tip is not None:
            tip = s.tip
    return tip


def _by_node(items: Iterable[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for item in sorted(items, key=lambda item: item.t):
        out[item.node].append(item)
    return out


def _next_commit(
    commits: Mapping[int, float], samples: Sequence[TipSample], t: float
) -> float | None:
    """When a node first committed after `t`. Exact when its own commit times (round ->
    time) cover every round from the one after its tip at `t` (as the monitor saw it) to the
    first committed after `t`. Else by the samples (an upper bound: the monitor looks every
    `MONITOR_EVERY` seconds, and a restart forgets the earlier commit times): the first
    sample after `t` with a higher tip than the node had at `t`, or, if it did not answer
    then, than its first answer after `t`."""
    r = max(1, tip_at(samples, t) + 1)
    while r in commits:
        if commits[r] > t:
            return commits[r]
        r += 1
    before = [s for s in samples if s.t <= t]
    after = [s for s in samples if s.t > t and s.tip is not None]
    if before and before[-1].tip is not None:
        base = before[-1].tip
    elif after:
        base = after[0].tip  # type: ignore[assignment]
    else:
        return None
    return next((s.t for s in after if s.tip > base), None)  # type: ignore[operator]


def _where(history: History, k: int) -> str:
    """Where node k's consensus was at the end, if known: "; at the end: round r, step s"."""
    status = history.final_status[k] if k < len(history.final_status) else None
    if not status or status.get("round") is None:
        return ""
    return f"; at the end it was in round {status['round']}, step {status.get('step')}"


def recovery(history: History) -> tuple[list[dict[str, Any]], list[str]]:
    """For each heal, each node's time from the heal to its next commit."""
    samples = _by_node(history.samples)
    commits: dict[int, dict[int, float]] = defaultdict(dict)
    for c in history.commits:
        commits[c.node][c.round] = c.t
    heals = []
    stuck: dict[int, list[FaultEvent]] = defaultdict(list)
    for fault in history.faults:
        if fault.action != HEAL:
            continue
        times: dict[int, float | None] = {}
        for k in range(history.nodes):
            after = _next_commit(commits.get(k, {}), samples.get(k, []), fault.t)
            times[k] = None if after is None else round(after - fault.t, 3)
            if after is None:
                stuck[k].append(fault)
        done = [v for v in times.values() if v is not None]
        heals.append(
            {
                "t": round(fault.t, 3),
                "kind": fault.kind,
                "detail": fault.detail,
                "nodes": {str(k): v for k, v in times.items()},
                "all_s": max(done) if len(done) == len(times) else None,
            }
        )
    problems = []
    for k, faults in sorted(stuck.items()):
        first = faults[0]
        more = f" nor after the {len(faults) - 1} heal(s) after it" if len(faults) > 1 else ""
        problems.append(
            f"no recovery: node {k} committed nothing after the heal of {first.kind}"
            f" ({first.detail}) at {first.t:.1f} s{more}{_where(history, k)}"
        )
    return heals, problems


# --- the verdict -------------------------------------------------------------------------


def check(history: History, ledgers: Sequence[NodeLedger]) -> Verdict:
    """Every check of the module docstring; the figures of the report."""
    violations: list[str] = []
    violations += _listed("final fork", final_forks(ledgers))
    violations += _listed("not converged", convergence(ledgers, history.caught_up_round))
    violations += _listed("ledger", invariants(ledgers))
    tx_figures, tx_problems = transactions(history, ledgers)
    violations += tx_problems
    exit_figures, exit_problems = exits(history)
    violations += exit_problems
    heals, recovery_problems = recovery(history)
    violations += recovery_problems
    ref = reference(ledgers) if ledgers else None
    recovered = [h["all_s"] for h in heals if h["all_s"] is not None]
    figures = {
        "faults": dict(Counter(f.kind for f in history.faults if f.action == START)),
        "rounds": max((ledger.tip for ledger in ledgers), default=0),
        "blocks": {
            "final": ref.final_round if ref is not None else 0,
            "tentative": ref.tip - ref.final_round if ref is not None else 0,
            "empty": len(ref.empty_rounds) if ref is not None else 0,
            "lowest_tip": min((ledger.tip for ledger in ledgers), default=0),
        },
        "transactions": tx_figures,
        "forks": fork_figures(history, ledgers),
        "exits": exit_figures,
        "recovery_s": {
            "heals": len(heals),
            "measured": len(recovered),
            "max": max(recovered, default=None),
            "p50": _p50(recovered),
        },
        "heals": heals,
    }
    return Verdict(not violations, tuple(violations), figures)


def _p50(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ms = percentile([round(v * 1000) for v in values], 50)
    return None if ms is None else ms / 1000
