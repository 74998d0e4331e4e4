"""A deterministic simulator: many nodes running the real consensus core in one process.

The clock, the network (per-link latency, loss, partitions), crashes and
Byzantine behaviours are simulated; signatures, sortition and the core are
real. One seed reproduces a run exactly.
"""

from echorand.sim.simulation import SimConfig, SimResult, Simulation, run

__all__ = ["SimConfig", "SimResult", "Simulation", "run"]
