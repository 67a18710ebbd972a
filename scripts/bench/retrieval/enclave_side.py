"""Enclave's side of the retrieval benchmark, against a running server through its HTTP API with an API key
(scopes datasets:read, datasets:write).

  enclave_side.py warmup BASE KEY TENANT
      Ingests one small document into a throw-away dataset and waits until it is ready (the embedding
      model is loaded by then), then deletes the dataset.

  enclave_side.py ingest BASE KEY TENANT SELECTION_JSON QUERIES_JSON OUT_DIR
      Creates a dataset with the default chunking, uploads the selected corpus files (multipart, parts named
      `files`, 100 a request, one request after the other) and polls every job (`GET /ingest-jobs/{id}`)
      until none is running. Ingest time: from the first upload request to the moment the last job is done
      (all documents ready, embedded and indexed). Then reads back every ready document's segments (paged)
      into OUT_DIR/segments.json (what the peer gets, with the exact text Enclave embeds), keeps the queries
      whose answer document is ready in OUT_DIR/queries.json, and writes OUT_DIR/enclave_ingest.json.

  enclave_side.py query BASE KEY TENANT OUT_DIR
      Runs every query of OUT_DIR/queries.json one at a time, in keyword, semantic and hybrid mode
      (top_k 10), after 20 untimed warm-up queries per mode; writes OUT_DIR/enclave_queries.json with the
      client-side latency, the server's took_ms and the rank of the answer document per query.
"""
import http.client
import json
import os
import sys
import time
import urllib.parse
import uuid


class Api:
    def __init__(self, base, key, tenant):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.key, self.prefix = key, f"/api/v1/tenants/{tenant}"
        self.conn = None

    def request(self, method, path, body=None, content_type="application/json", ok=(200, 201, 202, 204)):
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            headers = {"Authorization": f"Bearer {self.key}"}
            if body is not None:
                headers["Content-Type"] = content_type
                if content_type == "application/json":
                    body = json.dumps(body).encode()
            try:
                self.conn.request(method, self.prefix + path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if r.status not in ok:
                raise RuntimeError(f"{method} {path}: {r.status} {data[:500]!r}")
            return json.loads(data) if data else None


def multipart(files_dir, names):
    boundary = uuid.uuid4().hex
    parts = []
    for name in names:
        with open(os.path.join(files_dir, name), "rb") as f:
            data = f.read()
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def embedding_input(title, headings, text):
    """The text Enclave embeds for a segment (knowledge::ingest::embedding_input)."""
    out = ""
    if title:
        out += title + "\n"
    if headings:
        out += " > ".join(headings) + "\n"
    return out + text


def paged(api, path, key):
    offset, out = 0, []
    while True:
        sep = "&" if "?" in path else "?"
        page = api.request("GET", f"{path}{sep}limit=500&offset={offset}")
        out += page[key]
        offset += len(page[key])
        if not page[key] or offset >= page["total"]:
            return out


def wait_job(api, job_id, deadline_secs=600):
    deadline = time.time() + deadline_secs
    while True:
        job = api.request("GET", f"/ingest-jobs/{job_id}")
        if job["status"] != "running":
            return job
        if time.time() > deadline:
            raise RuntimeError(f"job {job_id} still running after {deadline_secs} s: {job}")
        time.sleep(0.25)


def warmup(base, key, tenant):
    api = Api(base, key, tenant)
    deadline = time.time() + 300
    while True:  # creating a dataset answers 503 model_not_ready while the embedding model loads
        try:
            ds = api.request("POST", "/datasets", {"name": "warm-up"})
            break
        except RuntimeError as e:
            if "model_not_ready" not in str(e) or time.time() > deadline:
                raise
            time.sleep(0.5)
    text = "# Warm-up\n\n" + " ".join(f"Sentence {i} loads the embedding model before the timed run." for i in range(40))
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="warmup.md"\r\n'
            f"Content-Type: text/markdown\r\n\r\n{text}\r\n--{boundary}--\r\n").encode()
    res = api.request("POST", f"/datasets/{ds['id']}/documents", body, f"multipart/form-data; boundary={boundary}")
    job = wait_job(api, res["job"]["id"])
    if job["documents_ready"] != 1:
        docs = api.request("GET", f"/datasets/{ds['id']}/documents")["documents"]
        raise RuntimeError(f"the warm-up document did not become ready: {docs}")
    for mode in ("keyword", "semantic", "hybrid"):
        api.request("POST", "/datasets/search", {"query": "warm-up sentence", "dataset_ids": [ds["id"]], "mode": mode})
    api.request("DELETE", f"/datasets/{ds['id']}")


def ingest(base, key, tenant, selection, queries_path, out_dir):
    api = Api(base, key, tenant)
    sel = json.load(open(selection))
    names = [d["name"] for d in sel["documents"]]
    ds = api.request("POST", "/datasets", {"name": f"retrieval-bench-{int(time.time())}"})
    dsid = ds["id"]
    print(f"enclave: dataset {dsid} (chunking {ds.get('chunking')}), uploading {len(names)} files",
          file=sys.stderr, flush=True)
    jobs, refused = [], []
    start = time.perf_counter()
    for i in range(0, len(names), 100):
        body, ctype = multipart(sel["files_dir"], names[i:i + 100])
        res = api.request("POST", f"/datasets/{dsid}/documents", body, ctype)
        if res.get("job"):
            jobs.append(res["job"]["id"])
        refused += [{"filename": r["filename"], "error": r["error"]} for r in res["results"] if r.get("error")]
    upload_secs = time.perf_counter() - start
    print(f"enclave: uploaded in {upload_secs:.1f} s ({len(jobs)} jobs, {len(refused)} files refused)",
          file=sys.stderr, flush=True)
    pending, last, finished = list(jobs), start, {}
    while pending:
        job = api.request("GET", f"/ingest-jobs/{pending[0]}")
        if job["status"] != "running":
            finished[pending.pop(0)] = job
            continue
        now = time.perf_counter()
        if now - last >= 60:
            last = now
            done = sum(j["segments_done"] for j in finished.values()) + job["segments_done"]
            print(f"enclave: {now - start:.0f} s, {len(finished)}/{len(jobs)} jobs done, ~{done} segments embedded "
                  f"({done / (now - start):.1f}/s)", file=sys.stderr, flush=True)
        time.sleep(0.25)
    ingest_secs = time.perf_counter() - start
    ds = api.request("GET", f"/datasets/{dsid}")
    docs = paged(api, f"/datasets/{dsid}/documents", "documents")
    failed = [{"filename": d["filename"], "error": d["error"]} for d in docs if d["status"] != "ready"]
    ready = [d for d in docs if d["status"] == "ready"]
    print(f"enclave: ingested {ds['segment_count']} segments of {ds['ready_count']} documents in {ingest_secs:.1f} s "
          f"({ds['segment_count'] / ingest_secs:.1f}/s); {len(failed)} documents not ready", file=sys.stderr, flush=True)
    seg_docs = []
    for d in ready:
        segs = paged(api, f"/datasets/{dsid}/documents/{d['id']}/segments", "segments")
        seg_docs.append({"filename": d["filename"], "document_id": d["id"], "title": d["title"],
                         "segments": [{"id": s["id"], "text": embedding_input(d["title"], s["heading_path"], s["text"]),
                                       "plain_text": s["text"], "token_count": s["token_count"]} for s in segs]})
    json.dump({"documents": seg_docs}, open(os.path.join(out_dir, "segments.json"), "w"))
    by_name = {d["filename"]: d["id"] for d in ready}
    queries = [dict(q, answer_id=by_name[q["answer"]]) for q in json.load(open(queries_path)) if q["answer"] in by_name]
    json.dump(queries, open(os.path.join(out_dir, "queries.json"), "w"))
    tokens = sum(s["token_count"] for d in seg_docs for s in d["segments"])
    json.dump({"dataset_id": dsid, "files": len(names), "documents_ready": len(ready), "documents_not_ready": failed,
               "refused": refused, "segments": ds["segment_count"], "segments_fetched": sum(len(d["segments"]) for d in seg_docs),
               "segment_tokens": tokens, "size_bytes": ds.get("size_bytes"), "upload_secs": upload_secs,
               "ingest_secs": ingest_secs, "jobs": list(finished.values())},
              open(os.path.join(out_dir, "enclave_ingest.json"), "w"))
    print(f"{ds['segment_count']} {len(queries)}")


def query(base, key, tenant, out_dir):
    api = Api(base, key, tenant)
    ingest_info = json.load(open(os.path.join(out_dir, "enclave_ingest.json")))
    queries = json.load(open(os.path.join(out_dir, "queries.json")))
    dsid = ingest_info["dataset_id"]
    out = {}
    for mode in ("keyword", "semantic", "hybrid"):
        def search(q):
            t0 = time.perf_counter()
            res = api.request("POST", "/datasets/search", {"query": q, "dataset_ids": [dsid], "mode": mode, "top_k": 10})
            return (time.perf_counter() - t0) * 1000, res

        for q in queries[:20]:
            search(q["query"])
        rows = []
        for q in queries:
            ms, res = search(q["query"])
            ids = [h["document_id"] for h in res["hits"]]
            rank = next((i + 1 for i, d in enumerate(ids) if d == q["answer_id"]), None)
            rows.append({"query": q["query"], "kind": q["kind"], "latency_ms": ms, "took_ms": res.get("took_ms"),
                         "hits": len(ids), "rank": rank})
        out[mode] = rows
        print(f"enclave: {mode}: {len(rows)} queries", file=sys.stderr, flush=True)
    json.dump(out, open(os.path.join(out_dir, "enclave_queries.json"), "w"))


if __name__ == "__main__":
    if sys.argv[1] == "warmup":
        warmup(*sys.argv[2:5])
    elif sys.argv[1] == "ingest":
        ingest(*sys.argv[2:8])
    elif sys.argv[1] == "query":
        query(*sys.argv[2:6])
    else:
        sys.exit("usage: enclave_side.py ingest|query ...")
