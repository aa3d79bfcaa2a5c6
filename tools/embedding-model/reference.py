#!/usr/bin/env python3
"""Independent reference implementation of the all-MiniLM-L6-v2 sentence encoder.

Purpose: regenerate the golden values of the Rust test `host/embed/tests/reference.rs`
from an implementation that shares no code with the host's Rust one. It is a plain
numpy BERT forward pass (no torch, no sentence-transformers):

  * word + position + token_type embeddings, LayerNorm (eps from config.json, 1e-12);
  * 6 encoder layers: 12-head self-attention, residual + LayerNorm, feed-forward with
    the exact erf GELU, residual + LayerNorm;
  * mean pooling over the attention mask, then L2 normalisation
    (the sentence-transformers pipeline: modules.json / 1_Pooling/config.json).

Weights are read from model.safetensors by hand (8-byte little-endian header length,
JSON header, raw little-endian data), so only numpy is needed for the maths. Tokenisation
uses the `tokenizers` package with tokenizer.json; its built-in truncation (128) and
fixed padding are disabled and inputs are truncated at max_seq_length (256 tokens,
special tokens included, from sentence_bert_config.json) instead, as sentence-transformers
does. All arithmetic is done in float64 from the float32 weights.

Usage (needs `numpy` and `tokenizers`, e.g. in a venv: pip install numpy tokenizers):

    python3 tools/embedding-model/reference.py [MODEL_DIR]

MODEL_DIR defaults to target/models/all-MiniLM-L6-v2 (as installed by install.py next
to this script). It prints a Rust-ready snippet: the sentences, the first 8 dimensions
of each embedding and the 4x4 cosine similarity matrix, all rounded to 6 decimals.
"""

import json
import math
import pathlib
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = HERE.parent.parent / "target" / "models" / "all-MiniLM-L6-v2"

SENTENCES = [
    "Rotate the API key every 90 days.",
    "How do I roll the credential?",
    "The cafeteria serves lunch at noon.",
    # ~300 words, well over 256 word pieces, so the truncation at max_seq_length matters.
    "Our incident response process begins the moment an alert fires in the monitoring "
    "system. The on-call engineer acknowledges the page within five minutes, opens a "
    "dedicated channel, and posts a short summary of the symptoms that were observed. "
    "If customers are affected, the engineer declares an incident, assigns a severity "
    "level, and names an incident commander who coordinates the work but does not type "
    "commands. A scribe records every action, hypothesis and decision with a timestamp, "
    "because memories fade quickly and the timeline is the backbone of the later review. "
    "Communication with support and with customers happens through a single liaison so "
    "that messages stay consistent and nobody promises a fix that has not been verified. "
    "Engineers are encouraged to mitigate first and investigate later: rolling back a "
    "deployment, draining traffic from a failing region, or disabling a feature flag is "
    "usually faster than finding the root cause under pressure. Once the service is "
    "stable, the commander announces that the incident is resolved and schedules a "
    "blameless postmortem within three working days. The postmortem document describes "
    "the impact, the detection, the response, and the contributing factors, and it lists "
    "concrete follow-up tasks with owners and due dates. We avoid naming individuals as "
    "causes; instead we ask which safeguards were missing, which signals were confusing, "
    "and which tools slowed people down. Follow-up tasks are tracked in the regular "
    "planning process and reviewed every month until they are closed. Over time this "
    "discipline has reduced both the number of incidents and their duration, and it has "
    "made the on-call rotation far less stressful for the whole team. New hires shadow an "
    "experienced engineer for two rotations before they carry the pager alone, and they "
    "practise with game days that simulate outages in a staging environment, including "
    "expired certificates, full disks, slow databases, and misconfigured load balancers "
    "that silently drop a fraction of requests.",
]

DIMS_SHOWN = 8
DECIMALS = 6

_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path):
    """Returns {name: ndarray} read from a .safetensors file with numpy only."""
    data = pathlib.Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]])
        array = np.frombuffer(data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=base + start)
        tensors[name] = array.reshape(info["shape"])
    return tensors


class Weights:
    """Looks tensors up with or without a `bert.` prefix, as float64."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""

    def __call__(self, name):
        return np.asarray(self.tensors[self.prefix + name], dtype=np.float64)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    """Exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def linear(x, w, name):
    # PyTorch Linear layout: weight is [out, in].
    return x @ w(name + ".weight").T + w(name + ".bias")


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def bert_forward(w, config, input_ids, token_type_ids, attention_mask):
    """Returns the last hidden state [seq, hidden] for one unpadded/padded sequence."""
    eps = config["layer_norm_eps"]
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    seq = len(input_ids)

    x = (
        w("embeddings.word_embeddings.weight")[input_ids]
        + w("embeddings.position_embeddings.weight")[np.arange(seq)]
        + w("embeddings.token_type_embeddings.weight")[token_type_ids]
    )
    x = layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)

    # Additive mask as in HF BERT: 0 for real tokens, very negative for padding.
    mask_add = (1.0 - attention_mask.astype(np.float64))[None, None, :] * np.finfo(np.float64).min

    for i in range(config["num_hidden_layers"]):
        p = "encoder.layer.%d." % i

        def split(t):
            return t.reshape(seq, heads, head_dim).transpose(1, 0, 2)  # [heads, seq, head_dim]

        q = split(linear(x, w, p + "attention.self.query"))
        k = split(linear(x, w, p + "attention.self.key"))
        v = split(linear(x, w, p + "attention.self.value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim) + mask_add
        ctx = (softmax(scores) @ v).transpose(1, 0, 2).reshape(seq, hidden)
        attn = linear(ctx, w, p + "attention.output.dense")
        x = layer_norm(
            attn + x, w(p + "attention.output.LayerNorm.weight"), w(p + "attention.output.LayerNorm.bias"), eps
        )
        inter = gelu(linear(x, w, p + "intermediate.dense"))
        out = linear(inter, w, p + "output.dense")
        x = layer_norm(out + x, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps)
    return x


def load_tokenizer(model_dir, max_seq_length):
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    # max_length counts the [CLS]/[SEP] added by the post-processor, like HF tokenizers.
    tok.enable_truncation(max_length=max_seq_length)
    return tok


def embed(w, config, tok, sentence):
    enc = tok.encode(sentence)
    ids = np.array(enc.ids, dtype=np.int64)
    types = np.array(enc.type_ids, dtype=np.int64)
    mask = np.array(enc.attention_mask, dtype=np.int64)
    h = bert_forward(w, config, ids, types, mask)
    m = mask.astype(np.float64)[:, None]
    pooled = (h * m).sum(axis=0) / max(m.sum(), 1e-9)
    return pooled / max(np.linalg.norm(pooled), 1e-12), len(ids)


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fmt(x):
    v = round(float(x), DECIMALS)
    if v == 0:
        v = 0.0  # no "-0.000000"
    return "%.*f" % (DECIMALS, v)


def main():
    model_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL_DIR
    config = json.loads((model_dir / "config.json").read_text())
    max_seq_length = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
    assert config["hidden_act"] == "gelu" and config["position_embedding_type"] == "absolute"

    w = Weights(read_safetensors(model_dir / "model.safetensors"))
    tok = load_tokenizer(model_dir, max_seq_length)

    embeddings, lengths = [], []
    for s in SENTENCES:
        e, n = embed(w, config, tok, s)
        embeddings.append(e)
        lengths.append(n)
    E = np.stack(embeddings)
    cos = E @ E.T

    # Sanity checks.
    for e in E:
        assert abs(np.linalg.norm(e) - 1.0) < 1e-9, "embedding is not unit norm"
    assert cos[0, 1] > cos[0, 2] + 0.1, "paraphrase is not clearly closer than the unrelated sentence"
    assert lengths[3] == max_seq_length, "the long paragraph was not truncated"

    n = len(SENTENCES)
    print("// Generated by tools/embedding-model/reference.py (numpy BERT forward pass, float64).")
    print("// Token counts (with [CLS]/[SEP], truncated at %d): %s" % (max_seq_length, lengths))
    print("const SENTENCES: [&str; %d] = [" % n)
    for s in SENTENCES:
        print("    %s," % rust_str(s))
    print("];")
    print("const FIRST_DIMS: [[f32; %d]; %d] = [" % (DIMS_SHOWN, n))
    for e in E:
        print("    [%s]," % ", ".join(fmt(x) for x in e[:DIMS_SHOWN]))
    print("];")
    print("const COSINE: [[f32; %d]; %d] = [" % (n, n))
    for row in cos:
        print("    [%s]," % ", ".join(fmt(x) for x in row))
    print("];")


if __name__ == "__main__":
    main()
