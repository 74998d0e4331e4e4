"""The chain on disk: the LMDB ledger, the genesis, the mempool."""
