"""Building and running a simulated network, and what it measured."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from echorand.core.consensus import Tip, ledger_delegates
from echorand.core.events import BlockReceived
from echorand.core.validate import CachingVerifier, NativeVerifier
from echorand.protocol.certificate import CertificateError, check_certificate
from echorand.protocol.committee import RoundContext
from echorand.protocol.params import Params
from echorand.protocol.sortition import StakeTable
from echorand.sim.adversary import ADVERSARIES, SplitDecision
from echorand.sim.byzantine import Behaviour, Split, make_behaviour
from echorand.sim.clock import Clock
from echorand.sim.network import Network, Partition
from echorand.sim.node import SimNode
from echorand.sim.stats import percentile
from echorand.wire.crypto import Keypair
from echorand.wire.messages import MAX_SYNC_BLOCKS, Block, Certificate, ConsensusMessage


@dataclass(frozen=True, slots=True)
class SimConfig:
    """A simulated run. Times are simulated milliseconds."""

    nodes: int = 7
    accounts: int = 3
    """Accounts per node."""
    rounds: int = 5
    seed: int = 1
    byzantine: float = 0.0
    """Fraction of stake held by Byzantine nodes (whole nodes, up to this fraction)."""
    behaviour: str = "silent"
    participation: float = 1.0
    """Fraction of stake online (the rest is held by nodes that never start, or by accounts
    that never act: see `offline`)."""
    offline: str = "nodes"
    """What `participation` takes offline: whole `nodes` (in a seeded order, while their stake
    fits), or honest nodes' `accounts` (in a seeded order, while their stake fits; every node
    stays up and relays, and acts only for its online accounts)."""
    latency_ms: int = 20
    loss: float = 0.0
    partition: tuple[float, int, int] | None = None
    """(fraction of nodes on one side, start ms, end ms)."""
    crashes: tuple[tuple[int, int, int | None], ...] = ()
    """(node, crash at ms, restart at ms or None)."""
    mute_producers: bool = False
    """Every node drops its own step-1 messages: no producer is online."""
    slow_honest_producers_ms: int = 0
    """In a round where a Byzantine account holds a producer seat, honest nodes send their
    own step-1 messages this much late: an adversary that slows honest producers whenever
    one of its own can win (seed 002's slow honest validators)."""
    proposers: str = "sortition"
    """The proposer policy (`Params.proposer_policy`); under round-robin every account is a
    validator (accounts 0 .. nodes * accounts - 1)."""
    delegate_offline: float = 0.0
    """With `offline="accounts"`: this fraction of the offline accounts (the first ones in
    the seeded offline order) delegate explicitly to an online account of their own node
    (else of the next honest node with one): docs/protocol.md §16."""
    fallback: bool = False
    """Whether the automatic fallback of §16 is on (`Params.fallback`)."""
    seed_mode: str = "signature"
    """The leaders' seed credential (`Params.seed_mode`): a signature or a VRF proof."""
    adversary: str | None = None
    """An adversarial scheduler beyond the timing assumption (`echorand.sim.adversary`):
    `split-decision` (the Byzantine nodes then act its part, whatever `behaviour` says)."""
    attack_round: int = 2
    """The round the adversary attacks."""
    n_g: int = 10
    n_c: int = 60
    k: int = 4
    lam_ms: int = 100
    big_lam_ms: int = 300
    max_time_ms: int | None = None

    def params(self) -> Params:
        validators = 0 if self.proposers == "sortition" else self.nodes * self.accounts
        return Params(
            n_g=self.n_g,
            n_c=self.n_c,
            k=self.k,
            lam_ms=self.lam_ms,
            big_lam_ms=self.big_lam_ms,
            proposer_policy=self.proposers,
            validators=validators,
            fallback=self.fallback,
            seed_mode=self.seed_mode,
        )


@dataclass(slots=True)
class SimResult:
    """What a run measured (the `--json` summary is `summary()`)."""

    config: SimConfig
    committed: int
    empty_blocks: int
    forks: list[int]
    latency_p50_ms: int
    latency_p99_ms: int
    messages: int
    lost: int
    sim_time_ms: int
    byzantine_stake: float
    online_stake: float
    certificates_checked: int
    bad_certificates: list[str]
    dropped: dict[str, int]
    chains: list[list[tuple[Block, Certificate]]] = field(repr=False)
    commit_ms: list[list[int]] = field(repr=False, default_factory=list)
    """When each honest node (in the order of `chains`) committed each block."""
    final_forks: list[int] = field(default_factory=list)
    """Rounds at which two honest nodes held different *final* blocks (must stay empty)."""
    unhealed: list[int] = field(default_factory=list)
    """Rounds at which the honest nodes' chains still differ at the end."""
    final_blocks: int = 0
    """Blocks the honest nodes all saw become final (the lowest final round among them)."""
    rollbacks: int = 0
    """Rollbacks of honest nodes to a fork point by the fork choice: switches to another
    chain (and trials of one that failed its checks and were undone)."""
    converged_after_rounds: int | None = None
    """After the first fork: how many rounds the longest honest chain grew until every honest
    chain agreed again (None: no fork, or not converged by the end)."""
    halted: int = 0
    """Honest nodes that stopped on a conflict with a final block (must stay 0)."""

    def summary(self) -> dict[str, object]:
        c = self.config
        return {
            "nodes": c.nodes,
            "accounts": c.nodes * c.accounts,
            "rounds": c.rounds,
            "seed": c.seed,
            "behaviour": c.behaviour,
            "proposers": c.proposers,
            "seed_mode": c.seed_mode,
            "byzantine_stake": round(self.byzantine_stake, 4),
            "online_stake": round(self.online_stake, 4),
            "offline": c.offline,
            "committed": self.committed,
            "empty_blocks": self.empty_blocks,
            "forks": self.forks,
            "final_forks": self.final_forks,
            "unhealed": self.unhealed,
            "final_blocks": self.final_blocks,
            "rollbacks": self.rollbacks,
            "converged_after_rounds": self.converged_after_rounds,
            "halted": self.halted,
            "adversary": c.adversary,
            "latency_ms": {"p50": self.latency_p50_ms, "p99": self.latency_p99_ms},
            "messages": self.messages,
            "lost": self.lost,
            "sim_time_ms": self.sim_time_ms,
            "certificates_checked": self.certificates_checked,
            "bad_certificates": self.bad_certificates,
            "dropped": self.dropped,
        }


class StaticLedger:
    """The simulator's ledger: no transactions are applied, so every round has the genesis
    balances."""

    def __init__(
        self, table: StakeTable, keys: list[bytes], delegates: dict[int, int] | None = None
    ) -> None:
        self.table = table
        self.keys = keys
        self.delegates = dict(delegates or {})

    def delegate(self, round: int, account: int) -> int | None:
        """The account's explicit delegate (fixed for the whole run)."""
        return self.delegates.get(account)

    def stake_table(self, round: int) -> StakeTable:
        return self.table

    def public_key(self, account: int) -> bytes | None:
        return self.keys[account] if 0 <= account < len(self.keys) else None


class Simulation:
    """N nodes, one clock, one network; `run()` returns a `SimResult`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.params = config.params()
        self.rng = random.Random(config.seed)
        self.clock = Clock()
        partitions = ()
        if config.partition is not None:
            fraction, start, end = config.partition
            partitions = (Partition(start, end, max(1, round(config.nodes * fraction))),)
        self.network = Network(
            self.clock, config.nodes, self.rng, config.latency_ms, config.loss, partitions
        )
        self.verifier = CachingVerifier(NativeVerifier())
        n_accounts = config.nodes * config.accounts
        keys = [Keypair.from_seed(_digest(b"key", config.seed, a)) for a in range(n_accounts)]
        balances = [self.rng.randrange(1_000, 2_000) for _ in range(n_accounts)]
        self.balances = balances
        self.ledger = StaticLedger(StakeTable(balances), [k.public_key for k in keys])
        self.genesis = Tip(0, _digest(b"seed", config.seed, 0), _digest(b"genesis", config.seed, 0))
        stake = [
            sum(balances[i * config.accounts : (i + 1) * config.accounts])
            for i in range(config.nodes)
        ]
        order = list(range(config.nodes))
        self.rng.shuffle(order)
        total = sum(stake)
        byzantine = _take(order, stake, config.byzantine * total)
        rest = [i for i in order if i not in byzantine]
        budget = (1 - config.participation) * total
        offline: set[int] = set()
        offline_accounts: set[int] = set()
        if config.offline == "nodes":
            offline = _take(rest, stake, budget)
            offline_stake = sum(stake[i] for i in offline)
        elif config.offline == "accounts":
            honest_accounts = sorted(
                (a for i in rest for a in range(i * config.accounts, (i + 1) * config.accounts)),
                key=lambda a: _digest(b"offline", config.seed, a),
            )
            offline_accounts = _take(honest_accounts, balances, budget)
            offline_stake = sum(balances[a] for a in offline_accounts)
        else:
            raise ValueError(f"offline must be 'nodes' or 'accounts', got {config.offline!r}")
        self.byzantine_stake = sum(stake[i] for i in byzantine) / total
        self.byzantine_accounts = frozenset(
            a for i in byzantine for a in range(i * config.accounts, (i + 1) * config.accounts)
        )
        self.online_stake = 1 - offline_stake / total
        self.offline = offline
        self.offline_accounts = frozenset(offline_accounts)
        if config.delegate_offline and offline_accounts:
            self.ledger.delegates = self._delegations(
                sorted(offline_accounts, key=lambda a: _digest(b"offline", config.seed, a)),
                rest,
            )
        self.adversary = self._adversary(rest, stake, byzantine)
        self.nodes: list[SimNode] = []
        for i in range(config.nodes):
            accounts = range(i * config.accounts, (i + 1) * config.accounts)
            mine = {a: keys[a] for a in accounts if a not in self.offline_accounts}
            name = config.behaviour if i in byzantine else "honest"
            rng = random.Random(config.seed * 1_000 + i)
            if self.adversary is not None and i in byzantine:
                behaviour: Behaviour = Split(mine, rng, self.genesis.chain, self.adversary)
            else:
                behaviour = make_behaviour(name, mine, rng, config.lam_ms, self.genesis.chain)
            node = SimNode(i, self, mine, behaviour, honest=i not in byzantine)
            node.mute_producer = config.mute_producers
            self.nodes.append(node)
        self._progress: Callable[[int], None] | None = None
        self._committed = 0
        self._ever: dict[int, set[bytes]] = {}
        """Round -> every block an honest node committed there, rolled back or not."""
        self._finals: dict[int, set[bytes]] = {}
        """Round -> every block an honest node saw become final there."""
        self._fork_tip: int | None = None
        self._converged_at: int | None = None
        self._fork_checks: dict[tuple[int, int], int] = {}

    def _adversary(
        self, honest: list[int], stake: list[int], byzantine: set[int]
    ) -> SplitDecision | None:
        """The groups of `SplitDecision`: the honest node of least stake decides, about a
        quarter of the stake (honest nodes in seeded order) is group B."""
        c = self.config
        if c.adversary is None:
            return None
        if c.adversary != "split-decision":
            raise ValueError(f"adversary must be one of {', '.join(ADVERSARIES)}")
        live = [i for i in honest if i not in self.offline]
        decider = min(live, key=lambda i: (stake[i], i))
        others = [i for i in live if i != decider]
        group_b = _take(others, stake, 0.25 * sum(stake))
        hold = 30 * c.lam_ms + 2 * c.big_lam_ms
        return SplitDecision(
            c.attack_round, frozenset({decider}), frozenset(group_b), frozenset(byzantine), hold
        )

    def _delegations(self, offline: list[int], honest_nodes: list[int]) -> dict[int, int]:
        """Explicit delegates of the first `delegate_offline` of the offline accounts: the
        lowest online account of their node, else of the next honest node that has one."""
        c = self.config
        count = round(c.delegate_offline * len(offline))
        online_of = {
            i: [
                a
                for a in range(i * c.accounts, (i + 1) * c.accounts)
                if a not in self.offline_accounts
            ]
            for i in honest_nodes
        }
        delegates: dict[int, int] = {}
        for account in offline[:count]:
            node = account // c.accounts
            for step in range(c.nodes):
                candidates = online_of.get((node + step) % c.nodes)
                if candidates:
                    delegates[account] = candidates[0]
                    break
        return delegates

    # --- services the nodes use --------------------------------------------------------

    def broadcast(
        self, src: int, msg: ConsensusMessage, targets: tuple[int, ...] | None, delay: int
    ) -> None:
        peers = self.network.neighbours[src] if targets is None else targets
        adversary, now = self.adversary, self.clock.now_ms
        for dst in peers:
            node = self.nodes[dst]
            extra = 0 if adversary is None else adversary.delay_ms(msg, src, dst, now)
            self.network.send(src, dst, lambda n=node: n.receive(msg, src), delay + extra)

    def producer_delay_ms(self, node: SimNode, msg: ConsensusMessage) -> int:
        """The adversary's extra delay of a node's own step-1 message (`slow_honest_producers_ms`
        when the node is honest and a Byzantine account holds a seat in A_1 of the round)."""
        delay = self.config.slow_honest_producers_ms
        if not delay or not node.honest or msg.step != 1 or node.core is None:
            return 0
        rnd = node.core.round
        if rnd is None or rnd.ctx.round != msg.round:
            return 0
        return delay if self.byzantine_accounts.intersection(rnd.ctx.producer_seats()) else 0

    def payload_valid(self, block: Block) -> bool:
        """The ledger check of PAY_r the simulator can make: every transaction's signature."""
        txs = block.transactions
        if not txs:
            return True
        answers = self.verifier.verify_batch(
            [tx.sender for tx in txs],
            [tx.signing_bytes(self.genesis.chain) for tx in txs],
            [tx.signature for tx in txs],
        )
        return all(answers)

    def fetch(self, node: SimNode, round: int, block_hash: bytes) -> None:
        """Ask a reachable peer for a block; retry after Λ while nobody has it."""
        for peer in self._peers_of(node):
            block = peer.blocks.get(block_hash)
            if block is not None:
                self.network.send(
                    peer.index,
                    node.index,
                    lambda b=block: node.deliver(BlockReceived(self.clock.now_ms, b)),
                    self._link_delay(peer.index, node.index),
                )
                return
        core = node.core

        def retry() -> None:
            if node.core is core and core is not None and core.current_round == round:
                self.fetch(node, round, block_hash)

        self.clock.at(self.clock.now_ms + self.params.big_lam_ms, retry)

    def sync(self, node: SimNode, from_round: int) -> None:
        """Certified blocks from `from_round` on, from the reachable peer with the longest chain."""
        peers = [p for p in self._peers_of(node) if len(p.chain) >= from_round]
        if not peers:
            return
        peer = max(peers, key=lambda p: (len(p.chain), -p.index))
        blocks = tuple(peer.chain[from_round - 1 : from_round - 1 + MAX_SYNC_BLOCKS])
        delay = self._link_delay(peer.index, node.index)
        self.network.send(peer.index, node.index, lambda: node.synced(peer.index, blocks), delay)

    def _link_delay(self, src: int, dst: int) -> int:
        """What the adversary adds to an answer from `src` to `dst` (sync, fetch)."""
        adversary = self.adversary
        return 0 if adversary is None else adversary.link_delay_ms(src, dst, self.clock.now_ms)

    def check_fork(self, node: SimNode, peer: int) -> None:
        """`node` suspects `peer` holds another chain: fetch it from the first round `node`
        may roll back (its last final block + 1), with the proof of `peer`'s last final
        block (as the node's `final_proof` follows its sync response), at most once per
        2λ + Λ per pair."""
        now, p = self.clock.now_ms, self.params
        last = self._fork_checks.get((node.index, peer))
        if last is not None and now - last < 2 * p.lam_ms + p.big_lam_ms:
            return
        self._fork_checks[(node.index, peer)] = now
        source = self.nodes[peer]
        if not source.online or not self.network.connected(peer, node.index):
            return
        blocks = list(source.chain[node.rollback_floor :])
        final = source.final_certs.get(source.final_round)
        proof = None if final is None else final.proof()
        delay = self._link_delay(peer, node.index)
        self.network.send(peer, node.index, lambda: node.on_chain(peer, blocks, proof), delay)

    def _context(self, tip: Tip, previous: RoundContext | None) -> RoundContext:
        """The context of round tip.round + 1 in the simulator's ledger."""
        r = tip.round + 1
        delegates = ledger_delegates(self.ledger, r)
        return tip.context(self.params, self.ledger.stake_table(r), delegates, previous)

    def record_commit(self, node: SimNode, block: Block) -> None:
        """Every block an honest node commits, kept even if it is rolled back later."""
        if not node.honest:
            return
        hashes = self._ever.setdefault(block.round, set())
        hashes.add(block.hash)
        adversary = self.adversary
        if adversary is not None and adversary.open and block.round >= adversary.round:
            others = [n for n in self._live_honest() if n.index not in adversary.deciders]
            if all(len(n.chain) >= adversary.round for n in others if n is not node):
                adversary.open = False  # every other honest node decided round R
        if len(hashes) > 1 and self._fork_tip is None:
            self._fork_tip = max(len(n.chain) for n in self._live_honest())

    def record_final(self, node: SimNode, round: int, block_hash: bytes) -> None:
        if node.honest:
            self._finals.setdefault(round, set()).add(block_hash)

    def _peers_of(self, node: SimNode) -> list[SimNode]:
        return [
            p
            for p in self.nodes
            if p is not node and p.online and self.network.connected(p.index, node.index)
        ]

    def on_commit(self, node: SimNode) -> None:
        if self._fork_tip is not None and self._converged_at is None and self._agree():
            self._converged_at = max(len(n.chain) for n in self._live_honest())
        committed = self._honest_committed()
        if committed > self._committed:
            self._committed = committed
            if self._progress is not None:
                self._progress(committed)

    # --- running ---------------------------------------------------------------------------

    def _live_honest(self) -> list[SimNode]:
        return [n for n in self.nodes if n.honest and n.online]

    def _agree(self) -> bool:
        """Whether every live honest chain is a prefix of the longest one."""
        chains = [n.chain for n in self._live_honest()]
        longest = max(chains, key=len, default=[])
        return all(c[-1][0].hash == longest[len(c) - 1][0].hash for c in chains if c)

    def _honest_committed(self) -> int:
        live = self._live_honest()
        return min((len(n.chain) for n in live), default=0)

    def run(self, progress: Callable[[int], None] | None = None) -> SimResult:
        c = self.config
        self._progress = progress
        for node in self.nodes:
            if node.index not in self.offline:
                node.boot(self.params, self.ledger, self.verifier, self.genesis)
            else:
                self.network.online[node.index] = False
        for index, crash_ms, restart_ms in c.crashes:
            node = self.nodes[index]
            self.clock.at(crash_ms, node.crash)
            if restart_ms is not None:
                self.clock.at(
                    restart_ms,
                    lambda n=node: n.boot(self.params, self.ledger, self.verifier, self.genesis),
                )
        end = c.max_time_ms
        if end is None:
            p = self.params
            per_round = 3 * p.lam_ms + p.big_lam_ms + 2 * p.lam_ms * (3 * p.mu)
            end = c.rounds * per_round + max(
                (t for _, t, r in c.crashes for t in (t, r or 0)), default=0
            )
            if c.partition is not None:
                end += c.partition[2]
        if c.adversary is not None:
            end += self.adversary.hold_ms if self.adversary is not None else 0
        self.clock.run_until(end, lambda: self._honest_committed() >= c.rounds and self._settled())
        return self._result()

    def _settled(self) -> bool:
        """No crash or restart is still to come, no held message is on its way, and a fork
        seen has healed."""
        now = self.clock.now_ms
        if self.adversary is not None and now < self.adversary.released_ms:
            return False
        if self._fork_tip is not None and self._converged_at is None:
            return False
        return all(now >= t and (r is None or now >= r) for _, t, r in self.config.crashes)

    # --- results -----------------------------------------------------------------------------

    def _result(self) -> SimResult:
        honest = [n for n in self.nodes if n.honest and n.index not in self.offline]
        chains = [n.chain for n in honest]
        by_round: dict[int, set[bytes]] = {}
        for chain in chains:
            for block, _ in chain:
                by_round.setdefault(block.round, set()).add(block.hash)
        unhealed = sorted(r for r, hashes in by_round.items() if len(hashes) > 1)
        forks = sorted(r for r, hashes in self._ever.items() if len(hashes) > 1)
        final_forks = sorted(r for r, hashes in self._finals.items() if len(hashes) > 1)
        reference = max(chains, key=len, default=[])
        converged = None
        if self._fork_tip is not None and self._converged_at is not None:
            converged = max(0, self._converged_at - self._fork_tip)
        durations = sorted(ms for n in honest for ms in n.round_ms)
        checked, bad = self._check_certificates(honest)
        dropped: Counter[str] = Counter()
        for node in honest:
            if node.core is not None:
                dropped.update({k: v for k, v in node.core.stats.items() if k != "accepted"})
        return SimResult(
            config=self.config,
            committed=self._honest_committed(),
            empty_blocks=sum(1 for block, _ in reference if block.is_empty),
            forks=forks,
            latency_p50_ms=percentile(durations, 50) or 0,
            latency_p99_ms=percentile(durations, 99) or 0,
            messages=self.network.transmissions,
            lost=self.network.lost,
            sim_time_ms=self.clock.now_ms,
            byzantine_stake=self.byzantine_stake,
            online_stake=self.online_stake,
            certificates_checked=checked,
            bad_certificates=bad,
            dropped=dict(sorted(dropped.items())),
            chains=chains,
            commit_ms=[list(n.commit_ms) for n in honest],
            final_forks=final_forks,
            unhealed=unhealed,
            final_blocks=min((n.final_round for n in honest), default=0),
            rollbacks=sum(n.rollbacks for n in honest),
            converged_after_rounds=converged,
            halted=sum(1 for n in honest if n.halted is not None),
        )

    def _check_certificates(self, nodes: list[SimNode]) -> tuple[int, list[str]]:
        """Check every honest node's certificates against the sortition of their rounds."""
        seen: set[tuple[int, bytes, bytes]] = set()
        bad: list[str] = []
        for node in nodes:
            tip = self.genesis
            previous: RoundContext | None = None
            for block, cert in node.chain:
                r = block.round
                ctx = self._context(tip, previous)
                key = (r, block.hash, cert.encode())
                if key not in seen:
                    seen.add(key)
                    try:
                        check_certificate(cert, block, ctx, self.ledger.public_key, self.verifier)
                    except CertificateError as e:
                        bad.append(f"node {node.index} round {r}: {e}")
                tip = tip.after(block, self.params, cert)
                previous = ctx
        return len(seen), bad


def run(config: SimConfig, progress: Callable[[int], None] | None = None) -> SimResult:
    """Build and run one simulation."""
    return Simulation(config).run(progress)


def _digest(tag: bytes, seed: int, index: int) -> bytes:
    return hashlib.sha256(
        b"echorand/sim/" + tag + seed.to_bytes(8, "big") + index.to_bytes(8, "big")
    ).digest()


def _take(order: list[int], stake: list[int], budget: float) -> set[int]:
    """Nodes from `order`, in order, while their total stake stays within `budget`."""
    taken: set[int] = set()
    total = 0
    for i in order:
        if total + stake[i] <= budget + 1e-9:
            taken.add(i)
            total += stake[i]
    return taken
