"""The peer side of the retrieval benchmark: ChromaDB (persistent client in a temporary directory) with
sentence-transformers embeddings (all-MiniLM-L6-v2 on PyTorch, CPU), the way Open WebUI uses them by
default: each document's segments are embedded (`encode`, batch size 32, normalised) and added with their
metadata in batches no larger than the client's `get_max_batch_size()`, one document after the other;
a query is embedded and then `collection.query(n_results=10)` runs (cosine space, HNSW).

Usage: chroma_side.py MODEL_DIR SEGMENTS_JSON QUERIES_JSON OUT_JSON THREADS [FIELD]
  SEGMENTS_JSON: {"documents": [{"filename", "document_id", "segments": [{"id", "text", "plain_text"?}]}]}
                 (what Enclave made: `text` is what Enclave embeds, the document title and heading path
                 followed by the segment's text; `plain_text` is the segment's text alone)
  FIELD:         which of the two is embedded and stored (default `text`, the same input as Enclave's)
  QUERIES_JSON:  [{"query", "kind", "answer": filename}]
Writes OUT_JSON with the ingest time and, per query, the wall-clock latency and the rank of the answer.
"""
import json
import os
import shutil
import sys
import tempfile
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

import chromadb  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402
from chromadb.config import Settings  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

model_dir, seg_path, q_path, out_path, threads = sys.argv[1:6]
field = sys.argv[6] if len(sys.argv) > 6 else "text"
torch.set_num_threads(int(threads))
docs = json.load(open(seg_path))["documents"]
queries = json.load(open(q_path))
n_segments = sum(len(d["segments"]) for d in docs)

model = SentenceTransformer(model_dir, device="cpu")
model.encode(["warm up the model"] * 8, batch_size=32)
tmp = tempfile.mkdtemp(prefix="chroma-bench-")
try:
    client = chromadb.PersistentClient(path=tmp, settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("bench", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    max_batch = client.get_max_batch_size()
    print(f"chroma: ingesting {n_segments} segments of {len(docs)} documents (max batch {max_batch})",
          file=sys.stderr, flush=True)
    embed_secs = add_secs = 0.0
    start = last = time.perf_counter()
    done = 0
    for d in docs:
        texts = [s[field] for s in d["segments"]]
        if not texts:
            continue
        t0 = time.perf_counter()
        vecs = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        t1 = time.perf_counter()
        for i in range(0, len(texts), max_batch):
            col.add(ids=[str(s["id"]) for s in d["segments"][i:i + max_batch]],
                    embeddings=vecs[i:i + max_batch],
                    documents=texts[i:i + max_batch],
                    metadatas=[{"filename": d["filename"], "document_id": d["document_id"], "position": i + k}
                               for k in range(len(texts[i:i + max_batch]))])
        t2 = time.perf_counter()
        embed_secs += t1 - t0
        add_secs += t2 - t1
        done += len(texts)
        if t2 - last > 60:
            last = t2
            print(f"chroma: {done}/{n_segments} segments, {done / (t2 - start):.1f}/s", file=sys.stderr, flush=True)
    ingest_secs = time.perf_counter() - start
    count = col.count()
    print(f"chroma: ingested {count} segments in {ingest_secs:.1f} s ({count / ingest_secs:.1f}/s)",
          file=sys.stderr, flush=True)

    def search(q):
        t0 = time.perf_counter()
        emb = model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
        res = col.query(query_embeddings=emb, n_results=10)
        return (time.perf_counter() - t0) * 1000, [m["filename"] for m in res["metadatas"][0]]

    for q in queries[:20]:  # warm-up, not timed
        search(q["query"])
    results = []
    for q in queries:
        ms, files = search(q["query"])
        rank = next((i + 1 for i, f in enumerate(files) if f == q["answer"]), None)
        results.append({"query": q["query"], "kind": q["kind"], "latency_ms": ms, "rank": rank})
    import chromadb as c
    out = {"segments": count, "documents": len(docs), "ingest_secs": ingest_secs, "embed_secs": embed_secs,
           "add_secs": add_secs, "embedded_field": field, "max_batch_size": max_batch, "threads": int(threads),
           "versions": {"chromadb": c.__version__, "sentence_transformers": sentence_transformers.__version__,
                        "torch": torch.__version__},
           "queries": results}
    json.dump(out, open(out_path, "w"))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
