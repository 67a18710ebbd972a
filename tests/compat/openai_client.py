"""The official `openai` Python client against Enclave's /v1 API, unmodified but for base_url and key.

Run by tests/integration/inference.rs with ENCLAVE_BASE_URL (http://127.0.0.1:PORT/v1) and
ENCLAVE_API_KEY (a key with the `inference` scope). Prints "all checks passed" or raises.
"""
import base64
import os
import struct

import openai

client = openai.OpenAI(base_url=os.environ["ENCLAVE_BASE_URL"], api_key=os.environ["ENCLAVE_API_KEY"])

models = [m.id for m in client.models.list()]
assert "SmolLM2-135M-Instruct" in models and "all-MiniLM-L6-v2" in models, models

question = [{"role": "user", "content": "What is the capital city of France? Answer in one sentence."}]
whole = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=question, temperature=0, max_tokens=40)
text = whole.choices[0].message.content
assert "Paris" in text, text
assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0, whole.usage
assert whole.choices[0].finish_reason in ("stop", "length"), whole.choices[0].finish_reason

pieces = []
usage = None
stream = client.chat.completions.create(
    model="SmolLM2-135M-Instruct", messages=question, temperature=0, max_tokens=40,
    stream=True, stream_options={"include_usage": True})
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
assert len(pieces) > 3, pieces
assert "".join(pieces) == text, ("".join(pieces), text)
assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens, usage

emb = client.embeddings.create(model="all-MiniLM-L6-v2", input=["The cat sits on the mat.", "A kitten rests on a rug."])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384, emb
assert emb.usage.prompt_tokens > 0
# The client asks for base64 by default when numpy is absent and decodes it itself; ask explicitly too.
raw = client.embeddings.create(model="all-MiniLM-L6-v2", input="The cat sits on the mat.", encoding_format="base64")
vector = raw.data[0].embedding
if isinstance(vector, str):
    vector = list(struct.unpack(f"<{len(base64.b64decode(vector)) // 4}f", base64.b64decode(vector)))
assert max(abs(a - b) for a, b in zip(vector, emb.data[0].embedding)) < 1e-5

try:
    client.chat.completions.create(model="no-such-model", messages=question)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e.code

print("all checks passed")
