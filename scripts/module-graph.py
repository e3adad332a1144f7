#!/usr/bin/env python3
"""Prints the crate's module graph as the layering check sees it.

Reads every `src/**/*.rs` (not `main.rs`, a separate binary crate), takes each `crate::…` path
(in `use` statements, grouped `use crate::{a, b::c}` included, inline paths, and comments: a
module a doc comment points to is one a reader is sent to) and `super::…` paths that leave their
top-level module, and prints:

  1. the edges between top-level modules (`src/x.rs` or `src/x/` is module `x`);
  2. every cycle between top-level modules (elementary cycles, shortest first);
  3. every edge that goes up the layers (`LAYERS` below, lowest first);
  4. every file below the HTTP layer that names `AppState`, even in a comment (the HTTP layer
     being `startup`, `store`, `console` and `web`, where `AppState` lives; `main.rs` and `cli.rs`
     sit above it).

`--src DIR` reads another checkout's `src/` (e.g. to compare with main). Exit status 0 always; `--check` exits 1 when there is a cycle, an upward edge, a module in
no layer, or a lower-layer `AppState`.
"""
import os
import re
import sys
from itertools import count

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SHOWN = 40
# The layers, lowest first: a module may use its own layer's modules and any below, never one
# above. `config` gathers the settings of `risk` (its rule weights), so it sits above it.
LAYERS = [
    ["domain", "clock"],
    ["db"],
    ["jobs", "risk", "fulfillment"],
    ["config", "secrets", "telemetry", "metrics"],
    ["mail", "payments", "live_settings", "staff"],
    ["services"],
    ["orders", "staff_digest", "retention"],
    ["workers"],
    ["web"],
    ["store", "console"],
    ["cli", "startup"],
]
HTTP_LAYER = {"startup", "store", "console", "web", "cli"}


def top_module(rel):
    parts = rel.split(os.sep)
    name = parts[0]
    return name[:-3] if name.endswith(".rs") else name


def module_path(rel):
    """The module path of a file, e.g. orders/mod.rs -> [orders], db/orders.rs -> [db, orders]."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def first_segments(group):
    """The first path segment of each item of a `{…}` use-group body."""
    out, depth, cur = [], 0, ""
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if depth == 0 and ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    segs = []
    for item in out:
        item = item.strip()
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)", item)
        if m and m.group(1) != "self":
            segs.append(m.group(1))
    return segs


def crate_targets(text):
    targets = set()
    # Grouped uses: `crate::{a, b::{c, d}}`.
    for m in re.finditer(r"\bcrate::\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        targets.update(first_segments(text[m.end() : i - 1]))
    for m in re.finditer(r"\bcrate::([A-Za-z_][A-Za-z0-9_]*)", text):
        targets.add(m.group(1))
    return targets


def super_targets(text, rel):
    """Top-level modules reached through `super::super::x` paths that climb out of the top."""
    targets = set()
    path = module_path(rel)
    for m in re.finditer(r"\b((?:super::)+)([A-Za-z_][A-Za-z0-9_]*)", text):
        ups = m.group(1).count("super::")
        base = path[: len(path) - ups]
        if not base:
            targets.add(m.group(2))
    return targets


def main():
    global ROOT
    args = sys.argv[1:]
    check = "--check" in args
    if "--src" in args:
        ROOT = args[args.index("--src") + 1]
    files = []
    for dirpath, _, names in os.walk(ROOT):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dirpath, n), ROOT)
                if rel not in ("main.rs", "lib.rs"):
                    files.append(rel)
    files.sort()
    modules = sorted({top_module(f) for f in files})
    edges = {m: {} for m in modules}  # from -> to -> [files]
    appstate = []
    for rel in files:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
            text = fh.read()
        src = top_module(rel)
        for t in crate_targets(text) | super_targets(text, rel):
            if t in edges and t != src:
                edges[src].setdefault(t, []).append(rel)
        if src not in HTTP_LAYER and re.search(r"\bAppState\b", text):
            appstate.append(rel)

    print("== edges between top-level modules (from -> to: files)")
    for m in modules:
        for t in sorted(edges[m]):
            print(f"{m} -> {t}: {', '.join(edges[m][t])}")

    graph = {m: set(edges[m]) for m in modules}
    cycles = elementary_cycles(graph)
    cycles.sort(key=lambda c: (len(c), c))
    groups = [g for g in strongly_connected(graph) if len(g) > 1]
    print(f"\n== modules caught in cycles (strongly connected groups): {len(groups)}")
    for g in groups:
        print("  " + ", ".join(sorted(g)))
    pairs = [c for c in cycles if len(c) == 2]
    print(f"\n== cycles between top-level modules: {len(cycles)} "
          f"({len(pairs)} of two modules; up to {SHOWN} shown, shortest first)")
    for c in cycles[:SHOWN]:
        print("  " + " -> ".join(c + [c[0]]))

    layer = {m: i for i, ms in enumerate(LAYERS) for m in ms}
    unplaced = [m for m in modules if m not in layer]
    upward = [
        (m, t, edges[m][t])
        for m in modules
        for t in sorted(edges[m])
        if m in layer and t in layer and layer[t] > layer[m]
    ]
    print(f"\n== edges up the layers (see LAYERS): {len(upward)}")
    for m, t, files in upward:
        print(f"  {m} -> {t}: {', '.join(files)}")
    if unplaced:
        print(f"  modules in no layer: {', '.join(unplaced)}")

    print(f"\n== files below the HTTP layer naming AppState: {len(appstate)}")
    for f in appstate:
        print(f"  src/{f}")

    if check and (cycles or appstate or upward or unplaced):
        sys.exit(1)


def strongly_connected(graph):
    """Tarjan's strongly connected components."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], count()

    def visit(v):
        index[v] = low[v] = next(n)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def elementary_cycles(graph):
    """Every elementary cycle, each listed once, starting at its smallest node (small graph)."""
    nodes = sorted(graph)
    found = []
    for start in nodes:
        # Only paths through nodes >= start, so each cycle is found from its smallest node.
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(path[:])
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return found


if __name__ == "__main__":
    main()
