#!/usr/bin/env python3
"""Reference numbers for the digits model on onnxruntime (PyPI), to set beside tract's.

    scripts/python-env python models/digits/bench_onnxruntime.py [ITERATIONS]

Measures session creation and per-request latency for one digit (batch 1) and for a batch of
32, with onnxruntime limited to one thread (tract runs each request on one thread), and checks
that onnxruntime's label for sample_input.json matches expected.json. Timings include the Python
call overhead of `InferenceSession.run`, which is part of what a Python caller pays.
"""

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


def stats(samples):
    s = sorted(samples)
    n = len(s)
    return {
        "mean": sum(s) / n,
        "p50": s[n // 2],
        "p99": s[min(n - 1, n * 99 // 100)],
        "min": s[0],
    }


def line(what, st):
    us = {k: v * 1e6 for k, v in st.items()}
    print(f"{what:<44} mean {us['mean']:9.2f}us  p50 {us['p50']:9.2f}us  "
          f"p99 {us['p99']:9.2f}us  min {us['min']:9.2f}us")


def measure(iters, f):
    for _ in range(max(1, iters // 10)):
        f()
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return stats(out)


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with open(os.path.join(HERE, "model.onnx"), "rb") as f:
        blob = f.read()
    with open(os.path.join(HERE, "sample_input.json")) as f:
        sample = json.load(f)
    with open(os.path.join(HERE, "expected.json")) as f:
        expected = json.load(f)
    x = np.array(sample["data"], dtype=np.float32).reshape(sample["shape"])

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1

    def new_session():
        return ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])

    print(f"onnxruntime {ort.__version__}, model.onnx {len(blob)} bytes, {iters} iterations, "
          "1 thread")
    line("session creation", measure(50, new_session))
    sess = new_session()
    label, _ = sess.run(None, {"X": x})
    assert int(label[0]) == expected["label"][0], (label, expected["label"][0])
    line("run, batch 1", measure(iters, lambda: sess.run(None, {"X": x})))
    xb = np.repeat(x, 32, axis=0)
    b = measure(max(1, iters // 10), lambda: sess.run(None, {"X": xb}))
    line("run, batch 32 (whole batch)", b)
    print(f"{'  per row in batch 32':<44} {b['mean'] * 1e6 / 32:9.2f}us")


if __name__ == "__main__":
    main()
