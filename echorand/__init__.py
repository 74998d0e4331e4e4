"""echorand: a node for the EchoRand consensus protocol, with a Rust core."""

__version__ = "0.1.0"
