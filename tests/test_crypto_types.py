"""Keys, addresses, Merkle proofs, CIDs, transactions and commits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sharechain.chain.types as chain_types
from sharechain.chain.types import (
    VOTE_PRECOMMIT,
    Block,
    Commit,
    CommitSig,
    Header,
    TxBody,
    Validator,
    ValidatorSet,
    decode_tx,
    sign_tx,
    verify_commit,
    verify_tx_signature,
    vote_sign_bytes,
    weighted_median_time,
)
from sharechain.crypto import (
    SMALL_ORDER_KEYS,
    PrivateKey,
    check_cid,
    cid_of,
    merkle_proof,
    merkle_root,
    parse_address,
    verify,
    verify_merkle_proof,
)
from sharechain.encoding import decode, encode
from sharechain.errors import DecodeError, ShareChainError


def test_address_round_trip_and_errors():
    k = PrivateKey.from_name("alice")
    assert k.bech32.startswith("share1")
    assert parse_address(k.bech32) == k.address
    for bad in ["", "share1xyz", "cosmos1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnrql8a", k.bech32[:-1] + "q"]:
        with pytest.raises(ShareChainError):
            parse_address(bad)


def test_signatures():
    k = PrivateKey.generate()
    sig = k.sign(b"msg")
    assert verify(k.public_key, b"msg", sig)
    assert not verify(k.public_key, b"msh", sig)
    assert not verify(k.public_key, b"msg", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not verify(b"short", b"msg", sig)
    assert not verify(k.public_key, b"msg", sig[:63])
    # Not bytes: converted, or refused without raising.
    assert verify(bytearray(k.public_key), memoryview(b"msg"), bytearray(sig))
    assert not verify(None, b"msg", sig)  # type: ignore[arg-type]
    assert not verify(k.public_key, "msg", sig)  # type: ignore[arg-type]


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.data())
def test_verification_agrees_with_libsodium_on_signed_and_altered_messages(seed, msg, data):
    # The verifier (ed25519-zebra, ZIP 215) accepts a superset of libsodium's signatures
    # that differs only on forms no key pair produces: on real keys both agree exactly.
    import nacl.bindings
    import nacl.exceptions

    def sodium(pk: bytes, m: bytes, s: bytes) -> bool:
        try:
            nacl.bindings.crypto_sign_open(s + m, pk)
            return True
        except (nacl.exceptions.BadSignatureError, ValueError):
            return False

    k = PrivateKey(seed)
    sig = k.sign(msg)
    assert verify(k.public_key, msg, sig) and sodium(k.public_key, msg, sig)
    i = data.draw(st.integers(0, 63))
    bad_sig = sig[:i] + bytes([sig[i] ^ data.draw(st.integers(1, 255))]) + sig[i + 1:]
    bad_msg = msg + b"\x00"
    for m, s in ((msg, bad_sig), (bad_msg, sig)):
        assert verify(k.public_key, m, s) == sodium(k.public_key, m, s) == False  # noqa: E712


def test_small_order_keys_never_verify():
    import ed25519_zebra
    import nacl.bindings

    # The hand-written list is libsodium's: it rejects every entry as a small-order point.
    assert len(SMALL_ORDER_KEYS) == 14
    assert not any(nacl.bindings.crypto_core_ed25519_is_valid_point(k) for k in SMALL_ORDER_KEYS)
    # With the identity as key, R = identity and S = 0 verify under plain ZIP 215 for any
    # message; such a "signature" must not move an account nobody holds a key for.
    identity = bytes([1]) + bytes(31)
    forged = identity + bytes(32)
    assert ed25519_zebra.ed_verify(forged, b"any message", identity)
    for key in SMALL_ORDER_KEYS:
        assert not verify(key, b"any message", key + bytes(32))


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=40), st.data())
def test_merkle_proofs(items, data):
    root = merkle_root(items)
    i = data.draw(st.integers(0, len(items) - 1))
    p = merkle_proof(items, i)
    assert verify_merkle_proof(root, items[i], p)
    assert not verify_merkle_proof(root, items[i] + b"x", p)
    if len(items) > 1:
        j = (i + 1) % len(items)
        if items[j] != items[i]:
            assert not verify_merkle_proof(root, items[j], p)


def test_cid():
    c = cid_of(b"document")
    assert c.startswith("bafk") and check_cid(c) == c
    with pytest.raises(ShareChainError):
        check_cid("not-a-cid")


def _tx(key, chain="c1", nonce=0, msgs=(("bank/send", {"to": b"x" * 20, "amount": 5}),)):
    return sign_tx(TxBody(chain, key.public_key, nonce, 100, 0, msgs), key.sign)


def test_tx_sign_decode_verify():
    k = PrivateKey.from_name("a")
    raw = _tx(k)
    tx = decode_tx(raw)
    assert verify_tx_signature(tx) and tx.sender == k.address
    # flip a byte in the body: either malformed or a bad signature, never valid
    d = decode(raw)
    body = bytearray(d["body"])
    body[-3] ^= 1
    forged = encode({"body": bytes(body), "sig": d["sig"]})
    try:
        ftx = decode_tx(forged)
    except DecodeError:
        return
    assert not verify_tx_signature(ftx)


def test_tx_unknown_field_and_oversize():
    k = PrivateKey.from_name("a")
    d = decode(_tx(k))
    with pytest.raises(DecodeError):
        decode_tx(encode({**d, "extra": 1}))
    with pytest.raises(ShareChainError) as e:
        decode_tx(_tx(k, msgs=(("bank/send", {"pad": b"x" * 70_000}),)))
    assert e.value.code == "tx_too_large"


def _vset(keys, powers):
    return ValidatorSet.of([Validator(k.public_key, p) for k, p in zip(keys, powers)])


def test_commit_needs_more_than_two_thirds():
    keys = [PrivateKey.from_name(f"v{i}") for i in range(4)]
    vs = _vset(keys, [1, 1, 1, 1])
    bh = b"h" * 32

    def commit(signers):
        return Commit(5, 0, bh, tuple(
            CommitSig(k.address, 1000 + i, k.sign(vote_sign_bytes("c", VOTE_PRECOMMIT, 5, 0, bh, 1000 + i)))
            for i, k in enumerate(signers)))

    verify_commit("c", vs, commit(keys[:3]), bh, 5)
    with pytest.raises(ShareChainError):
        verify_commit("c", vs, commit(keys[:2]), bh, 5)
    with pytest.raises(ShareChainError):
        verify_commit("other-chain", vs, commit(keys[:3]), bh, 5)
    c = commit(keys[:3])
    dup = Commit(5, 0, bh, c.sigs[:2] + (c.sigs[0],))
    with pytest.raises(ShareChainError):
        verify_commit("c", vs, dup, bh, 5)
    assert weighted_median_time(vs, c) == 1001


@given(st.binary(max_size=64), st.sampled_from(["raw", "dag-pb", "dag-cbor"]),
       st.sampled_from(["sha2-256", "sha2-512", "blake2b-256"]))
def test_fast_cid_parser_agrees_with_multiformats(data, codec, hashfn):
    from multiformats import CID, multihash

    from sharechain.crypto import parse_cid

    cid = CID("base32", 1, codec, multihash.digest(data, hashfn))
    text = str(cid)
    assert parse_cid(text) == (1, cid.codec.code, cid.hashfun.code, bytes(cid.raw_digest))
    for bad in (text[:-1], text + "a", text.replace("b", "c", 1), text[:1] + "1" + text[2:]):
        try:
            CID.decode(bad)
            ok = True
        except Exception:
            ok = False
        if not ok:
            with pytest.raises(ShareChainError):
                parse_cid(bad)


@given(st.binary(max_size=3000), st.binary(min_size=64, max_size=64))
def test_signed_tx_envelope_fast_path_matches_full_decode(body, sig):
    from sharechain.chain.types import _split_signed_tx

    raw = encode({"body": body, "sig": sig})
    assert _split_signed_tx(raw) == (body, sig)
    assert _split_signed_tx(raw + b"\x00") is None
    assert _split_signed_tx(raw[:-1]) is None if body else True


body_values = st.one_of(st.integers(-5, 2**70), st.text(max_size=5), st.binary(max_size=40),
                        st.booleans(), st.none(), st.lists(st.integers(), max_size=2))


@given(st.dictionaries(st.sampled_from(["chain_id", "signer", "nonce", "fee", "expiry_height",
                                        "msgs", "memo", "extra"]), body_values, max_size=8),
       st.booleans())
def test_fast_body_check_agrees_with_schema(obj, make_valid):
    from sharechain.chain.types import _body_from_obj
    from sharechain.encoding import from_obj

    if make_valid:
        obj = {"chain_id": "c", "signer": b"k" * 32, "nonce": 1, "fee": 2, "expiry_height": 0,
               "msgs": [["bank/send", {"to": b"x"}]], **{k: v for k, v in obj.items() if k == "memo"}}
    try:
        want = from_obj(TxBody, obj, "tx.body")
    except DecodeError as exc:
        with pytest.raises(DecodeError) as got:
            _body_from_obj(obj)
        assert got.value.code == exc.code
    else:
        assert _body_from_obj(obj) == want


plain_or_not = st.recursive(
    st.one_of(st.integers(-(2**64), 2**129), st.text(max_size=3), st.binary(max_size=3),
              st.booleans(), st.none(), st.floats(allow_nan=False, width=32)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6)


@given(st.fixed_dictionaries(
    {"chain_id": st.just("c"), "signer": st.just(b"k" * 32),
     "nonce": st.one_of(st.integers(0, 2**130), st.floats(0, 10, width=32)), "fee": st.just(1),
     "expiry_height": st.integers(0, 2**129),
     "msgs": st.lists(st.tuples(st.just("bank/send"), plain_or_not).map(list), min_size=1,
                      max_size=2)}))
def test_tx_decoding_rejects_what_is_not_plain_data_as_a_full_walk_does(obj):
    # decode_tx walks only the message bodies (the schema types the rest): it must accept
    # and refuse exactly what a walk over the whole body followed by the schema does.
    import cbor2

    from sharechain.chain.types import _body_from_obj

    body_bytes = cbor2.dumps(obj, canonical=True)
    raw = encode({"body": body_bytes, "sig": b"s" * 64})
    try:
        want = _body_from_obj(decode(body_bytes))
    except DecodeError:
        want = None
    if want is None:
        with pytest.raises(DecodeError):
            decode_tx(raw)
    else:
        assert decode_tx(raw).body == want


def test_block_shape_check_is_remembered_only_for_the_same_txs_and_root(monkeypatch):
    txs = tuple(bytes([i]) * 40 for i in range(5))

    def header(root: bytes) -> Header:
        return Header("c", 1, 1, bytes(32), root, bytes(32), bytes(32), bytes(20), bytes(32))

    good = Block(header(merkle_root(list(txs))), txs)
    good.check_shape()
    calls = []
    real = chain_types.merkle_root
    monkeypatch.setattr(chain_types, "merkle_root", lambda items: calls.append(1) or real(items))
    good.check_shape()  # the same block again: remembered
    Block(good.header, txs).check_shape()  # another block object, same txs tuple and root
    assert calls == []
    with pytest.raises(ShareChainError, match="tx_root"):
        Block(header(bytes(32)), txs).check_shape()  # same txs, another root: checked
    with pytest.raises(ShareChainError, match="tx_root"):
        Block(good.header, txs[:4] + (b"x",)).check_shape()  # equal root, other txs
    Block(good.header, tuple(list(txs))).check_shape()  # equal txs in a new tuple: checked
    assert len(calls) == 3
