"""An adversarial scheduler: the network as the adversary would run it beyond the timing
assumption (docs/protocol.md §10), choosing which messages each node gets, and when.

`SplitDecision` is the asynchrony case of issue 2/8, in one round `R`. The honest nodes are a
*decider* group (a small one), the rest of group A, and a group B of about a quarter of the
stake; the Byzantine nodes (about a fifth) follow the protocol except in round `R`.

- Step 3 of round `R`: every step-3 vote to a node of B is held back past its timers, so B
  ends graded consensus on the empty value while A has the block `v`.
- Step 4: A votes `b = 0` for `v`; the Byzantine nodes send their `b = 0` votes to the
  deciders only, and every step-4 vote to an honest node outside the deciders is held back.
  The deciders see more than `t_h` for `v` and decide it at once.
- Steps 5 and later: the Byzantine nodes vote `b = 1` (the empty block) to everyone; the
  undecided honest nodes, without the step-4 quorum, run BBA on their timers and certify the
  empty block at step 8.
- Until every other honest node has committed round `R`, everything the deciders send them
  (messages, and answers to sync and fetch requests) is held back too: the deciders'
  certificate would otherwise reach them by sync.

The deciders hold `v`, everyone else the empty block: a fork, whose blocks are tentative (the
deciders' final votes weigh less than `t_f`; the others decided after step 5). When the held
votes arrive they are of a finished round; the nodes of the two chains meet in round `R + 1`
and the fork choice (`echorand.protocol.forks`) heals it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from echorand.wire.messages import (
    BbaSignature,
    BbaSubstitute,
    ConsensusMessage,
    FinalVote,
    GcProposal,
    GcSubstitute,
)

ADVERSARIES = ("split-decision",)


@dataclass(slots=True)
class SplitDecision:
    """Which node is in which group, and how long held messages are held."""

    round: int
    deciders: frozenset[int]
    group_b: frozenset[int]
    byzantine: frozenset[int]
    hold_ms: int
    open: bool = True
    """Whether the attack goes on: until every other honest node has committed round R."""
    held: int = 0
    """Messages held back so far."""
    released_ms: int = field(default=0)
    """When the last held message is delivered: the network is fair again after it."""

    def delay_ms(self, msg: ConsensusMessage, src: int, dst: int, now_ms: int) -> int:
        """The extra delay of `msg` on its way from node `src` to node `dst`."""
        if not self.open or dst in self.byzantine:
            return 0
        step3 = isinstance(msg, GcProposal | GcSubstitute) and msg.step == 3
        step4 = isinstance(msg, BbaSignature | BbaSubstitute) and msg.step == 4
        in_round = msg.round == self.round
        held = (
            (in_round and step3 and dst in self.group_b)
            or (in_round and step4 and dst not in self.deciders)
            or (msg.round >= self.round and self.link_held(src, dst))
        )
        return self._hold(now_ms) if held else 0

    def link_delay_ms(self, src: int, dst: int, now_ms: int) -> int:
        """The extra delay of an answer (sync, fetch) from `src` to `dst`."""
        return self._hold(now_ms) if self.open and self.link_held(src, dst) else 0

    def link_held(self, src: int, dst: int) -> bool:
        return src in self.deciders and dst not in self.deciders and dst not in self.byzantine

    def _hold(self, now_ms: int) -> int:
        self.held += 1
        self.released_ms = max(self.released_ms, now_ms + self.hold_ms)
        return self.hold_ms

    def byzantine_targets(self, msg: ConsensusMessage) -> tuple[int, ...] | str | None:
        """Where a Byzantine node sends its own `msg` in round `R`: the deciders only (its
        step-4 votes), nobody (its final votes), "empty" (its later votes become `b = 1`
        votes for the empty block), or None (everyone, as the protocol says)."""
        if msg.round != self.round:
            return None
        if isinstance(msg, FinalVote):
            return ()
        if isinstance(msg, BbaSignature | BbaSubstitute):
            return tuple(sorted(self.deciders)) if msg.step == 4 else "empty"
        return None
