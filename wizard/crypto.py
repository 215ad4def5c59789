"""Encryption of secrets at rest: AES-256-GCM with a key ring from settings.ENCRYPTION_KEYS.

A token is: version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext with tag.
The key id lets the ring hold old keys after a new one is put first. The caller passes a
`context` (for example the row's code) bound in as associated data, so a ciphertext copied
onto another row does not decrypt.
"""

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

VERSION = b"\x01"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """The token cannot be decrypted with any key in the ring: wrong key, tampering or damage."""


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:4]


def encrypt(plaintext: str, *, context: str) -> bytes:
    key = settings.ENCRYPTION_KEYS[0]
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
    return VERSION + _key_id(key) + nonce + ciphertext


def decrypt(token: bytes, *, context: str) -> str:
    token = bytes(token)
    if len(token) < 1 + 4 + NONCE_BYTES + 16 or token[:1] != VERSION:
        raise DecryptionError("The encrypted value is damaged or of an unknown format.")
    key_id, nonce, ciphertext = token[1:5], token[5 : 5 + NONCE_BYTES], token[5 + NONCE_BYTES :]
    keys = [key for key in settings.ENCRYPTION_KEYS if _key_id(key) == key_id]
    if not keys:
        raise DecryptionError(
            "The value was encrypted with a key that is not in ENCRYPTION_KEYS; put the old key back after the new one."
        )
    try:
        return AESGCM(keys[0]).decrypt(nonce, ciphertext, context.encode()).decode()
    except InvalidTag as error:
        raise DecryptionError("The encrypted value failed its integrity check.") from error
