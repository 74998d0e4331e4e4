"""The domain tags and sizes of the signed payloads (every signature is over
`tag || 0x00 || genesis_hash || body`, PROTOCOL §2).

Shared by the codec's facade, the crypto, the protocol's rules and the network handshake.
"""

SEED_TAG = b"echorand/seed"
BLOCK_TAG = b"echorand/block"
TX_TAG = b"echorand/tx"
MSG_TAG = b"echorand/msg"
GC_PROPOSAL_TAG = b"echorand/gc_proposal"
BBA_TAG = b"echorand/bba"
CERT_TAG = b"echorand/cert"
FINAL_TAG = b"echorand/final"
HANDSHAKE_TAG = b"echorand/handshake"

HASH_SIZE = 32
KEY_SIZE = 32
SIGNATURE_SIZE = 64
