#!/usr/bin/python3
"""Writes the JWKS document that auth.jwt.jwks_file reads, from PEM keys.

usage: scripts/make-jwks.py [--alg ALG] [--kid KID] KEY.pem [[--alg ALG] [--kid KID] KEY.pem ...]

Each KEY.pem is a public key (or a private key: only its public half is
written). --alg and --kid apply to the key that follows them. The algorithm
defaults to what the key type implies (P-256 ES256, P-384 ES384, P-521 ES512,
Ed25519 EdDSA, RSA RS256; give --alg PS256 etc. for RSA-PSS); the kid defaults
to the key's RFC 7638 thumbprint. Every key gets "use": "sig", and wsgate binds
it to that one algorithm. The document goes to stdout.

Example (an ES256 signing key for your token issuer, its JWKS for wsgate):
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out issuer.key
    scripts/make-jwks.py issuer.key > /etc/wsgate/jwks.json

Needs Debian's python3-cryptography.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

CURVES = {"secp256r1": ("P-256", "ES256", 32), "secp384r1": ("P-384", "ES384", 48),
          "secp521r1": ("P-521", "ES512", 66)}
RSA_ALGS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def int_bytes(n: int, size: int = 0) -> bytes:
    return n.to_bytes(size or max(1, (n.bit_length() + 7) // 8), "big")


def load_public(path: str):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SystemExit(f"make-jwks: cannot read {path}: {e.strerror}")
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        pass
    try:
        return serialization.load_pem_private_key(data, password=None).public_key()
    except (ValueError, TypeError) as e:
        raise SystemExit(f"make-jwks: {path}: not a PEM public or unencrypted private key ({e})")


def jwk_of(path: str, alg: str, kid: str) -> dict:
    key = load_public(path)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in CURVES:
            raise SystemExit(f"make-jwks: {path}: curve {key.curve.name} is not one JWS uses "
                             "(P-256, P-384, P-521)")
        crv, implied, size = CURVES[key.curve.name]
        nums = key.public_numbers()
        jwk = {"kty": "EC", "crv": crv, "x": b64url(int_bytes(nums.x, size)),
               "y": b64url(int_bytes(nums.y, size))}
        required = ("crv", "kty", "x", "y")
        allowed = {implied}
    elif isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        required = ("crv", "kty", "x")
        implied, allowed = "EdDSA", {"EdDSA"}
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise SystemExit(f"make-jwks: {path}: RSA keys under 2048 bits are refused by wsgate")
        nums = key.public_numbers()
        jwk = {"kty": "RSA", "n": b64url(int_bytes(nums.n)), "e": b64url(int_bytes(nums.e))}
        required = ("e", "kty", "n")
        implied, allowed = "RS256", RSA_ALGS
    else:
        raise SystemExit(f"make-jwks: {path}: unsupported key type {type(key).__name__}")
    alg = alg or implied
    if alg not in allowed:
        raise SystemExit(f"make-jwks: {path}: --alg {alg} does not fit this key "
                         f"(use one of {', '.join(sorted(allowed))})")
    # RFC 7638: SHA-256 over the required members, sorted, no whitespace.
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    jwk["kid"] = kid or b64url(hashlib.sha256(canonical.encode()).digest())
    jwk["use"] = "sig"
    jwk["alg"] = alg
    return jwk


def main(argv) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    keys, alg, kid = [], "", ""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--alg", "--kid"):
            if i + 1 >= len(argv):
                raise SystemExit(f"make-jwks: {a} needs a value")
            if a == "--alg":
                alg = argv[i + 1]
            else:
                kid = argv[i + 1]
            i += 2
            continue
        keys.append(jwk_of(a, alg, kid))
        alg, kid = "", ""
        i += 1
    if not keys:
        raise SystemExit("make-jwks: no key file given")
    kids = [k["kid"] for k in keys]
    if len(set(kids)) != len(kids):
        raise SystemExit("make-jwks: two keys share a kid (wsgate refuses such a set)")
    json.dump({"keys": keys}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
