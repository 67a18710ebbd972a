"""Prints the retrieval benchmark's table (Enclave against ChromaDB + sentence-transformers) and saves every
raw number as one JSON file.

Usage: report.py OUT_DIR RESULT_JSON ASKED_SEGMENTS
Reads OUT_DIR/{enclave_ingest,enclave_queries,chroma}.json.
"""
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

out_dir, result_path, asked = sys.argv[1], sys.argv[2], int(sys.argv[3])
load = lambda name: json.load(open(os.path.join(out_dir, name)))  # noqa: E731
ing, eq, ch = load("enclave_ingest.json"), load("enclave_queries.json"), load("chroma.json")


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def summary(rows, took=False):
    lat = [r["latency_ms"] for r in rows]
    s = {"queries": len(rows), "p50_ms": statistics.median(lat), "p99_ms": pct(lat, 99), "mean_ms": statistics.fmean(lat),
         "mrr10": sum(1 / r["rank"] for r in rows if r["rank"]) / len(rows),
         "recall10": sum(1 for r in rows if r["rank"]) / len(rows)}
    for kind in ("title", "summary"):
        sub = [r for r in rows if r["kind"] == kind]
        if sub:
            s[f"mrr10_{kind}"] = sum(1 / r["rank"] for r in sub if r["rank"]) / len(sub)
    if took:
        t = [r["took_ms"] for r in rows if r.get("took_ms") is not None]
        if t:
            s["took_p50_ms"], s["took_p99_ms"] = statistics.median(t), pct(t, 99)
    return s


e = {mode: summary(rows, took=True) for mode, rows in eq.items()}
c = summary(ch["queries"])
e_rate = ing["segments"] / ing["ingest_secs"]
c_rate = ch["segments"] / ch["ingest_secs"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
nproc = os.cpu_count()
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = ""

rows = []
def row(metric, ev, cv="", ratio="", note=""):  # noqa: E302
    rows.append((metric, ev, cv, ratio, note))

f1 = lambda x: f"{x:.1f}"  # noqa: E731
f3 = lambda x: f"{x:.3f}"  # noqa: E731
row("ingest segments/s", f1(e_rate), f1(c_rate), f"{e_rate / c_rate:.2f}x", "Enclave/Chroma, target >= 1")
row("ingest wall clock s", f1(ing["ingest_secs"]), f1(ch["ingest_secs"]))
for mode in ("keyword", "semantic", "hybrid"):
    m = e[mode]
    took = f" (server {m['took_p50_ms']:.0f})" if "took_p50_ms" in m else ""
    took99 = f" (server {m['took_p99_ms']:.0f})" if "took_p99_ms" in m else ""
    if mode == "semantic":
        row(f"{mode} p50 ms", f1(m["p50_ms"]) + took, f1(c["p50_ms"]), f"{c['p50_ms'] / m['p50_ms']:.2f}x", "Chroma/Enclave")
        row(f"{mode} p99 ms", f1(m["p99_ms"]) + took99, f1(c["p99_ms"]), f"{c['p99_ms'] / m['p99_ms']:.2f}x", "Chroma/Enclave")
    else:
        row(f"{mode} p50 ms", f1(m["p50_ms"]) + took)
        row(f"{mode} p99 ms", f1(m["p99_ms"]) + took99)
h = e["hybrid"]
row("Chroma semantic p50 / Enclave hybrid p50", f1(h["p50_ms"]), f1(c["p50_ms"]), f"{c['p50_ms'] / h['p50_ms']:.2f}x", "target > 1")
row("hybrid p50 <= 25 ms", "yes" if h["p50_ms"] <= 25 else "NO", "", "", f"at {ing['segments']} segments")
for metric in ("mrr10", "recall10"):
    name = "MRR@10" if metric == "mrr10" else "recall@10"
    row(f"{name} keyword", f3(e["keyword"][metric]))
    row(f"{name} semantic", f3(e["semantic"][metric]), f3(c[metric]), f"{e['semantic'][metric] / c[metric]:.2f}x", "Enclave/Chroma")
    row(f"{name} hybrid", f3(e["hybrid"][metric]), f3(c[metric]), f"{e['hybrid'][metric] / c[metric]:.2f}x", "vs Chroma semantic")
for metric, name in (("mrr10", "MRR@10"), ("recall10", "recall@10")):
    best_single = max(e["keyword"][metric], e["semantic"][metric])
    verdict = "yes" if e["hybrid"][metric] > best_single else "tie" if e["hybrid"][metric] == best_single else "NO"
    row(f"hybrid {name} beats keyword and semantic", verdict, "", "", "target: yes")

n_q = e["hybrid"]["queries"]
kinds = {k: sum(1 for r in eq["hybrid"] if r["kind"] == k) for k in ("title", "summary")}
v = ch["versions"]
print(f"== machine: {nproc} CPUs ({cpu}); load average at the end {os.getloadavg()[0]:.2f}")
print(f"== corpus: {ing['files']} files asked ({asked} segments asked) -> {ing['documents_ready']} documents ready, "
      f"{ing['segments']} segments ({ing['segment_tokens']} tokens) made by Enclave; "
      f"{len(ing['documents_not_ready'])} documents not ready, {len(ing['refused'])} refused at upload")
print(f"== queries: {n_q} known-item queries ({kinds['title']} titles, {kinds['summary']} summary lines), top 10, "
      f"one at a time, 20 warm-up queries per mode")
print(f"== peer: chromadb {v['chromadb']}, sentence-transformers {v['sentence_transformers']}, torch {v['torch']} "
      f"({ch['threads']} threads); embedded field: {ch['embedded_field']}; "
      f"embedding {ch['embed_secs']:.0f} s + add {ch['add_secs']:.0f} s")
w = [max(len(r[i]) for r in rows + [("metric", "Enclave", "ChromaDB", "ratio", "")]) for i in range(5)]
fmt = f"{{:<{w[0]}}}  {{:>{w[1]}}}  {{:>{w[2]}}}  {{:>{w[3]}}}  {{}}"
print(fmt.format("metric", "Enclave", "ChromaDB", "ratio", ""))
for r in rows:
    print(fmt.format(*r).rstrip())

result = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
          "machine": {"nproc": nproc, "cpu": cpu, "loadavg_end": os.getloadavg()},
          "asked_segments": asked, "enclave": {"ingest": {k: v for k, v in ing.items() if k != "jobs"},
                                               "ingest_segments_per_s": e_rate, "modes": e},
          "chroma": {k: v for k, v in ch.items() if k != "queries"} | {"ingest_segments_per_s": c_rate, "semantic": c},
          "table": rows, "raw_queries": {"enclave": eq, "chroma": ch["queries"]}}
os.makedirs(os.path.dirname(result_path), exist_ok=True)
json.dump(result, open(result_path, "w"), indent=1)
print(f"== raw results: {result_path}")
