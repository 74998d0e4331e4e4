"""The peer-to-peer network: transport and peers, gossip de-duplication, block sync."""
