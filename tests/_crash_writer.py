"""Applies blocks to a ledger in a loop until killed (for the SIGKILL test).

Usage: python _crash_writer.py GENESIS_DIR LEDGER_DIR

Prints "open <tip>" once the ledger is open, then "committed <round>" after
each block's commit. Blocks are deterministic in the round and the state:
transfers between the devnet's accounts, some creating new accounts, and an
empty block every fifth round.
"""

from __future__ import annotations

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _chain import certificate, proposed_block

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger
from echorand.tools.genesis import node_keys_path
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import Block
from echorand.wire.transactions import transfer

TXS_PER_BLOCK = 40


def next_block(ledger: Ledger, keypairs: list[Keypair]) -> Block:
    r = ledger.tip + 1
    if r % 5 == 0:
        return Block.empty(r, ledger.tip_hash)
    n = len(keypairs)
    txs = []
    for j in range(TXS_PER_BLOCK):
        sender = (r * TXS_PER_BLOCK + j) % n
        if j % 4 == 0:
            seed = hashlib.sha256(b"crash-new %d %d" % (r, j)).digest()
            recipient = Keypair.from_seed(seed).public_key
        else:
            recipient = keypairs[(sender + 1 + j) % n].public_key
        nonce = ledger.state.nonce(sender)
        amount = 1 + (r + j) % 97
        txs.append(
            transfer(
                keypairs[sender],
                recipient,
                amount,
                fee=(r + j) % 5,
                nonce=nonce,
                chain=ledger.genesis.hash,
            )
        )
    producer = r % n
    carried = ledger.certificate_to_carry()
    kp = keypairs[producer]
    chain = ledger.genesis.hash
    return proposed_block(
        r, ledger.tip_hash, ledger.tip_seed, producer, kp, txs, carried, chain=chain
    )


def main(genesis_dir: str, ledger_dir: str) -> None:
    genesis = Genesis.load(genesis_dir)
    keys = load_node_keys(node_keys_path(genesis_dir, 0))
    keypairs = [kp for _, kp in keys.keypairs()]
    signers = list(enumerate(keypairs[:3]))
    ledger = Ledger.open(ledger_dir, genesis)
    print("open", ledger.tip, flush=True)
    while True:
        block = next_block(ledger, keypairs)
        ledger.apply(block, certificate(block, signers, chain=genesis.hash))
        print("committed", block.round, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
