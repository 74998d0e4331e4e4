"""The protocol's rules, as pure functions and small values: parameters, seeds, sortition,
the committee of a round, proposers and the leader order, vote counting, certificates,
finality, delegation, incentives, the fork choice, committee security. Imports only `wire`."""
