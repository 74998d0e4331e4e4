"""`echorand chaos`: real nodes on separate network hosts under injected faults, with a
Jepsen-style history and checker (docs/reliability.md).

- `hosts`: one network namespace per node, joined by a bridge; link, cut, throttle and
  full-disk faults.
- `cluster`: the node processes on those hosts (the devnet's, placed there), supervised.
- `nemesis`: the seeded fault schedule and its execution.
- `client`: transfers at a steady rate through the HTTP API, every request and answer
  recorded; the monitor of every node's tip.
- `checker`: the verdict on the history and the nodes' ledgers.
- `report`: the table, the JSON and the timeline plot.
- `command`: `echorand chaos` itself.
"""
