"""echorand.wire.crypto: keys, signed payloads, and verification on known answers."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from nacl.signing import SigningKey

from echorand.wire import constants
from echorand.wire.crypto import (
    KEY_SIZE,
    SEED_SIZE,
    SIGNATURE_SIZE,
    Keypair,
    signing_payload,
    verify,
    verify_batch,
)

# RFC 8032 section 7.1, the Ed25519 test vectors: (name, secret key, public key,
# message, signature). TEST SHA(abc)'s message is SHA-512("abc").
_TEST_1024_MESSAGE = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
    "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
    "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
    "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
    "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
    "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
    "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
    "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
    "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
    "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
    "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
    "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
    "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
    "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
    "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
    "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
    "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
    "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
    "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
    "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0"
)

RFC8032_VECTORS = [
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        _TEST_1024_MESSAGE,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
        "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]

RFC_IDS = [v[0] for v in RFC8032_VECTORS]


def _vector(v: tuple[str, str, str, str, str]) -> tuple[bytes, bytes, bytes, bytes]:
    _, secret, public, message, signature = v
    return tuple(bytes.fromhex(x) for x in (secret, public, message, signature))  # type: ignore[return-value]


def test_rfc8032_vector_sizes() -> None:
    assert len(bytes.fromhex(_TEST_1024_MESSAGE)) == 1023
    assert bytes.fromhex(RFC8032_VECTORS[4][3]) == hashlib.sha512(b"abc").digest()


@pytest.mark.parametrize("vector", RFC8032_VECTORS, ids=RFC_IDS)
def test_rfc8032_keys_and_signatures(vector: tuple[str, str, str, str, str]) -> None:
    secret, public, message, signature = _vector(vector)
    keypair = Keypair.from_seed(secret)
    assert keypair.public_key == public
    assert keypair.seed == secret
    assert keypair.sign(message) == signature  # Ed25519 signing is deterministic


@pytest.mark.parametrize("vector", RFC8032_VECTORS, ids=RFC_IDS)
def test_rfc8032_signatures_verify(vector: tuple[str, str, str, str, str]) -> None:
    _, public, message, signature = _vector(vector)
    assert verify(public, message, signature)
    assert not verify(public, message + b"\x00", signature)
    assert not verify(public, message, signature[:63] + bytes([signature[63] ^ 0x10]))


def test_rfc8032_vectors_verify_as_a_batch() -> None:
    vectors = [_vector(v) for v in RFC8032_VECTORS]
    keys = [v[1] for v in vectors]
    messages = [v[2] for v in vectors]
    signatures = [v[3] for v in vectors]
    assert verify_batch(keys, messages, signatures) == [True] * 5
    # Each signature under the next vector's key: all wrong, each on its own.
    assert verify_batch(keys[1:] + keys[:1], messages, signatures) == [False] * 5
    signatures[2] = signatures[3]
    assert verify_batch(keys, messages, signatures) == [True, True, False, True, True]


def test_sizes_match_constants() -> None:
    assert (KEY_SIZE, SIGNATURE_SIZE, SEED_SIZE) == (32, 64, 32)
    assert constants.KEY_SIZE == KEY_SIZE and constants.SIGNATURE_SIZE == SIGNATURE_SIZE


class TestKeypair:
    def test_from_seed_is_deterministic(self) -> None:
        seed = bytes(range(32))
        assert Keypair.from_seed(seed).public_key == Keypair.from_seed(seed).public_key
        assert Keypair.from_seed(bytearray(seed)).seed == seed
        assert Keypair.from_seed(seed) == Keypair.from_seed(seed)

    def test_generate_gives_distinct_keys(self) -> None:
        keys = {Keypair.generate().public_key for _ in range(8)}
        assert len(keys) == 8

    def test_signatures_verify_under_its_key_only(self) -> None:
        a, b = Keypair.from_seed(b"a" * 32), Keypair.from_seed(b"b" * 32)
        signature = a.sign(b"payload")
        assert len(signature) == SIGNATURE_SIZE
        assert verify(a.public_key, b"payload", signature)
        assert not verify(b.public_key, b"payload", signature)

    def test_public_key_is_that_of_pynacl(self) -> None:
        seed = b"\x07" * 32
        assert Keypair.from_seed(seed).public_key == bytes(SigningKey(seed).verify_key)

    @pytest.mark.parametrize("size", [0, 31, 33, 64])
    def test_seed_of_wrong_length_is_refused(self, size: int) -> None:
        with pytest.raises(ValueError, match=f"seed must be 32 bytes, got {size}"):
            Keypair.from_seed(bytes(size))

    def test_is_frozen(self) -> None:
        keypair = Keypair.from_seed(bytes(32))
        with pytest.raises(dataclasses.FrozenInstanceError):
            keypair.public_key = bytes(32)  # type: ignore[misc]

    def test_repr_shows_no_secret(self) -> None:
        keypair = Keypair.from_seed(b"\xab" * 32)
        assert keypair.public_key.hex() in repr(keypair)
        assert "abab" not in repr(keypair)

    def test_needs_a_signing_key(self) -> None:
        with pytest.raises(TypeError, match=r"signing_key must be a nacl\.signing\.SigningKey"):
            Keypair(bytes(32))  # type: ignore[arg-type]


class TestSigningPayload:
    def test_is_tag_zero_body(self) -> None:
        assert signing_payload(constants.TX_TAG, b"body") == b"echorand/tx\x00body"
        assert signing_payload(constants.SEED_TAG, b"") == b"echorand/seed\x00"

    def test_a_signature_for_one_tag_never_verifies_for_another(self) -> None:
        keypair = Keypair.from_seed(bytes(32))
        tags = [
            constants.SEED_TAG,
            constants.BLOCK_TAG,
            constants.TX_TAG,
            constants.MSG_TAG,
            constants.GC_PROPOSAL_TAG,
            constants.BBA_TAG,
            constants.CERT_TAG,
        ]
        body = b"the same body"
        for signed_tag in tags:
            signature = keypair.sign(signing_payload(signed_tag, body))
            for tag in tags:
                payload = signing_payload(tag, body)
                assert verify(keypair.public_key, payload, signature) == (tag == signed_tag)

    @pytest.mark.parametrize("tag", [b"", b"echorand\x00tx", "echorand/tx€".encode()])
    def test_bad_tags_are_refused(self, tag: bytes) -> None:
        with pytest.raises(ValueError, match="tag must be non-empty ASCII without zero bytes"):
            signing_payload(tag, b"body")


class TestArguments:
    def test_verify_names_a_key_of_wrong_length(self) -> None:
        with pytest.raises(ValueError, match="public_key must be 32 bytes, got 31"):
            verify(bytes(31), b"m", bytes(64))

    @pytest.mark.parametrize("size", [0, 63, 65, 128])
    def test_verify_names_a_signature_of_wrong_length(self, size: int) -> None:
        with pytest.raises(ValueError, match=f"signature must be 64 bytes, got {size}"):
            verify(bytes(32), b"m", bytes(size))

    def test_verify_refuses_what_is_not_bytes(self) -> None:
        with pytest.raises(TypeError, match="message must be bytes-like, not str"):
            verify(bytes(32), "m", bytes(64))  # type: ignore[arg-type]

    def test_bytes_like_arguments_are_accepted(self) -> None:
        keypair = Keypair.from_seed(bytes(32))
        signature = keypair.sign(b"m")
        assert verify(memoryview(keypair.public_key), bytearray(b"m"), bytearray(signature))
        assert verify_batch(
            (bytearray(keypair.public_key),), [memoryview(b"m")], (memoryview(signature),)
        ) == [True]
