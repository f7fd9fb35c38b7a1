#!/usr/bin/env python3
"""Build Opal's demo model: a small MLP classifier for scikit-learn's 8x8 handwritten digits.

Run it inside the pinned environment (from the repository root):

    scripts/python-env python models/digits/build.py

It writes, next to this file:

  dataset.csv         the digits data set as registered (64 pixel features 0..16, then the label)
  model.onnx          the trained classifier as a plain ONNX graph (opset 13, ai.onnx domain only)
  sample_input.json   one test digit in opal-infer's tensor JSON form
  expected.json       scikit-learn's labels and probabilities for a few test rows

The model is trained from dataset.csv as written (not from memory), so the file whose hash goes
into the model's lineage is exactly the data it was trained on. The train/test split is a fixed
rule on row index (row i is a test row when i % 4 == 3), so it can be reproduced without this
script. Training runs single-threaded with a fixed seed so that a rebuild gives the same bytes.
"""

import os

# Single-threaded BLAS before numpy is imported: summation order, and so the trained weights, must
# not depend on the machine's thread count.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import csv  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import sklearn  # noqa: E402
import skl2onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
HIDDEN = 32
OPSET = 13
N_EXPECTED = 8


def write_dataset(path):
    """Writes the digits set as CSV: header pixel_r_c..., label; integer values."""
    digits = load_digits()
    names = list(digits.feature_names)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names + ["label"])
        for row, label in zip(digits.data, digits.target):
            w.writerow([int(v) for v in row] + [int(label)])


def read_dataset(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header[-1] == "label" and len(header) == 65, header
    data = np.array([[int(v) for v in r] for r in body], dtype=np.int64)
    return data[:, :64].astype(np.float32), data[:, 64]


def plain_graph(model, classes):
    """Rewrites skl2onnx's classifier head into standard ops only.

    skl2onnx ends with ArgMax -> ArrayFeatureExtractor(classes) -> Reshape -> Cast (the first from
    the ai.onnx.ml domain) and starts with a float->float Cast. The classes are 0..9, so the label
    is the ArgMax itself: the result is Cast-free MatMul/Add/Relu/MatMul/Add/Softmax/ArgMax with
    outputs `label` (int64 [N]) and `probabilities` (float [N,10]).
    """
    assert list(classes) == list(range(len(classes))), classes
    g = model.graph
    ops = [n.op_type for n in g.node]
    want = ["Cast", "MatMul", "Add", "Relu", "MatMul", "Add", "Softmax", "Identity", "ArgMax",
            "ArrayFeatureExtractor", "Reshape", "Cast"]
    if ops != want:
        sys.exit(f"unexpected skl2onnx graph {ops}; update plain_graph()")
    x = g.input[0].name
    cast_out = g.node[0].output[0]
    softmax = g.node[6]
    body = []
    for n in g.node[1:7]:
        n = onnx.NodeProto.FromString(n.SerializeToString())
        n.input[:] = [x if i == cast_out else i for i in n.input]
        body.append(n)
    body[-1].output[:] = ["probabilities"]
    assert softmax.op_type == "Softmax"
    argmax = helper.make_node("ArgMax", ["probabilities"], ["label"], name="ArgMax",
                              axis=1, keepdims=0)
    keep = {i for n in body for i in n.input}
    inits = [t for t in g.initializer if t.name in keep]
    graph = helper.make_graph(
        body + [argmax], "opal_digits_mlp",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                            producer_name="opal models/digits/build.py",
                            producer_version="1")
    out.ir_version = 8
    onnx.checker.check_model(out, full_check=True)
    return out


def main():
    dataset = os.path.join(HERE, "dataset.csv")
    write_dataset(dataset)
    X, y = read_dataset(dataset)
    test = np.arange(len(y)) % 4 == 3
    Xtr, ytr, Xte, yte = X[~test], y[~test], X[test], y[test]

    clf = MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu", solver="adam",
                        random_state=SEED, max_iter=1000)
    clf.fit(Xtr, ytr)
    acc = float(clf.score(Xte, yte))

    raw = to_onnx(clf, Xtr[:1], options={id(clf): {"zipmap": False}}, target_opset=OPSET)
    model = plain_graph(raw, clf.classes_)
    blob = model.SerializeToString(deterministic=True)
    with open(os.path.join(HERE, "model.onnx"), "wb") as f:
        f.write(blob)

    # The exported graph must reproduce scikit-learn on the whole test split.
    sk_proba = clf.predict_proba(Xte)
    sk_label = clf.predict(Xte)
    onnx_acc = None
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        lab, proba = sess.run(["label", "probabilities"], {"X": Xte})
        assert (lab == sk_label).all(), "onnxruntime labels differ from scikit-learn"
        assert np.abs(proba - sk_proba).max() < 1e-5, np.abs(proba - sk_proba).max()
        onnx_acc = float((lab == yte).mean())
    except ImportError:
        pass

    sample = {"dtype": "f32", "shape": [1, 64], "data": [float(v) for v in Xte[0]]}
    with open(os.path.join(HERE, "sample_input.json"), "w") as f:
        json.dump(sample, f)
        f.write("\n")

    rows = np.flatnonzero(test)[:N_EXPECTED]
    expected = {
        "about": "scikit-learn's MLPClassifier on the first test rows (row i of dataset.csv, "
                 "i % 4 == 3); tract must reproduce labels exactly, probabilities within 1e-5",
        "rows": [int(r) for r in rows],
        "inputs": [[float(v) for v in X[r]] for r in rows],
        "targets": [int(y[r]) for r in rows],
        "label": [int(v) for v in sk_label[:N_EXPECTED]],
        "probabilities": [[float(p) for p in row] for row in sk_proba[:N_EXPECTED]],
    }
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        # One key per line, each value compact: readable diffs without a 1000-line file.
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}"
                                     for k, v in expected.items()) + "\n}\n")

    print(f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, "
          f"onnx {onnx.__version__}, numpy {np.__version__}")
    print(f"train rows {len(ytr)}, test rows {len(yte)}, epochs {clf.n_iter_}")
    print(f"test accuracy (scikit-learn, float): {acc:.4f}")
    if onnx_acc is not None:
        print(f"test accuracy (onnxruntime on model.onnx): {onnx_acc:.4f}")
    print(f"model.onnx: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    print("ops:", " ".join(n.op_type for n in model.graph.node))


if __name__ == "__main__":
    main()
