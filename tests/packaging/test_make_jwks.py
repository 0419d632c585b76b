"""scripts/make-jwks.py (the README's hardened configuration) makes a JWKS that
wsgate-echo loads and verifies real tokens against: ES256, EdDSA, RS256 and
PS256 keys generated here with openssl; a token from another key gets 401."""

import asyncio
import base64
import json
import os
import subprocess
import sys
import time

import pytest
import websockets
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "make-jwks.py")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl_key(path, *algorithm):
    subprocess.run(["openssl", "genpkey", *algorithm, "-out", str(path)], check=True,
                   capture_output=True, timeout=60)
    return path


def make_jwks(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def sign(key_path, alg, kid, claims):
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    header = b64url(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    if alg == "ES256":
        r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "EdDSA":
        sig = key.sign(signing_input)
    elif alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:  # PS256
        sig = key.sign(signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                  salt_length=32), hashes.SHA256())
    return f"{header}.{payload}.{b64url(sig)}"


async def try_connect(url, token):
    try:
        async with websockets.connect(url, extra_headers={"Authorization": f"Bearer {token}"},
                                      open_timeout=5) as ws:
            await ws.send("hi")
            return await asyncio.wait_for(ws.recv(), 5)
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


@pytest.fixture
def keys(tmp_path):
    return {
        "ES256": openssl_key(tmp_path / "es.key", "-algorithm", "EC", "-pkeyopt",
                             "ec_paramgen_curve:P-256"),
        "EdDSA": openssl_key(tmp_path / "ed.key", "-algorithm", "ED25519"),
        "RS256": openssl_key(tmp_path / "rsa.key", "-algorithm", "RSA", "-pkeyopt",
                             "rsa_keygen_bits:2048"),
    }


def test_jwks_from_keys_verifies_tokens(start_echo, keys, tmp_path):
    # The RSA key twice: RS256 by default and PS256 under its own kid.
    r = make_jwks(keys["ES256"], keys["EdDSA"], keys["RS256"], "--alg", "PS256", "--kid",
                  "rsa-pss", keys["RS256"])
    assert r.returncode == 0, r.stderr
    jwks = json.loads(r.stdout)
    by_alg = {k["alg"]: k for k in jwks["keys"]}
    assert set(by_alg) == {"ES256", "EdDSA", "RS256", "PS256"}
    assert all(k["use"] == "sig" for k in jwks["keys"])
    assert by_alg["PS256"]["kid"] == "rsa-pss"
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(r.stdout)

    echo = start_echo("--set", "auth.mode=jwt", "--set", f"auth.jwt.jwks_file={jwks_file}",
                      "--set", "auth.jwt.algorithms=ES256,EdDSA,RS256,PS256")
    claims = {"sub": "alice", "exp": int(time.time()) + 300}
    for alg, key in (("ES256", keys["ES256"]), ("EdDSA", keys["EdDSA"]),
                     ("RS256", keys["RS256"]), ("PS256", keys["RS256"])):
        token = sign(key, alg, by_alg[alg]["kid"], claims)
        assert asyncio.run(try_connect(echo.url, token)) == "hi", alg
    # A key the JWKS does not hold, under a kid it does: refused.
    other = openssl_key(tmp_path / "other.key", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256")
    forged = sign(other, "ES256", by_alg["ES256"]["kid"], claims)
    assert asyncio.run(try_connect(echo.url, forged)) == 401


def test_public_key_file_and_thumbprint_kid(keys, tmp_path):
    pub = tmp_path / "es.pub"
    subprocess.run(["openssl", "pkey", "-in", str(keys["ES256"]), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True, timeout=60)
    from_private, from_public = make_jwks(keys["ES256"]), make_jwks(pub)
    assert from_private.returncode == 0 and from_public.returncode == 0
    a, b = json.loads(from_private.stdout)["keys"][0], json.loads(from_public.stdout)["keys"][0]
    assert a == b, "the private key's public half and the public key give one JWK"
    # RFC 7638 thumbprint: base64url SHA-256, 43 characters.
    assert len(a["kid"]) == 43 and "d" not in a


@pytest.mark.parametrize("args,message", [
    (["--alg", "RS256", "KEY:ES256"], "does not fit this key"),
    (["KEY:ES256", "KEY:ES256"], "share a kid"),
    (["/nonexistent.pem"], "make-jwks: cannot read /nonexistent.pem: No such file"),
    ([], "usage"),
])
def test_refusals_say_why(keys, tmp_path, args, message):
    argv = [keys[a[4:]] if str(a).startswith("KEY:") else a for a in args]
    r = make_jwks(*argv)
    assert r.returncode != 0
    assert message in r.stderr + r.stdout, r.stderr
    assert "Traceback" not in r.stderr


def test_small_rsa_key_refused(tmp_path):
    small = openssl_key(tmp_path / "small.key", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:1024")
    r = make_jwks(small)
    assert r.returncode != 0 and "2048" in r.stderr
