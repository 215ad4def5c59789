"""Secrets at rest: AES-GCM with a key ring, bound to a context, failing loudly."""

import os

import pytest
from django.test import override_settings

from wizard import crypto

OLD_KEY = os.urandom(32)
NEW_KEY = os.urandom(32)
STRANGER_KEY = os.urandom(32)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CONTEXT = "access-key:AKIAIOSFODNN7EXAMPLE"


def test_it_decrypts_what_it_encrypted():
    token = crypto.encrypt(SECRET, context=CONTEXT)

    assert crypto.decrypt(token, context=CONTEXT) == SECRET


def test_it_decrypts_a_token_read_back_as_a_memoryview():
    """Database drivers return BinaryField values as memoryview (PostgreSQL) or bytes (SQLite)."""
    token = crypto.encrypt(SECRET, context=CONTEXT)

    assert crypto.decrypt(memoryview(token), context=CONTEXT) == SECRET


def test_each_encryption_differs_and_hides_the_plaintext():
    first = crypto.encrypt(SECRET, context=CONTEXT)
    second = crypto.encrypt(SECRET, context=CONTEXT)

    assert first != second
    for token in (first, second):
        assert SECRET.encode() not in token
        assert b"wJalrXUtnFEMI" not in token


def test_it_refuses_a_token_moved_to_another_context():
    token = crypto.encrypt(SECRET, context="admin-secret:row-1")

    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, context="admin-secret:row-2")


def test_a_ring_with_the_old_key_second_still_decrypts_old_tokens():
    with override_settings(ENCRYPTION_KEYS=[OLD_KEY]):
        old_token = crypto.encrypt(SECRET, context=CONTEXT)

    with override_settings(ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        assert crypto.decrypt(old_token, context=CONTEXT) == SECRET
        new_token = crypto.encrypt(SECRET, context=CONTEXT)

    with override_settings(ENCRYPTION_KEYS=[NEW_KEY]):
        assert crypto.decrypt(new_token, context=CONTEXT) == SECRET
    with override_settings(ENCRYPTION_KEYS=[OLD_KEY]), pytest.raises(crypto.DecryptionError):
        crypto.decrypt(new_token, context=CONTEXT)


def test_it_says_so_when_the_key_is_not_in_the_ring():
    with override_settings(ENCRYPTION_KEYS=[STRANGER_KEY]):
        token = crypto.encrypt(SECRET, context=CONTEXT)

    with (
        override_settings(ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]),
        pytest.raises(crypto.DecryptionError, match="not in ENCRYPTION_KEYS"),
    ):
        crypto.decrypt(token, context=CONTEXT)


@pytest.mark.parametrize(
    "position",
    [0, 1, 5, 17, -1],
    ids=["version", "key-id", "nonce", "ciphertext", "tag"],
)
def test_it_refuses_a_tampered_token(position):
    token = bytearray(crypto.encrypt(SECRET, context=CONTEXT))
    token[position] ^= 0x01

    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(bytes(token), context=CONTEXT)


@pytest.mark.parametrize("token", [b"", b"\x01", b"\x01" + bytes(20)], ids=["empty", "version-only", "too-short"])
def test_it_refuses_a_damaged_token(token):
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, context=CONTEXT)
