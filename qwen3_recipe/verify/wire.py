"""Values across the sandbox wall: plain data only, as tagged JSON lines.

The sandboxed candidate returns values to the judge this way, so what the judge compares is data
it built itself: an object whose `__eq__` always says True cannot cross, and nothing is unpickled.
Anything else (a generator, an instance of the candidate's class) arrives as `Opaque`, which
equals nothing. Standalone on purpose: the sandbox runner embeds this file's source.
"""

import json
import math


class Opaque:
    """A value that could not cross as data; equal to nothing (itself included), unequal to
    nothing, and neither true nor false: no test passes on it."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return False

    def __bool__(self):
        raise TypeError("an opaque value (%s) has no truth value" % self.text)

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return "Opaque(%s)" % self.text


def encode(x, depth=0):
    """Plain data. Runs inside the sandbox, so whatever the program's objects do here can only
    change the value the program sends: subclasses of the plain types (Counter, OrderedDict,
    namedtuple, IntEnum) cross as their base type, numpy values as Python ones."""
    if depth > 200:
        return {"o": "too deep"}
    if x is None or isinstance(x, bool):
        return bool(x) if x is not None else None
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, int):
        v = int.__index__(x)
        return v if abs(v) < 1 << 53 else {"i": int.__format__(v, "x")}  # hex: str() refuses 4,300+ digits
    if isinstance(x, float):
        v = float.__float__(x)
        return v if math.isfinite(v) else {"x": float.__repr__(v)}
    if isinstance(x, list):
        return {"l": [encode(v, depth + 1) for v in list.__iter__(x)]}
    if isinstance(x, tuple):
        return {"t": [encode(v, depth + 1) for v in tuple.__iter__(x)]}
    if isinstance(x, (set, frozenset)):
        it = set.__iter__(x) if isinstance(x, set) else frozenset.__iter__(x)
        return {"s" if isinstance(x, set) else "fs": [encode(v, depth + 1) for v in it]}
    if isinstance(x, dict):
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(x)]}
    if isinstance(x, bytes):
        return {"b": bytes.hex(x)}
    if isinstance(x, complex):
        return {"c": [repr(float(x.real)), repr(float(x.imag))]}
    if type(x).__module__ == "numpy" and hasattr(x, "tolist"):
        return encode(x.tolist(), depth + 1)
    try:
        text = object.__repr__(x)
    except Exception:
        text = "?"
    return {"o": "%s %s" % (type(x).__name__, text)[:200]}


def decode(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):  # bare lists only in argument vectors
        return [decode(x) for x in v]
    (tag, body), = v.items()
    if tag == "l":
        return [decode(x) for x in body]
    if tag == "t":
        return tuple(decode(x) for x in body)
    if tag == "s":
        return {decode(x) for x in body}
    if tag == "fs":
        return frozenset(decode(x) for x in body)
    if tag == "d":
        return {decode(k): decode(x) for k, x in body}
    if tag == "i":
        return int(body, 16)
    if tag == "x":
        return float(body)
    if tag == "b":
        return bytes.fromhex(body)
    if tag == "c":
        return complex(float(body[0]), float(body[1]))
    return Opaque(str(body))


def dumps(msg):
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()
