"""Builds (once) and selects the retrieval benchmark's corpus: English technical documentation shipped by
Debian packages, copied as shipped (HTML and plain text) into a cache directory with a manifest.

  corpus.py build CACHE_DIR TOKENIZER_JSON
      Copies the documents of the packages in SOURCES (they must be installed) into CACHE_DIR/files/ under
      flat, unique file names (the name Enclave stores as the document's file name), drops exact duplicates,
      and writes CACHE_DIR/manifest.json: per document its title, a summary line, its size and an estimate
      of the segments Enclave's default chunking (200 tokens, 32 overlap) makes of it, in a fixed shuffled
      order so that any prefix mixes all sources. Idempotent: nothing happens when the manifest is current.

  corpus.py select CACHE_DIR SEGMENTS OUT_JSON [FACTOR]
      Writes the list of documents (a prefix of the manifest order) whose estimated segments, times FACTOR
      (default 1.0; measured segments / estimated), reach SEGMENTS.

  corpus.py queries SELECTION_JSON OUT_JSON [MAX]
      Known-item queries for the selected documents: the document's title (cleaned of the product suffix and
      section numbers) and the first sentence of its first real paragraph (at most 14 words, so never the
      full text of a segment); a title or line shared by two documents is left out. The answer is the
      document. At most MAX queries (default 400), sampled with a fixed seed.
"""
import hashlib
import html
import html.parser
import json
import math
import os
import random
import re
import shutil
import sys

VERSION = 4
PACKAGES = ["python3.11-doc", "postgresql-doc-15", "python-django-doc", "git-doc", "debian-handbook",
            "debian-reference-en", "linux-doc-6.1"]
# (label, root, include regex on the path relative to root, exclude regex)
SOURCES = [
    ("python", "/usr/share/doc/python3.11/html", r"\.html$",
     r"^(_sources|_static|_images)/|(^|/)(genindex[^/]*|search|py-modindex|contents|copyright|license|bugs|about)\.html$"),
    ("postgresql", "/usr/share/doc/postgresql-doc-15/html", r"\.html$",
     r"^(bookindex|index|biblio|legalnotice)\.html$|^release-\d"),
    ("django", "/usr/share/doc/python-django-doc/html", r"\.html$",
     r"^(_modules|_sources|_static|_images)/|(^|/)(genindex|search|py-modindex|contents|index)\.html$|^releases/"),
    ("git", "/usr/share/doc/git-doc", r"\.html$", r"^(RelNotes|howto-index|index)"),
    ("handbook", "/usr/share/doc/debian-handbook/html/en-US", r"\.html$", r"^(Common_Content|images)/|^index\.html$"),
    ("debref", "/usr/share/doc/debian-reference-common/docs", r"\.en\.html$", r"^index"),
    ("linux", "/usr/share/doc/linux-doc-6.1/html", r"\.html$",
     r"^(_sources|_static|_images)/|(^|/)(genindex|search|py-modindex|index)\.html$|^translations/"),
]
SKIP_TAGS = {"script", "style", "head", "nav", "footer"}
BLOCK = {"p", "div", "li", "pre", "table", "tr", "dd", "dt", "blockquote", "section", "h1", "h2", "h3", "h4", "h5",
         "h6", "br", "td", "th", "dl", "ul", "ol"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class Extract(html.parser.HTMLParser):
    """Title, text blocks (with heading marks) and the first real paragraph of an HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title, self.in_title, self.skip = "", False, 0
        self.blocks, self.cur, self.paras, self.in_p, self.p = [], [], [], 0, []
        self.heading = False

    def flush(self):
        t = " ".join("".join(self.cur).split())
        if t:
            self.blocks.append(("h" if self.heading else "t", t))
        self.cur = []

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        if tag in SKIP_TAGS:
            self.skip += 1
        cls = dict(attrs).get("class") or ""
        if tag == "div" and re.search(r"\b(sphinxsidebar|related|navheader|navfooter|footer|toc)\b", cls):
            self.skip += 1
            self.skipdiv = getattr(self, "skipdiv", []) + [0]
        elif tag == "div" and getattr(self, "skipdiv", None):
            self.skipdiv[-1] += 1
        if tag in BLOCK:
            self.flush()
            self.heading = tag in HEADINGS
        if tag == "p":
            self.in_p += 1
            self.p = []

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        if tag == "div" and getattr(self, "skipdiv", None):
            if self.skipdiv[-1] == 0:
                self.skipdiv.pop()
                self.skip = max(0, self.skip - 1)
            else:
                self.skipdiv[-1] -= 1
        if tag in BLOCK:
            self.flush()
            self.heading = False
        if tag == "p" and self.in_p:
            self.in_p -= 1
            t = " ".join("".join(self.p).split())
            if t:
                self.paras.append(t)

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self.skip:
            return
        self.cur.append(data)
        if self.in_p:
            self.p.append(data)


def clean_title(t):
    t = " ".join(html.unescape(t).split())
    t = re.split(r" (?:\u2014|&#8212;|\|) (?:Python|Django) ", t)[0]
    t = re.sub(r" \u2014 The Linux Kernel documentation$", "", t)
    t = re.sub(r"^(?:[A-Z]\.|\d+\.)(?:\d+\.)*\s+", "", t)  # "9.3. ", "A.2. "
    t = re.sub(r"^(Chapter|Appendix)\s+[0-9A-Z]+\.\s*", "", t)
    t = re.sub(r"\(\d\)$", "", t).strip()  # git-commit(1)
    return t


GENERIC = {"introduction", "overview", "index", "contents", "bibliography", "summary", "examples", "example",
           "notes", "description", "usage", "preface", "glossary", "conclusion", "todo", "references", "changelog",
           "license", "api", "faq", "foreword", "tutorial", "features"}


def summary_line(paras):
    for p in paras:
        words = p.split()
        if len(words) < 8 or p.endswith(":") and len(words) < 12:
            continue
        first = re.split(r"(?<=[.!?])\s+(?=[A-Z])", p)[0]
        words = first.split()
        if len(words) < 6:
            continue
        if sum(1 for w in words if re.fullmatch(r"[A-Za-z][a-z'-]*[.,;:]?", w)) < 0.6 * len(words):
            continue  # a list of ids or code, not a sentence
        return " ".join(words[:14]).rstrip(",;:")
    return ""


def estimate_segments(blocks, tok):
    """Rough model of the chunker: a heading starts a segment; blocks are packed up to 200 tokens; a longer
    block is cut with a 32-token overlap. The real count is what Enclave reports."""
    segs, cur = 0, 0
    lens = [len(e.ids) for e in tok.encode_batch([b for _, b in blocks], add_special_tokens=False)] if blocks else []
    for (kind, _), n in zip(blocks, lens):
        if kind == "h":
            if cur:
                segs += 1
            cur = n
            continue
        if cur + n <= 200:
            cur += n
            continue
        if cur:
            segs += 1
            cur = 0
        if n > 200:
            segs += math.ceil((n - 200) / 168)
            cur = 200 - 32 + ((n - 200) % 168)
            cur = min(cur, 200)
        else:
            cur = n
    if cur:
        segs += 1
    return segs


def build(cache, tokenizer_json):
    manifest_path = os.path.join(cache, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("version") == VERSION:
                return
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_padding()
    tok.no_truncation()
    files_dir = os.path.join(cache, "files")
    if os.path.exists(files_dir):
        shutil.rmtree(files_dir)
    os.makedirs(files_dir)
    docs, seen = [], set()
    for label, root, inc, exc in SOURCES:
        if not os.path.isdir(root):
            print(f"corpus: {root} is missing (package not installed); skipped", file=sys.stderr)
            continue
        n0 = len(docs)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, root)
                if not re.search(inc, rel) or re.search(exc, rel) or os.path.islink(full):
                    continue
                data = open(full, "rb").read()
                if not data.strip():
                    continue
                digest = hashlib.sha256(data).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                p = Extract()
                p.feed(data.decode("utf-8", "replace"))
                p.close()
                p.flush()
                est = estimate_segments(p.blocks, tok)
                if est == 0:
                    continue
                name = label + "__" + rel.replace("/", "__")
                with open(os.path.join(files_dir, name), "wb") as out:
                    out.write(data)
                docs.append({"name": name, "source": label, "path": full, "bytes": len(data), "sha256": digest,
                             "title": clean_title(p.title), "summary": summary_line(p.paras),
                             "est_segments": est})
        print(f"corpus: {label}: {len(docs) - n0} documents, ~{sum(d['est_segments'] for d in docs[n0:])} segments",
              file=sys.stderr)
    random.Random(20261125).shuffle(docs)
    with open(manifest_path + ".tmp", "w") as f:
        json.dump({"version": VERSION, "documents": docs}, f, indent=0)
    os.replace(manifest_path + ".tmp", manifest_path)


def select(cache, segments, out, factor=1.0):
    with open(os.path.join(cache, "manifest.json")) as f:
        docs = json.load(f)["documents"]
    chosen, total = [], 0.0
    for d in docs:
        if total >= segments:
            break
        chosen.append(d)
        total += d["est_segments"] * factor
    if total < segments:
        print(f"corpus: only ~{int(total)} segments available (asked for {segments})", file=sys.stderr)
    with open(out, "w") as f:
        json.dump({"files_dir": os.path.join(cache, "files"), "estimated_segments": int(total), "documents": chosen}, f)
    print(f"{len(chosen)} {int(total)}")


def local_segments(selection, out):
    """Approximate segments (blocks packed to ~150 words) in the format of Enclave's segments dump, for
    testing the peer side without a server; the benchmark itself uses the segments Enclave made."""
    with open(selection) as f:
        sel = json.load(f)
    docs, sid = [], 0
    for d in sel["documents"]:
        p = Extract()
        p.feed(open(os.path.join(sel["files_dir"], d["name"]), "rb").read().decode("utf-8", "replace"))
        p.close()
        p.flush()
        segs, cur = [], []
        for kind, text in p.blocks:
            words = text.split()
            if kind == "h" and cur or len(cur) + len(words) > 150:
                if cur:
                    segs.append(" ".join(cur))
                cur = []
            while len(words) > 150:
                segs.append(" ".join(words[:150]))
                words = words[125:]
            cur += words
        if cur:
            segs.append(" ".join(cur))
        items = []
        for t in segs:
            sid += 1
            items.append({"id": sid, "text": t})
        docs.append({"filename": d["name"], "document_id": d["name"], "segments": items})
    with open(out, "w") as f:
        json.dump({"documents": docs}, f)
    print(sid)


def norm(s):
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


def queries(selection, out, limit=400):
    with open(selection) as f:
        docs = json.load(f)["documents"]
    counts = {}
    for d in docs:
        for k in ("title", "summary"):
            if d[k]:
                counts[norm(d[k])] = counts.get(norm(d[k]), 0) + 1
    cands = []
    for d in docs:
        t = d["title"]
        if t and counts[norm(t)] == 1 and len(norm(t)) >= 8 and norm(t) not in GENERIC:
            cands.append({"query": t, "kind": "title", "answer": d["name"]})
        s = d["summary"]
        if s and counts[norm(s)] == 1:
            cands.append({"query": s, "kind": "summary", "answer": d["name"]})
    rng = random.Random(7)
    rng.shuffle(cands)
    cands = cands[:limit]
    with open(out, "w") as f:
        json.dump(cands, f, indent=0)
    kinds = {k: sum(1 for c in cands if c["kind"] == k) for k in ("title", "summary")}
    print(f"{len(cands)} {kinds['title']} {kinds['summary']}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "build":
        build(sys.argv[2], sys.argv[3])
    elif cmd == "select":
        select(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]) if len(sys.argv) > 5 else 1.0)
    elif cmd == "queries":
        queries(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 400)
    elif cmd == "segments":
        local_segments(sys.argv[2], sys.argv[3])
    elif cmd == "packages":
        print(" ".join(PACKAGES))
    else:
        sys.exit(f"unknown command {cmd}")
