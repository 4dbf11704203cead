"""Groups a `perf report --no-children --sort dso,symbol --stdio` listing of the broker by what
the time is spent on, for scripts/bench.sh --profile. Prints each category's share of the
samples and its three heaviest symbols."""

import re
import sys
from collections import defaultdict

# First match wins: (category, pattern over "dso symbol").
CATEGORIES = [
    ("kernel: syscalls, sockets, scheduler", r"\[kernel|\[k\]"),
    ("allocation", r"mi_|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc|\bmalloc|\bfree\b|realloc|alloc::raw_vec|alloc::alloc"),
    ("ledger and store (sqlx, SQLite)", r"sqlx|sqlite|wal[A-Z]|Btree|Pager|Vdbe"),
    ("logging and formatting (tracing, fmt)", r"tracing|core::fmt|alloc::fmt"),
    ("metrics", r"metrics"),
    ("JSON (serde_json)", r"serde_json|serde::"),
    ("upstream client (reqwest, hyper client)", r"reqwest|hyper_util::client|hyper::client|h1::dispatch::Client"),
    ("HTTP server (hyper, axum)", r"hyper|axum|h1::|http::|httparse"),
    ("SSE parsing and annotation", r"hero_aibroker_sdk::sse|pipeline::sse|Annotator|memchr"),
    ("routing", r"pipeline::router|config::registry"),
    ("request parsing", r"pipeline::request|pipeline::transforms"),
    ("relay and accounting", r"pipeline::relay|accounting|keys::"),
    ("tokio runtime", r"tokio"),
    ("libc: memcpy, memmove", r"memcpy|memmove|memset|memcmp"),
    ("other code in the broker binary (bytes, futures, glue)", r"hero_aibroker"),
]

rows = []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", line)
    if m:
        rows.append((float(m.group(1)), m.group(2), m.group(3).strip()))
if not rows:
    sys.exit("no samples in " + sys.argv[1])

share = defaultdict(float)
top = defaultdict(list)
for pct, dso, sym in rows:
    text = f"{dso} {sym}"
    if dso.startswith("[kernel"):
        text = "[kernel " + sym
    cat = next((c for c, p in CATEGORIES if re.search(p, text)), "other")
    share[cat] += pct
    top[cat].append((pct, sym))
for cat, pct in sorted(share.items(), key=lambda kv: -kv[1]):
    heaviest = ", ".join(f"{s[:60]} {p:.1f}%" for p, s in sorted(top[cat], reverse=True)[:3])
    print(f"  {pct:5.1f}%  {cat:42}  {heaviest}")
