#!/usr/bin/env python3
"""Fails when two top-level modules of one crate depend on each other (issue 12: "no
module cycle in the host, the components or the crates").

A module is a file or directory directly under a crate's `src/`; it depends on another
when its non-test code names it through `crate::` (paths and `use crate::{...}` groups)
or, for a file directly under `src/`, through `super::`. Text-based, not a compiler
pass: it reads what the code says, without `//` comments and before `#[cfg(test)] mod` (the
crate's convention puts test modules last), so a dependency written through a macro or
a glob re-export would be missed. Usage: .ci/check-module-cycles.py [workspace root]
"""
import itertools
import pathlib
import re
import sys


def code(path):
    text = path.read_text()
    # The test module, which by the crate's convention comes last (a lone `#[cfg(test)]`
    # item elsewhere in the file does not end the code).
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\b", text)
    if cut:
        text = text[: cut.start()]
    return re.sub(r"//.*", "", text)


def graph(src):
    files = {}
    for f in src.rglob("*.rs"):
        parts = f.relative_to(src).parts
        top = parts[0][:-3] if len(parts) == 1 else parts[0]
        if top not in ("lib", "main"):
            files.setdefault(top, []).append(f)
    deps = {m: set() for m in files}
    for m, paths in files.items():
        for f in paths:
            text = code(f)
            names = re.findall(r"\bcrate::(\w+)", text)
            for group in re.findall(r"\bcrate::\{([^}]*)\}", text, re.S):
                names += re.findall(r"(?:^|,)\s*(\w+)", group)
            if len(f.relative_to(src).parts) == 1:
                names += re.findall(r"\bsuper::(\w+)", text)
            deps[m].update(n for n in names if n in deps and n != m)
    return deps


def reaches(deps, start, goal):
    seen, stack = set(), [start]
    while stack:
        n = stack.pop()
        if n == goal:
            return True
        if n not in seen:
            seen.add(n)
            stack.extend(deps[n])
    return False


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    found = False
    crates = 0
    for manifest in sorted(root.glob("**/Cargo.toml")):
        if {"target", ".sdk", "node_modules"} & set(manifest.parts):
            continue
        src = manifest.parent / "src"
        if not src.is_dir():
            continue
        crates += 1
        deps = graph(src)
        for a, b in itertools.combinations(sorted(deps), 2):
            if reaches(deps, a, b) and reaches(deps, b, a):
                found = True
                print(f"module cycle in {manifest.parent}: {a} <-> {b}")
    if found:
        sys.exit(1)
    if crates == 0:
        sys.exit(f"no crate found under {root}")
    print(f"no module cycles ({crates} crates)")


main()
