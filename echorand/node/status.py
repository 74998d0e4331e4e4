"""A node's status (`GET /status`) and metrics (`GET /metrics`, echorand.node.metrics)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from echorand.node.metrics import Metric, network_metrics

if TYPE_CHECKING:
    from echorand.node.node import Node


def status(node: Node) -> dict[str, object]:
    """What `GET /status` shows."""
    core, ledger = node.core, node.ledger
    rnd = core.round if core is not None else None
    return {
        "genesis": node.genesis.hash.hex(),
        "round": core.current_round if core is not None else None,
        "step": rnd.step if rnd is not None else None,
        "tip": {"round": ledger.tip, "hash": ledger.tip_hash.hex()},
        "peers": len(node.net.peers) if node.net is not None else 0,
        "network": node.net.status() if node.net is not None else {},
        "mempool": {
            "count": len(node.mempool),
            "bytes": node.mempool.nbytes,
            "limit": node.admission.backpressure.limit(),
            "block_txs": node.admission.backpressure.block_txs(),
        },
        "sync": {
            "joined": core is not None,
            "caught_up": node.caught_up,
            "target": node.syncer.target if node.syncer is not None else 0,
            "synced_blocks": node.syncer.applied if node.syncer is not None else 0,
        },
        "accounts": len(node.keys),
        "supply": {
            "genesis": node.genesis.total,
            "minted": ledger.minted,
            "total": ledger.supply,
            "reward_level": ledger.reward_level,
        },
        "final_round": ledger.final_round,
        "forks": len(node.forks),
        "halted": node.halted,
        "uptime_s": round(time.time() - node.started_at, 3),
    }


def metrics(node: Node) -> list[Metric]:
    """Everything counted, for /metrics (echorand.node.metrics)."""
    core, ledger, pool = node.core, node.ledger, node.mempool
    step = core.round.step if core is not None and core.round is not None else 0
    out = [
        Metric("tip_round", "gauge", "round of the last committed block", ledger.tip),
        Metric(
            "round",
            "gauge",
            "the round in progress (0: not joined)",
            core.current_round if core is not None else 0,
        ),
        Metric("step", "gauge", "the step in progress", step),
        Metric("joined", "gauge", "1 once the node runs consensus", int(core is not None)),
        Metric("start_time_seconds", "gauge", "Unix time the node started", node.started_at),
        Metric("mempool_transactions", "gauge", "transactions queued", len(pool)),
        Metric("mempool_bytes", "gauge", "bytes of the queued transactions", pool.nbytes),
        Metric(
            "mempool_evicted_total",
            "counter",
            "transactions evicted from the mempool",
            pool.evicted,
        ),
        Metric(
            "blocks_committed_total",
            "counter",
            "blocks committed here",
            node.counters["blocks"],
        ),
        Metric(
            "empty_blocks_committed_total",
            "counter",
            "empty blocks committed here",
            node.counters["empty_blocks"],
        ),
        Metric(
            "transactions_committed_total",
            "counter",
            "transactions in blocks committed here",
            node.counters["transactions"],
        ),
        Metric(
            "transactions_admitted_total",
            "counter",
            "transactions admitted to the mempool",
            node.counters["tx_admitted"],
        ),
        Metric(
            "api_busy_total",
            "counter",
            "POST /tx answered 429 (busy: the mempool holds more than the next rounds commit)",
            node.counters["api_busy"],
        ),
        Metric(
            "transactions_gossip_shed_total",
            "counter",
            "gossiped transactions dropped unread: the mempool was far past its bound",
            node.counters["tx_gossip_shed"],
        ),
        Metric(
            "transactions_refused_total",
            "counter",
            "transactions refused, by reason",
            dict(node.admission.refused),
        ),
        Metric(
            "consensus_messages_total",
            "counter",
            "consensus messages by verdict (accepted or why dropped)",
            dict(core.stats) if core is not None else {},
        ),
        Metric(
            "held_dropped_total",
            "counter",
            "consensus messages of later rounds dropped (past the window or the limits)",
            node.counters["held_dropped"],
        ),
        Metric("held_messages", "gauge", "messages of later rounds held", len(node.held)),
        Metric("held_bytes", "gauge", "bytes of the messages held", node.held.nbytes),
        Metric(
            "signatures_verified_off_loop_total",
            "counter",
            "signatures verified off the event loop",
            node.counters["verified_off_loop"],
        ),
        Metric("supply", "gauge", "units in existence: genesis total plus minted", ledger.supply),
        Metric(
            "minted_total",
            "counter",
            "units minted by block rewards since the genesis",
            ledger.minted,
        ),
        Metric("reward_level", "gauge", "units a non-empty block mints now", ledger.reward_level),
        Metric(
            "final_round",
            "gauge",
            "the last final block (never rolled back)",
            ledger.final_round,
        ),
        Metric(
            "finalized_total",
            "counter",
            "blocks this node saw become final",
            node.counters["finalized"],
        ),
        Metric(
            "fork_evidence_total",
            "counter",
            "pairs of valid certificates for different blocks of one round",
            node.counters["fork_evidence"],
        ),
        Metric(
            "rollbacks_total",
            "counter",
            "rollbacks to a fork point by the fork choice (switches, and trials undone)",
            node.counters["rollbacks"],
        ),
        Metric(
            "rolled_back_blocks_total",
            "counter",
            "tentative blocks removed by rollbacks",
            node.counters["rolled_back_blocks"],
        ),
        Metric(
            "requeued_transactions_total",
            "counter",
            "transactions of rolled-back blocks queued again and relayed",
            node.counters["requeued_transactions"],
        ),
        Metric(
            "halted",
            "gauge",
            "1 when consensus stopped on a conflict with a final block",
            int(node.halted is not None),
        ),
        Metric(
            "round_duration_seconds",
            "histogram",
            "time between consecutive commits",
            node.host.round_seconds,
        ),
        Metric(
            "commit_step",
            "histogram",
            "the step whose certificate decided each round",
            node.host.commit_steps,
        ),
        Metric(
            "transaction_finality_seconds",
            "histogram",
            "from a transaction's admission here to its block's commit",
            node.admission.finality_seconds,
        ),
    ]
    if node.net is not None:
        out += network_metrics(node.net.metrics())
    return out
