"""The bytes on the wire and on disk: the native codec's facade (`messages`), transactions,
Ed25519 and the ECVRF (`crypto`, `vrf`), key files (`keys`, `seal`). Imports nothing above it."""
