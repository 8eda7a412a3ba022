"""ShareChain Python SDK.

    from sharechain.client import Client
    from sharechain.crypto import PrivateKey
    c = Client("http://127.0.0.1:8700")
    alice = PrivateKey.from_name("alice")          # or a key from the keystore
    res = c.send(alice, "share1...", 25)           # signs, submits, waits for commit
    value = c.state(key, verify=True)              # proven against a committed header
"""

from sharechain.client.client import Client, TxFailed

__all__ = ["Client", "TxFailed"]
