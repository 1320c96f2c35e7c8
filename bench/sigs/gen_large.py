#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write a large, reproducible ClamAV body-signature set (.ndb).

The feature mix follows what tests/data/sigs-and-mail.md measured in the
123 834 subsignatures of an official ClamAV main.ldb: per signature,
85.7 % pure literal hex, 13.1 % with {n}, 0.72 % {-n}, 0.49 % ??,
0.14 % {n-m}, 0.12 % alternatives (28 % of them multi-byte), 0.11 % *,
0.06 % nibbles, 0.015 % {n-}. Literal bytes are drawn like the content of
executables and scripts (a third printable ASCII, a sixth zero bytes, the
rest any byte), 6 to 64 bytes a static part, so the set neither matches
everything nor nothing. Every signature has target type 0 and offset *.
The same seed always writes the same file.

    gen_large.py [-n COUNT] [--seed S] -o OUT.ndb      (default 98129, seed 1)
"""
import argparse
import random

# (feature, weight) from the main.ldb subsignature counts
MIX = [
    ("literal", 106072), ("n", 16175), ("minus_n", 896), ("anybyte", 603),
    ("n_m", 179), ("alt", 110), ("alt_multi", 42), ("star", 138),
    ("nibble", 75), ("n_plus", 18),
]


def literal(rng, lo=6, hi=64):
    n = rng.randint(lo, hi)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 1 / 3:
            b = rng.randint(0x20, 0x7e)
        elif r < 0.5:
            b = 0
        else:
            b = rng.randint(0, 255)
        out.append("%02x" % b)
    return "".join(out)


def two(rng, joiner):
    return literal(rng, 4, 32) + joiner + literal(rng, 4, 32)


def make(rng, feature):
    if feature == "literal":
        return literal(rng)
    if feature == "n":
        return two(rng, "{%d}" % rng.randint(1, 64))
    if feature == "minus_n":
        return two(rng, "{-%d}" % rng.randint(2, 128))
    if feature == "n_plus":
        return two(rng, "{%d-}" % rng.randint(1, 32))
    if feature == "n_m":
        a = rng.randint(0, 32)
        return two(rng, "{%d-%d}" % (a, a + rng.randint(1, 96)))
    if feature == "star":
        return two(rng, "*")
    if feature == "anybyte":
        return two(rng, "??" * rng.randint(1, 4))
    if feature == "nibble":
        h = "%x" % rng.randint(0, 15)
        return two(rng, h + "?" if rng.random() < 0.5 else "?" + h)
    if feature == "alt":
        alts = "|".join("%02x" % rng.randint(0, 255) for _ in range(rng.randint(2, 4)))
        return two(rng, "(" + alts + ")")
    if feature == "alt_multi":
        alts = "|".join(literal(rng, 2, 6) for _ in range(rng.randint(2, 3)))
        return two(rng, "(" + alts + ")")
    raise ValueError(feature)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=98129)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    names = [f for f, _ in MIX]
    weights = [w for _, w in MIX]
    with open(a.o, "w") as f:
        for i in range(a.n):
            feat = rng.choices(names, weights)[0]
            f.write("Moray.Large.%s-%d:0:*:%s\n" % (feat, i, make(rng, feat)))


if __name__ == "__main__":
    main()
