#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) on the same GGUF, measured like `llm_bench` measures candle:
prefill of 128 / 512 tokens (fresh context each run) and decode of 128 tokens one at a time after a
64-token prompt, greedy, single sequence. CPU only; threads from --threads (default: all cores).

Setup (a venv in the cache, outside the repo; llama-cpp-python compiles llama.cpp from source,
several minutes on 2 cores):
    python3 -m venv ~/.cache/opal/bench/llama-venv
    ~/.cache/opal/bench/llama-venv/bin/pip install llama-cpp-python
Run:
    ~/.cache/opal/bench/llama-venv/bin/python crates/llm/bench/llama_cpp_bench.py --model "$(scripts/fetch-smollm2)"
    ... --tokenize    # prints reference token ids for crates/llm/tests/data/llama_cpp_tokens.in
"""
import argparse
import os
import statistics
import time

from llama_cpp import Llama

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how photosynthesis works to a ten year old.",
    "What are the main differences between Rust and C++? Give examples.",
    "Describe a walk through a busy market in Marrakech.",
    "Give me a recipe for a vegetable soup, step by step.",
    "Why do cats purr? List a few theories.",
    "Write a letter to a friend about your first week at a new job.",
    "Summarize the plot of a heist movie you invent.",
]

TOKENIZE_CASES = [
    "Hello world! It's 2026-11-23, 12345 tokens.",
    "  spaces\n\n\tand tabs ",
    "héllo wörld — ✓ 日本語 🙂",
    "I'm sure they'll've DONE it's",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "def f(x):\n    return x**2  # square\n",
    "    \n\n   a  b   c\t\td",
]


def chat(user):
    return (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokenize", action="store_true")
    a = ap.parse_args()
    llm = Llama(model_path=a.model, n_ctx=2048, n_threads=a.threads, n_threads_batch=a.threads,
                n_batch=512, verbose=False, logits_all=False)
    if a.tokenize:
        print("[")
        for t in TOKENIZE_CASES:
            ids = llm.tokenize(t.encode(), add_bos=False, special=True)
            print(f"    ({rust_str(t)}, &{ids}[..]),")
        print("]")
        return
    long = []
    for p in PROMPTS:
        long += llm.tokenize(chat(p).encode(), add_bos=False, special=True)
    print(f"llama.cpp via llama-cpp-python, threads {a.threads}, model {os.path.basename(a.model)}")
    for n in (128, 512):
        toks = (long * 4)[:n]
        ts = []
        for _ in range(a.runs):
            llm.reset()
            llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
            t = time.perf_counter()
            llm.eval(toks)
            ts.append(time.perf_counter() - t)
        print(f"prefill {n:4d} tokens: {n / statistics.median(ts):8.1f} tok/s (median of {a.runs})")
    p = long[:64]
    ts = []
    for _ in range(a.runs):
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        llm.eval(p)
        t = time.perf_counter()
        for _ in range(128):
            tok = llm.sample(temp=0.0)
            llm.eval([tok])
        ts.append(time.perf_counter() - t)
    print(f"decode  128 tokens (after 64): {128 / statistics.median(ts):8.1f} tok/s (median of {a.runs})")


def rust_str(s):
    out = '"'
    for ch in s:
        if ch == '"':
            out += '\\"'
        elif ch == "\\":
            out += "\\\\"
        elif ch == "\n":
            out += "\\n"
        elif ch == "\t":
            out += "\\t"
        else:
            out += ch
    return out + '"'


if __name__ == "__main__":
    main()
