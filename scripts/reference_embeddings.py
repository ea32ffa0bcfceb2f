#!/usr/bin/env python3
"""Reference embeddings for all-MiniLM-L6-v2, computed outside Rust.

Reads a JSON list of texts on stdin and prints a JSON list of embeddings (one list of
384 floats per text): the model's `last_hidden_state`, mean-pooled over the attention
mask and L2-normalised, which is what fastembed computes with `Pooling::Mean` and max
length 256. Each text is run on its own, without padding: the shipped tokenizer.json
pads to a fixed 128 tokens and truncates at 128, so padding is turned off and
truncation set to 256 tokens.

Needs only onnxruntime, tokenizers and numpy (`pip install onnxruntime tokenizers numpy`)
and the files that scripts/setup-models puts in place:

    echo '["How do I reset my password?"]' |
        python3 scripts/reference_embeddings.py --models-dir .parley/models
"""

import argparse
import json
import os
import sys

MAX_LENGTH = 256

try:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer
except ImportError as err:
    sys.exit(f"{err}: run `python3 -m pip install onnxruntime tokenizers numpy`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models-dir",
        required=True,
        help="the directory scripts/setup-models fills (holds all-minilm-l6-v2/)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)"
    )
    parser.add_argument(
        "--bench-batch",
        type=int,
        default=0,
        help="instead of vectors, print the raw inference throughput at this batch size "
        "(batches padded to their longest text, as fastembed does), as JSON",
    )
    args = parser.parse_args()

    model_dir = os.path.join(args.models_dir, "all-minilm-l6-v2")
    texts = json.load(sys.stdin)
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        sys.exit("stdin must be a JSON list of strings")

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_LENGTH)

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(
        os.path.join(model_dir, "model.onnx"),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    input_names = {i.name for i in session.get_inputs()}
    if args.bench_batch > 0:
        bench(session, tokenizer, input_names, texts, args.bench_batch)
        return

    embeddings = []
    for text in texts:
        encoding = tokenizer.encode(text)
        feed = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        feed = {name: value for name, value in feed.items() if name in input_names}
        (hidden,) = session.run(["last_hidden_state"], feed)  # [1, tokens, 384]

        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        vector = pooled[0]
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        embeddings.append([float(x) for x in vector])

    json.dump(embeddings, sys.stdout)
    sys.stdout.write("\n")


def bench(session, tokenizer, input_names, texts, batch) -> None:
    """Times only session.run over padded batches (tokenizing is done before)."""
    import time

    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    batches = []
    for start in range(0, len(texts), batch):
        encodings = tokenizer.encode_batch(texts[start : start + batch])
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        batches.append({name: value for name, value in feed.items() if name in input_names})
    session.run(["last_hidden_state"], batches[0])  # warm-up
    started = time.perf_counter()
    for feed in batches:
        session.run(["last_hidden_state"], feed)
    elapsed = time.perf_counter() - started
    json.dump({"texts": len(texts), "batch": batch, "seconds": elapsed, "per_second": len(texts) / elapsed}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
