"""The multiformats the credential uses: base58btc and base64url multibase, and the Ed25519 multicodec.

Multibase puts one character before an encoding to name it (`z` base58btc, `u` base64url without padding);
multicodec puts a varint before key bytes to name the key type (0xed for an Ed25519 public key, written
`0xed 0x01`). A Multikey public key is therefore `z` + base58btc(0xed 0x01 + 32 key bytes), which always
begins `z6Mk`.
"""

from __future__ import annotations

import base64
import binascii

from grader.credentials.errors import MalformedCredential

_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: value for value, char in enumerate(_BASE58_ALPHABET)}

ED25519_PUBLIC_KEY_PREFIX = b"\xed\x01"
ED25519_PUBLIC_KEY_LENGTH = 32


def base58btc_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    encoded = ""
    while number:
        number, remainder = divmod(number, 58)
        encoded = _BASE58_ALPHABET[remainder] + encoded
    # Leading zero bytes carry no value in the integer, so base58 spells each one as "1".
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + encoded


def base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _BASE58_INDEX:
            raise MalformedCredential(f"{char!r} is not a base58btc character", details={"value": text[:80]})
        number = number * 58 + _BASE58_INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * leading_zeros + body


def multibase_base58btc(data: bytes) -> str:
    return "z" + base58btc_encode(data)


def multibase_base64url(data: bytes) -> str:
    return "u" + base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def multibase_decode(text: str) -> bytes:
    """Decode a multibase string in base58btc (`z`) or base64url without padding (`u`)."""
    if not text:
        raise MalformedCredential("an empty string is not multibase")
    prefix, body = text[0], text[1:]
    if prefix == "z":
        return base58btc_decode(body)
    if prefix == "u":
        if "=" in body:
            raise MalformedCredential("base64url multibase must not be padded")
        try:
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as error:
            raise MalformedCredential("the value is not valid base64url") from error
    raise MalformedCredential(
        f"multibase prefix {prefix!r} is not supported (only 'z' base58btc and 'u' base64url)"
    )


def ed25519_multikey(public_key: bytes) -> str:
    """The Multikey `publicKeyMultibase` of a raw 32-byte Ed25519 public key (`z6Mk…`)."""
    if len(public_key) != ED25519_PUBLIC_KEY_LENGTH:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return multibase_base58btc(ED25519_PUBLIC_KEY_PREFIX + public_key)


def ed25519_public_key_from_multikey(multikey: str) -> bytes:
    """The raw Ed25519 public key named by a Multikey, refusing any other key type."""
    if not multikey.startswith("z"):
        raise MalformedCredential("an Ed25519 Multikey is base58btc multibase and starts with 'z'")
    decoded = base58btc_decode(multikey[1:])
    if not decoded.startswith(ED25519_PUBLIC_KEY_PREFIX):
        raise MalformedCredential("the Multikey is not an Ed25519 public key (multicodec 0xed01)")
    public_key = decoded[len(ED25519_PUBLIC_KEY_PREFIX) :]
    if len(public_key) != ED25519_PUBLIC_KEY_LENGTH:
        raise MalformedCredential("the Multikey does not hold a 32-byte Ed25519 public key")
    return public_key
