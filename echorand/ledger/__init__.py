"""The chain on disk: the LMDB ledger, the genesis, the mempool.

| module          | its job                                                                |
|-----------------|------------------------------------------------------------------------|
| `ledger.py`     | `Ledger`: the one object the rest of the package holds, over these:    |
| `store.py`      | the LMDB environment: its databases, the format, write transactions    |
| `directory.py`  | the data directory: empty or a sound ledger of this genesis, locked    |
| `chain.py`      | the head (tip, hash, seed, reward level, ...) and the blocks read back |
| `transition.py` | the genesis written, a certified block checked and applied, undone     |
| `history.py`    | the stake tables and delegates of the rounds the ledger can reach      |
| `finals.py`     | the last final round and the final certificates                        |
| `signed.py`     | this node's signed messages, durable before they leave                 |
| `genesis.py`    | the genesis: genesis.json, accounts.bin, its hash                      |
| `mempool.py`    | the transactions waiting for a block                                   |
"""
