#!/usr/bin/env python3
"""Collects the licences of the third-party crates compiled into `enclave` (Linux x86_64).

    packaging/third-party-licenses.py OUT_DIR

Reads `cargo metadata --locked --filter-platform x86_64-unknown-linux-gnu`, walks the resolve graph from
the `enclave` package through normal (run-time) dependencies only — build scripts, proc macros and
dev-dependencies do not end up in the binary — and writes:

    OUT_DIR/THIRD-PARTY-LICENSES.md   one line per crate: name, version, licence expression, source
    OUT_DIR/crates/NAME-VERSION/      the crate's own LICENSE*, COPYING*, NOTICE*, COPYRIGHT* files

Crates that ship no licence file are listed with their SPDX expression; the standard texts of the
licences they use are written to OUT_DIR/spdx/ (Apache-2.0 and MPL-2.0 from Debian's
/usr/share/common-licenses, the MIT text here). Proc-macro crates are skipped (they run at compile
time only). Exit 1 if a crate has neither a licence expression nor a licence file.
"""

import json
import os
import re
import shutil
import subprocess
import sys

TARGET = "x86_64-unknown-linux-gnu"
LICENSE_PREFIXES = ("license", "licence", "copying", "notice", "copyright", "unlicense")

# Native code compiled into the crates above (by their build scripts) or linked statically.
NATIVE = [
    ("SQLite (bundled by libsqlite3-sys)", "blessing (public domain)", "https://sqlite.org/copyright.html"),
    ("zstd (bundled by zstd-sys)", "BSD-3-Clause OR GPL-2.0-only", "https://github.com/facebook/zstd"),
    ("mimalloc (bundled by libmimalloc-sys)", "MIT", "https://github.com/microsoft/mimalloc"),
    ("GNU C Library (statically linked)", "LGPL-2.1-or-later (with the GCC runtime exception parts)",
     "https://www.gnu.org/software/libc/ — Debian source: apt-get source glibc"),
    ("Rust standard library", "MIT OR Apache-2.0", "https://github.com/rust-lang/rust"),
]


MIT_TEXT = """Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE
USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def write_spdx_texts(out, ids):
    os.makedirs(os.path.join(out, "spdx"), exist_ok=True)
    for spdx in sorted(ids):
        dest = os.path.join(out, "spdx", spdx + ".txt")
        if spdx == "MIT":
            with open(dest, "w", encoding="utf-8") as f:
                f.write("MIT License (text for the crates listed as MIT that ship no licence file; "
                        "copyright: the crate's authors as named in its Cargo.toml)\n\n" + MIT_TEXT)
            continue
        common = os.path.join("/usr/share/common-licenses", spdx)
        if os.path.isfile(common):
            shutil.copyfile(common, dest)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", TARGET],
        cwd=root))
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    start = next(p["id"] for p in meta["packages"] if p["name"] == "enclave" and p["source"] is None)

    seen, todo = set(), [start]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    seen.discard(start)

    os.makedirs(os.path.join(out, "crates"), exist_ok=True)
    rows, missing, without_file, spdx_needed = [], [], [], set()
    for pid in sorted(seen, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        if p["source"] is None:
            continue  # workspace member
        if all("proc-macro" in t["kind"] for t in p["targets"] if "lib" in t["kind"] or "proc-macro" in t["kind"]):
            continue  # runs in the compiler only
        name, version = p["name"], p["version"]
        expr = p.get("license") or ""
        src_dir = os.path.dirname(p["manifest_path"])
        dest = os.path.join(out, "crates", f"{name}-{version}")
        files = []
        for entry in sorted(os.listdir(src_dir)):
            path = os.path.join(src_dir, entry)
            if os.path.isfile(path) and entry.lower().startswith(LICENSE_PREFIXES):
                os.makedirs(dest, exist_ok=True)
                shutil.copyfile(path, os.path.join(dest, entry))
                files.append(entry)
        if p.get("license_file"):
            lf = os.path.join(src_dir, p["license_file"])
            if os.path.isfile(lf) and os.path.basename(lf) not in files:
                os.makedirs(dest, exist_ok=True)
                shutil.copyfile(lf, os.path.join(dest, os.path.basename(lf)))
                files.append(os.path.basename(lf))
                expr = expr or f"see {os.path.basename(lf)}"
        if not expr and not files:
            missing.append(f"{name} {version}")
        if not files:
            without_file.append(f"{name} {version}")
            spdx_needed.update(re.findall(r"[A-Za-z0-9.+-]+", expr.replace("/", " OR ")))
        source = p.get("repository") or "crates.io"
        rows.append(f"| {name} | {version} | {expr or '?'} | {', '.join(files) or '(none shipped; SPDX text applies)'} | {source} |")

    write_spdx_texts(out, (spdx_needed - {"OR", "AND", "WITH"}) | {"LGPL-2.1"})  # glibc, linked statically
    with open(os.path.join(out, "THIRD-PARTY-LICENSES.md"), "w", encoding="utf-8") as f:
        f.write("# Third-party software in the enclave binary\n\n")
        f.write("Generated by packaging/third-party-licenses.py from `cargo metadata` (run-time dependencies "
                f"for {TARGET}). Each crate's own licence files are in `crates/NAME-VERSION/`.\n\n")
        f.write(f"{len(rows)} crates.\n\n")
        f.write("| crate | version | licence | files | source |\n|---|---|---|---|---|\n")
        f.write("\n".join(rows) + "\n\n")
        f.write("## Native libraries compiled or linked in\n\n| library | licence | source |\n|---|---|---|\n")
        for lib, lic, url in NATIVE:
            f.write(f"| {lib} | {lic} | {url} |\n")
        f.write("\nThe binary links the GNU C Library statically. Under the LGPL you may relink it with a "
                "modified glibc; the object files needed for that are available from the vendor on request.\n")
    print(f"third-party-licenses: {len(rows)} crates, {len(without_file)} without a licence file of their own",
          file=sys.stderr)
    if missing:
        sys.exit("third-party-licenses: error: no licence information for: " + ", ".join(missing))


if __name__ == "__main__":
    main()
