"""An encrypted keystore: one JSON file per named Ed25519 key.

The 32-byte seed is encrypted with XSalsa20-Poly1305 (libsodium ``secretbox``) under a key
derived from the passphrase with Argon2id (libsodium ``pwhash``, interactive limits by
default). A wrong passphrase fails authentication; the file never holds the seed in clear.
Files are written atomically with mode 0600.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
KEYFILE_VERSION = 1


@dataclass(frozen=True)
class KeyInfo:
    name: str
    address: str
    pub_key: str


class Keystore:
    def __init__(self, path: str | Path, opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                 memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE) -> None:
        self.path = Path(path)
        self.opslimit = opslimit
        self.memlimit = memlimit

    def _file(self, name: str) -> Path:
        if not NAME_RE.match(name):
            raise ShareChainError("invalid_key_name",
                                  "key names use letters, digits, '.', '_' or '-' (1-64 chars)")
        return self.path / f"{name}.json"

    def exists(self, name: str) -> bool:
        return self._file(name).exists()

    def add(self, name: str, passphrase: str, key: PrivateKey | None = None,
            overwrite: bool = False) -> KeyInfo:
        f = self._file(name)
        if f.exists() and not overwrite:
            raise ShareChainError("key_exists", f"a key named {name!r} already exists")
        key = key or PrivateKey.generate()
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        box_key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(),
                                           salt, opslimit=self.opslimit, memlimit=self.memlimit)
        ct = nacl.secret.SecretBox(box_key).encrypt(key.seed)
        doc = {"version": KEYFILE_VERSION, "name": name, "address": key.bech32,
               "pub_key": key.public_key.hex(),
               "kdf": {"alg": "argon2id", "salt": salt.hex(), "opslimit": self.opslimit,
                       "memlimit": self.memlimit},
               "cipher": "xsalsa20poly1305", "ciphertext": bytes(ct).hex()}
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = f.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, f)
        return KeyInfo(name, key.bech32, key.public_key.hex())

    def _doc(self, name: str) -> dict:
        f = self._file(name)
        try:
            return json.loads(f.read_text())
        except FileNotFoundError:
            raise ShareChainError("key_not_found", f"no key named {name!r} in {self.path}") from None
        except json.JSONDecodeError:
            raise ShareChainError("keystore_corrupt", f"key file {f} is not valid JSON") from None

    def info(self, name: str) -> KeyInfo:
        d = self._doc(name)
        return KeyInfo(d["name"], d["address"], d["pub_key"])

    def list(self) -> list[KeyInfo]:
        if not self.path.exists():
            return []
        return [self.info(p.stem) for p in sorted(self.path.glob("*.json"))]

    def load(self, name: str, passphrase: str) -> PrivateKey:
        d = self._doc(name)
        kdf = d["kdf"]
        box_key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(),
                                           bytes.fromhex(kdf["salt"]), opslimit=kdf["opslimit"],
                                           memlimit=kdf["memlimit"])
        try:
            seed = nacl.secret.SecretBox(box_key).decrypt(bytes.fromhex(d["ciphertext"]))
        except nacl.exceptions.CryptoError:
            raise ShareChainError("wrong_passphrase", f"wrong passphrase for key {name!r}") from None
        key = PrivateKey(seed)
        if key.bech32 != d["address"]:
            raise ShareChainError("keystore_corrupt", f"key file for {name!r} does not match its address")
        return key

    def delete(self, name: str) -> None:
        f = self._file(name)
        if not f.exists():
            raise ShareChainError("key_not_found", f"no key named {name!r}")
        f.unlink()

    def resolve_address(self, name_or_address: str) -> bytes:
        """A bech32 address, or the address of a named key."""
        from sharechain.crypto import parse_address

        if name_or_address.startswith("share1"):
            return parse_address(name_or_address)
        return parse_address(self.info(name_or_address).address)

