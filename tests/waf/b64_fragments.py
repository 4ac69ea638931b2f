#!/usr/bin/env python3
"""Prints the base64 fragments chat-policy.conf rule 41130 looks for.

A phrase encoded in base64 inside a longer blob can start at any of three byte
alignments; at each, only the characters that depend on the phrase alone are stable.
This prints those stable runs (for the lower-case and capitalised phrase) so the rule
can find an encoded instruction anywhere in a prompt with one @pm, without decoding
every word. Run it and paste the output into the rule when the phrase list changes.
"""
import base64

PHRASES = [
    "ignore all previous",
    "ignore previous instructions",
    "ignore the above",
    "ignore all prior",
    "disregard all",
    "disregard previous",
    "previous instructions",
    "system prompt",
    "do anything now",
    "developer mode",
    "jailbreak",
    "you are now",
    "reveal your",
]


def stable(phrase: bytes, offset: int) -> str:
    runs = []
    for pre in (b"\x00" * offset, b"\xff" * offset):
        for post in (b"\x00\x00", b"\xff\xff"):
            runs.append(base64.b64encode(pre + phrase + post).decode())
    n = min(len(r) for r in runs)
    same = [all(r[i] == runs[0][i] for r in runs) for i in range(n)]
    best, cur, start, best_start = 0, 0, 0, 0
    for i, s in enumerate(same):
        if s:
            if cur == 0:
                start = i
            cur += 1
            if cur > best:
                best, best_start = cur, start
        else:
            cur = 0
    return runs[0][best_start : best_start + best]


def fragments():
    out = []
    for p in PHRASES:
        for variant in {p, p[0].upper() + p[1:]}:
            for offset in range(3):
                f = stable(variant.encode(), offset)
                if len(f) >= 10 and f not in out:
                    out.append(f)
    return out


if __name__ == "__main__":
    print(" ".join(fragments()))
