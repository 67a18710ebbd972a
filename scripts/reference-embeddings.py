#!/usr/bin/env python3
"""Reference sentence embeddings for the embedding correctness test.

Computes the vectors of a fixed list of varied sentences with the real sentence-transformers library
on PyTorch (CPU), loading the model from the same local directory the Rust tests use (never from the
hub), and writes them with the library versions to tests/fixtures/embeddings/reference.json. The test
(tests/integration/embeddings.rs) asserts that Enclave's vectors have a cosine >= 0.999 with these.

Re-run (only needed when the sentences or the default model change):

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch \
        || /tmp/st-venv/bin/pip install torch      # PyPI's wheel: same library, run here on the CPU
    /tmp/st-venv/bin/pip install sentence-transformers
    /tmp/st-venv/bin/python scripts/reference-embeddings.py [MODEL_DIR] [OUTPUT]

MODEL_DIR defaults to $ENCLAVE_TEST_MODELS/all-MiniLM-L6-v2 (scripts/fetch-models.sh fetches it),
OUTPUT to tests/fixtures/embeddings/reference.json.
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # the model comes from the local directory only
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import sentence_transformers  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

LONG = " ".join(
    [
        "The appliance keeps every document, prompt and answer inside the customer's network.",
        "Administrators install it as a single binary, point it at a data directory and sign in.",
        "Tenants are created for teams, each with its own users, keys, quotas and audit trail.",
        "Models run on the CPU, so no accelerator is needed, although one can make things faster.",
        "When a request arrives it is authenticated, rate limited, metered and then scheduled.",
        "Embeddings turn sentences into vectors so that similar meanings end up close together.",
        "Search then compares those vectors with the cosine, and the nearest passages are returned.",
        "Long inputs are cut at the model's limit, and the response says that this has happened.",
    ]
    * 4
)

MEDIUM = (
    "Between 128 and 256 tokens: this passage is longer than the 128 tokens the tokenizer file of "
    "the model pads and truncates to, but shorter than the 256 tokens sentence-transformers allows, "
    "so an implementation that keeps the tokenizer file's settings gets a different vector. "
    "It goes on to describe a day at the seaside: the tide came in slowly over the flat sand, "
    "children built castles with moats and towers, gulls argued over a dropped sandwich, an old man "
    "read yesterday's newspaper under a striped umbrella, and as the sun went down the ice-cream van "
    "played its tune one last time before driving back up the winding coastal road towards the town, "
    "where the lights of the harbour were already shining on the water and the fishing boats were "
    "getting ready to leave for the night."
)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello!",
    "",
    "a",
    "A man is eating food.",
    "How do I reset my password if I lost access to my email?",
    "Enclave runs AI models inside your network, on the CPU, without sending data anywhere.",
    "Le chat dort sur le canapé pendant que la pluie tombe.",
    "Die Datenbank wird jede Nacht um drei Uhr gesichert.",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "مرحبا بالعالم",
    'fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!("{v:?}"); }',
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "I love pizza 🍕🍕 and sunny days ☀️😎",
    "!!! ??? ... --- ;;; :: (( )) [[ ]] {{ }} @@ ## $$ %% ^^ && ** ~~",
    "Invoice #4711: 3 × 19.99 EUR = 59.97 EUR, due 2025-03-31.",
    "Contact support@example.com or visit https://example.com/docs?page=2#install",
    "   \t\n  spaced   out\ttext \n",
    "ÉCOLE Naïve Café RÉSUMÉ",
    MEDIUM,
    LONG,
]


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    default_models = os.environ.get(
        "ENCLAVE_TEST_MODELS", str(Path.home() / ".cache/enclave/test-data/models")
    )
    model_dir = Path(sys.argv[1] if len(sys.argv) > 1 else Path(default_models) / "all-MiniLM-L6-v2")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else root / "tests/fixtures/embeddings/reference.json")

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    entries = []
    for text, vector in zip(SENTENCES, vectors):
        full = len(model.tokenizer(text)["input_ids"])
        used = int(model.tokenize([text])["attention_mask"].sum())
        entries.append(
            {
                "text": text,
                "tokens": used,
                "tokens_before_truncation": full,
                "truncated": full > model.max_seq_length,
                "vector": [float(f"{x:.8g}") for x in vector.tolist()],
            }
        )
    fixture = {
        "about": "Reference vectors for tests/integration/embeddings.rs, written by scripts/reference-embeddings.py",
        "model": model_dir.name,
        "max_seq_length": model.max_seq_length,
        "dimensions": int(vectors.shape[1]),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "sentences": entries,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(entries)} reference vectors to {out}")
    for e in entries:
        print(f"  {e['tokens']:4} tokens{' (truncated)' if e['truncated'] else ''}: {e['text'][:60]!r}")


if __name__ == "__main__":
    main()
