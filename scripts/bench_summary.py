#!/usr/bin/env python3
"""The benchmark's tables: every point measured (broker beside the fake provider alone), then the
summary issue 23 asks for, each figure beside its target. With --write PATH the summary replaces
what stands between the `<!-- bench:summary:begin -->` and `<!-- bench:summary:end -->` lines
of PATH (docs/performance.md).

    bench_summary.py RESULTS.tsv STREAMS_RSS [--write PATH]

RESULTS.tsv is scripts/bench.sh's table; STREAMS_RSS is empty or
"before_kb<TAB>steady_kb<TAB>peak_kb<TAB>streams_ok<TAB>streams_per_s" from the 128-stream run.
"""
import csv
import datetime
import os
import subprocess
import sys


def mib(kb):
    return f"{int(kb) / 1024:.1f} MiB"


def load(path):
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    rows.sort(key=lambda r: (r["mode"] != "json", int(r["conc"])))
    return {(r["mode"], r["conc"]): r for r in rows}, rows


def points_table(rows):
    out = [
        "| mode | conc | broker req/s | p50 / p99 ms | mock alone req/s | p50 / p99 ms | added p50 / p99 ms | broker CPU µs/req | mock CPU µs/req | broker peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ap50 = float(r["broker_p50_ms"]) - float(r["direct_p50_ms"])
        ap99 = float(r["broker_p99_ms"]) - float(r["direct_p99_ms"])
        out.append(
            f"| {r['mode']} | {r['conc']} | {int(r['broker_rps']):,} | {r['broker_p50_ms']} / {r['broker_p99_ms']} "
            f"| {int(r['direct_rps']):,} | {r['direct_p50_ms']} / {r['direct_p99_ms']} | {ap50:.3f} / {ap99:.3f} "
            f"| {r['cpu_us_per_req']} | {r['direct_cpu_us_per_req']} | {mib(r['peak_rss_kb'])} |"
        )
    return out


def summary_table(by, streams):
    def get(mode, conc):
        return by.get((mode, str(conc)))

    lines = [
        "| figure | measured | target | met |",
        "| --- | ---: | ---: | :---: |",
    ]

    def row(name, measured, target, met):
        lines.append(f"| {name} | {measured} | {target} | {'yes' if met else 'no'} |")

    j32, j1, s32 = get("json", 32), get("json", 1), get("stream", 32)
    if j32:
        rps = float(j32["broker_rps"])
        row("JSON, c=32: requests/s", f"{rps:,.0f}", "≥ 20,000", rps >= 20000)
    if j1:
        a50 = float(j1["broker_p50_ms"]) - float(j1["direct_p50_ms"])
        a99 = float(j1["broker_p99_ms"]) - float(j1["direct_p99_ms"])
        row(
            "JSON, c=1: added latency p50 / p99 (vs the mock alone)",
            f"{a50:.3f} / {a99:.3f} ms",
            "≤ 0.08 / 0.30 ms",
            a50 <= 0.08 and a99 <= 0.30,
        )
    if j32 and j1:
        c32, c1 = float(j32["cpu_us_per_req"]) / 1000, float(j1["cpu_us_per_req"]) / 1000
        row(
            "CPU per request, JSON c=32 / c=1",
            f"{c32:.3f} / {c1:.3f} ms",
            "≤ 0.040 / 0.080 ms",
            c32 <= 0.040 and c1 <= 0.080,
        )
    if s32:
        sps = float(s32["broker_rps"])
        row("stream (35 events), c=32: streams/s", f"{sps:,.0f}", "≥ 10,000", sps >= 10000)
        cps = float(s32["cpu_us_per_req"]) / 1000
        row("CPU per stream, c=32", f"{cps:.3f} ms", "≤ 0.080 ms", cps <= 0.080)
    peaks = [int(r["peak_rss_kb"]) for r in (j32, s32) if r]
    if peaks:
        peak = max(peaks)
        row("peak RSS under that load (JSON and stream, c=32)", mib(peak), "≤ 32 MiB", peak <= 32 * 1024)
    if j32:
        lines.append(
            f"| *mock alone, JSON c=32: requests/s, CPU per request* | {float(j32['direct_rps']):,.0f}, "
            f"{float(j32['direct_cpu_us_per_req']) / 1000:.3f} ms | | |"
        )
    if streams:
        before, steady, peak, ok, sps = streams.split("\t")
        lines.append(
            f"| *128 concurrent streams (paced, 20 ms per event): RSS before / steady / peak* "
            f"| {mib(before)} / {mib(steady)} / {mib(peak)} ({int(ok):,} streams, {int(sps):,}/s) | | |"
        )
    return lines


def header():
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    dirty = ""
    try:
        if subprocess.run(["git", "diff", "--quiet", "HEAD"]).returncode != 0:
            dirty = " with uncommitted changes"
    except OSError:
        pass
    threads = os.environ.get("WORKER_THREADS") or "default"
    cores = os.cpu_count()
    secs = os.environ.get("BENCH_SECS", "5")
    when = datetime.date.today().isoformat()
    return (
        f"Written by `scripts/bench.sh` on {when} at commit `{commit}`{dirty}: {cores} cores, "
        f"`WORKER_THREADS` {threads}, {secs} s per point."
    )


def main():
    by, rows = load(sys.argv[1])
    streams = sys.argv[2] if len(sys.argv) > 2 else ""
    write = sys.argv[sys.argv.index("--write") + 1] if "--write" in sys.argv else None
    points = points_table(rows)
    summary = summary_table(by, streams)
    print("\n".join(points))
    print()
    print("\n".join(summary))
    if write:
        begin, end = "<!-- bench:summary:begin -->", "<!-- bench:summary:end -->"
        text = open(write).read()
        if begin not in text or end not in text:
            sys.exit(f"{write} has no {begin} ... {end} section")
        block = "\n".join([begin, "", header(), "", *summary, "", "Every point of that run:", "", *points, "", end])
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        open(write, "w").write(head + block + tail)
        print(f"\nwritten into {write}")


if __name__ == "__main__":
    main()
