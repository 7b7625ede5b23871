"""Values across the sandbox wall: plain data only, as tagged JSON lines.

The sandboxed candidate returns values to the judge this way, so what the judge compares is data
it built itself: an object whose `__eq__` always says True cannot cross, and nothing is unpickled.
Anything else (a generator, an instance of the candidate's class) arrives as `Opaque`, which
equals nothing. Standalone on purpose: the sandbox runner embeds this file's source.
"""

import json
import math


class Opaque:
    """A value that could not cross as data; equal to nothing, itself included."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return False

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return "Opaque(%s)" % self.text


def encode(x, depth=0):
    if depth > 200:
        return {"o": "too deep"}
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if abs(x) < 1 << 53 else {"i": str(x)}
    if t is float:
        return x if math.isfinite(x) else {"x": repr(x)}
    if t is list:
        return {"l": [encode(v, depth + 1) for v in x]}
    if t is tuple:
        return {"t": [encode(v, depth + 1) for v in x]}
    if t in (set, frozenset):
        return {"s" if t is set else "fs": [encode(v, depth + 1) for v in x]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    if t is bytes:
        return {"b": x.hex()}
    if t is complex:
        return {"c": [repr(x.real), repr(x.imag)]}
    try:
        text = object.__repr__(x)
    except Exception:
        text = "?"
    return {"o": "%s %s" % (t.__name__, text)[:200]}


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
        return int(body)
    if tag == "x":
        return float(body)
    if tag == "b":
        return bytes.fromhex(body)
    if tag == "c":
        return complex(float(body[0]), float(body[1]))
    return Opaque(str(body))


def dumps(msg):
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()
