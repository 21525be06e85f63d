#!/usr/bin/env python3
"""Sign an auditlog event in Python: the producer side of docs/signing.md.

    python3 examples/sign_event.py --key private.pem --key-id K --tenant T event.json
    python3 examples/sign_event.py --canonical --tenant T event.json   # the signed bytes only

Prints the event with its `signature` added ({"key_id", "alg", "value"}), ready to POST to
/v1/events. The key is a PKCS#8 PEM private key: Ed25519 (`openssl genpkey -algorithm
ed25519`, or `auditlog signing-key generate`) or ECDSA P-256. Needs the `cryptography` package.

The signed bytes are RFC 8785 (JCS) canonical JSON of the event as the gateway completes it:
  - without `received_at`, `signature`, `leaf_index` and `verified`;
  - `tenant_id` set to the tenant the event is sent for (it comes from the credentials);
  - `occurred_at` in UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ (exactly six fractional digits);
  - defaults filled in: `targets` [], `outcome` "unknown", `severity` "info", `actor.type` "user";
  - null members removed (outside `metadata`, whose JSON is kept as sent).
Everything else is JCS: members sorted by UTF-16 code units, no whitespace, minimal string
escapes, numbers as ECMAScript prints doubles, UTF-8.
"""

import argparse
import base64
import datetime
import decimal
import json
import math
import re
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

UNSIGNED_FIELDS = ("received_at", "signature", "leaf_index", "verified")
DEFAULTS = {"targets": [], "outcome": "unknown", "severity": "info"}
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


# --- RFC 8785 (JSON Canonicalization Scheme) -------------------------------------------

def jcs_number(x):
    """A number as ECMAScript's Number.prototype.toString prints it (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, int) and abs(x) <= 2**53:
        return str(x)
    x = float(x)  # JSON numbers are IEEE 754 doubles in JCS
    if not math.isfinite(x):
        raise ValueError("JSON has no NaN or infinity")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + jcs_number(-x)
    # repr gives the shortest digits that round-trip, as ECMAScript does.
    _, digit_tuple, exponent = decimal.Decimal(repr(x)).as_tuple()
    all_digits = "".join(map(str, digit_tuple))
    digits = all_digits.rstrip("0")
    exponent += len(all_digits) - len(digits)
    k, n = len(digits), exponent + len(digits)  # x = 0.digits * 10^n, k significant digits
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def jcs_string(s):
    out = []
    for c in s:
        if c in ESCAPES:
            out.append(ESCAPES[c])
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def jcs(value):
    """The RFC 8785 canonical form of a JSON value, as text (encode it as UTF-8)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return jcs_number(value)
    if isinstance(value, str):
        return jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        # Members sorted by the UTF-16 code units of their names.
        names = sorted(value, key=lambda name: name.encode("utf-16-be"))
        return "{" + ",".join(jcs_string(n) + ":" + jcs(value[n]) for n in names) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


# --- The event as the gateway completes it ---------------------------------------------

def canonical_timestamp(text):
    """An RFC 3339 timestamp in UTC with exactly six fractional digits (extra digits dropped)."""
    m = RFC3339.match(text)
    if not m:
        raise ValueError(f"occurred_at {text!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    micros = int((fraction or "").ljust(6, "0")[:6])
    at = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros)
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        at -= sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}Z"


def without_nulls(obj):
    return {k: v for k, v in obj.items() if v is not None}


def signed_object(event, tenant):
    """The object whose canonical form is signed."""
    if not isinstance(event, dict):
        raise ValueError("an event is a JSON object")
    for field in ("id", "occurred_at"):
        if event.get(field) is None:
            raise ValueError(f"a signed event carries its own {field}")
    if event.get("tenant_id") not in (None, tenant):
        raise ValueError(f"tenant_id {event['tenant_id']!r} is not the tenant {tenant!r}")
    signed = without_nulls({k: v for k, v in event.items() if k not in UNSIGNED_FIELDS})
    signed["tenant_id"] = tenant
    signed["occurred_at"] = canonical_timestamp(signed["occurred_at"])
    for field, default in DEFAULTS.items():
        signed.setdefault(field, default)
    signed["actor"] = without_nulls(signed.get("actor") or {})
    signed["actor"].setdefault("type", "user")
    signed["targets"] = [without_nulls(t) for t in signed["targets"]]
    for field in ("source", "context"):
        if field in signed:
            signed[field] = without_nulls(signed[field])
    return signed


def signed_bytes(event, tenant):
    return jcs(signed_object(event, tenant)).encode("utf-8")


# --- Signing ---------------------------------------------------------------------------

def sign(message, private_key):
    """(alg, 64-byte signature) for the key: Ed25519, or ECDSA P-256 as r || s (not DER)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519", private_key.sign(message)
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
        return "ecdsa-p256-sha256", r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise ValueError("the key is neither Ed25519 nor ECDSA P-256")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("event", help="event JSON file, or - for stdin")
    parser.add_argument("--tenant", required=True, help="tenant the event is sent for (part of the signed bytes)")
    parser.add_argument("--key", help="PKCS#8 PEM private key file")
    parser.add_argument("--key-id", help="the key's id in the tenant's signing-key registry")
    parser.add_argument("--canonical", action="store_true", help="print the signed bytes instead of signing")
    args = parser.parse_args()

    text = sys.stdin.read() if args.event == "-" else open(args.event, encoding="utf-8").read()
    event = json.loads(text)
    message = signed_bytes(event, args.tenant)
    if args.canonical:
        sys.stdout.buffer.write(message)
        return
    if not (args.key and args.key_id):
        parser.error("--key and --key-id are required to sign")
    with open(args.key, "rb") as f:
        private_key = serialization.load_pem_private_key(f.read(), password=None)
    alg, value = sign(message, private_key)
    event["signature"] = {"key_id": args.key_id, "alg": alg, "value": base64.b64encode(value).decode("ascii")}
    print(json.dumps(event, ensure_ascii=False))


if __name__ == "__main__":
    main()
