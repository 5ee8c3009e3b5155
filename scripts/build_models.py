#!/usr/bin/env python3
"""Build basin's reference ONNX models into a git-ignored cache (default `.cache/models/`).

basin calibrates its cost tables (latency and energy per model x backend x batch size) on real
ONNX Runtime and Triton. Nothing but package registries is reachable at run time, so the models
are built here from packages rather than downloaded:

* ``resnet18.onnx`` -- the ResNet-18 architecture of He et al., "Deep Residual Learning for
  Image Recognition", CVPR 2016 (Table 1, 18-layer column; BasicBlocks with 1x1 projection
  shortcuts where the shape changes, as in torchvision). Conv + BatchNormalization nodes (ONNX
  Runtime folds them at session creation), He-normal random weights. 11,689,512 parameters.
* ``bert6.onnx`` -- a 6-layer post-LayerNorm Transformer encoder (Vaswani et al. 2017) with
  DistilBERT's dimensions (Sanh et al. 2019: hidden 768, 12 heads, FFN 3072, exact erf-GELU,
  vocabulary 30522, 512 learned positions, no token types) and DistilBERT's
  sequence-classification head ([CLS] -> Linear 768 -> ReLU -> Linear 2). N(0, 0.02) random
  weights. ~67 M parameters, ~268 MB of float32.
* ``digits_{tiny,small,medium,large}.onnx`` -- classifiers trained on scikit-learn's bundled
  copy of the UCI optical digits test set (``load_digits``: 1797 8x8 images, 16 grey levels),
  written as ONNX graphs from the trained weights (MatMul/Gemm/Relu/Softmax). They take raw
  pixel values 0..16 and scale them inside the graph. Random weights are fine for cost; these
  give real accuracy and real confidence for the accuracy side of the simulator.

Also written: ``quality.csv`` (joint per-sample quality on the held-out split, long format
``sample,model,confidence,correct`` with confidence = max softmax probability from ONNX
Runtime), ``digits_test.csv`` (``sample,dataset_index,label,px0..px63`` for replay) and
``models.json`` (inputs, outputs, parameter counts, sha256, digits test accuracy).

Idempotent: when every file listed in ``models.json`` exists with the recorded sha256 the
script exits at once; ``--force`` rebuilds. Files are written to a temp name then renamed.
Run with the project venv (scripts/build-models.sh sets it up first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SEED = 20161  # base seed; each model derives its own stream from it
OPSET = 17  # LayerNormalization needs 17; ONNX Runtime >= 1.13 runs it
REPO = Path(__file__).resolve().parent.parent
DIGITS_MODELS = ("digits_tiny", "digits_small", "digits_medium", "digits_large")
ALL_MODELS = ("resnet18", "bert6", *DIGITS_MODELS)


# --------------------------------------------------------------------------------------------
# Small graph-building helper
# --------------------------------------------------------------------------------------------
class Graph:
    """Accumulates nodes and initializers; names are generated from a prefix."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n_params = 0  # trainable parameters (excludes BN running statistics)

    def init(self, name: str, array: np.ndarray, trainable: bool = True) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array, order="C"), name))  # keeps 0-d
        if trainable:
            self.n_params += int(array.size)
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        return self.init(name, array, trainable=False)

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def model(self, name: str, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="basin/scripts/build_models.py",
            doc_string=doc,
        )
        model.ir_version = 8  # readable by any ONNX Runtime >= 1.10
        return model


# --------------------------------------------------------------------------------------------
# ResNet-18
# --------------------------------------------------------------------------------------------
def build_resnet18(seed: int) -> tuple[onnx.ModelProto, int]:
    g = Graph(np.random.default_rng(seed))
    f32 = np.float32

    def conv_bn(x: str, name: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        # He-normal (fan_out, as torchvision) for the conv; BN with identity statistics plus a
        # little noise so that folding is not a no-op.
        std = np.sqrt(2.0 / (cout * k * k))
        w = g.init(f"{name}.weight", (g.rng.standard_normal((cout, cin, k, k)) * std).astype(f32))
        y = g.op("Conv", [x, w], f"{name}.conv", kernel_shape=[k, k], strides=[stride, stride],
                 pads=[k // 2] * 4)
        gamma = g.init(f"{name}.bn.gamma", (1 + 0.05 * g.rng.standard_normal(cout)).astype(f32))
        beta = g.init(f"{name}.bn.beta", (0.05 * g.rng.standard_normal(cout)).astype(f32))
        mean = g.const(f"{name}.bn.mean", (0.05 * g.rng.standard_normal(cout)).astype(f32))
        var = g.const(f"{name}.bn.var", (1 + 0.05 * g.rng.random(cout)).astype(f32))
        y = g.op("BatchNormalization", [y, gamma, beta, mean, var], f"{name}.bn", epsilon=1e-5)
        return g.op("Relu", [y], f"{name}.relu") if relu else y

    def basic_block(x: str, name: str, cin: int, cout: int, stride: int) -> str:
        y = conv_bn(x, f"{name}.conv1", cin, cout, 3, stride, relu=True)
        y = conv_bn(y, f"{name}.conv2", cout, cout, 3, 1, relu=False)
        shortcut = x
        if stride != 1 or cin != cout:  # projection shortcut (option B of the paper)
            shortcut = conv_bn(x, f"{name}.downsample", cin, cout, 1, stride, relu=False)
        y = g.op("Add", [y, shortcut], f"{name}.add")
        return g.op("Relu", [y], f"{name}.out")

    x = conv_bn("input", "conv1", 3, 64, 7, 2, relu=True)  # 112x112
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if (stage > 1 and block == 0) else 1
            x = basic_block(x, f"layer{stage}.{block}", cin, cout, stride)
            cin = cout
    x = g.op("GlobalAveragePool", [x], "avgpool")
    x = g.op("Flatten", [x], "flatten", axis=1)
    bound = 1 / np.sqrt(512)
    w = g.init("fc.weight", g.rng.uniform(-bound, bound, (1000, 512)).astype(f32))
    b = g.init("fc.bias", g.rng.uniform(-bound, bound, 1000).astype(f32))
    g.op("Gemm", [x, w, b], "logits", transB=1)
    model = g.model(
        "resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        "ResNet-18 (He et al. 2016), random He-normal weights, seed %d" % seed,
    )
    return model, g.n_params


# --------------------------------------------------------------------------------------------
# 6-layer Transformer encoder with DistilBERT dimensions
# --------------------------------------------------------------------------------------------
def build_bert6(seed: int, seq_len: int = 128) -> tuple[onnx.ModelProto, int]:
    hidden, heads, ffn, layers, vocab, max_pos, n_labels = 768, 12, 3072, 6, 30522, 512, 2
    head_dim = hidden // heads
    g = Graph(np.random.default_rng(seed))
    f32 = np.float32

    def normal(shape) -> np.ndarray:
        return (g.rng.standard_normal(shape, dtype=f32) * f32(0.02)).astype(f32)

    def linear(x: str, name: str, din: int, dout: int) -> str:
        w = g.init(f"{name}.weight", normal((din, dout)))  # stored [in, out] for MatMul
        b = g.init(f"{name}.bias", np.zeros(dout, f32))
        return g.op("Add", [g.op("MatMul", [x, w], f"{name}.matmul"), b], f"{name}.out")

    def layer_norm(x: str, name: str) -> str:
        scale = g.init(f"{name}.weight", np.ones(hidden, f32))
        bias = g.init(f"{name}.bias", np.zeros(hidden, f32))
        return g.op("LayerNormalization", [x, scale, bias], f"{name}.out", axis=-1, epsilon=1e-12)

    # Shapes used by Reshape: 0 copies the (dynamic) batch dimension.
    split_heads = g.const("shape.split_heads", np.array([0, seq_len, heads, head_dim], np.int64))
    merge_heads = g.const("shape.merge_heads", np.array([0, seq_len, hidden], np.int64))

    # Embeddings: word + learned position, then LayerNorm (DistilBERT has no token types).
    word = g.init("embeddings.word", normal((vocab, hidden)))
    pos_table = g.init("embeddings.position", normal((max_pos, hidden)))
    pos_ids = g.const("position_ids", np.arange(seq_len, dtype=np.int64))
    x = g.op("Gather", [word, "input_ids"], "embeddings.word_out", axis=0)
    pos = g.op("Gather", [pos_table, pos_ids], "embeddings.position_out", axis=0)
    x = layer_norm(g.op("Add", [x, pos], "embeddings.sum"), "embeddings.ln")

    # Additive attention mask [N,1,1,S]: 0 where attended, -1e9 where masked.
    one = g.const("const.one", np.array(1.0, f32))
    neg = g.const("const.neg", np.array(-1e9, f32))
    m = g.op("Cast", ["attention_mask"], "mask.float", to=TensorProto.FLOAT)
    m = g.op("Mul", [g.op("Sub", [one, m], "mask.inv"), neg], "mask.bias2d")
    mask_axes = g.const("mask.axes", np.array([1, 2], np.int64))
    mask = g.op("Unsqueeze", [m, mask_axes], "mask.bias")
    scale = g.const("attn.scale", np.array(1 / np.sqrt(head_dim), f32))
    sqrt_half = g.const("gelu.inv_sqrt2", np.array(1 / np.sqrt(2.0), f32))
    half = g.const("gelu.half", np.array(0.5, f32))

    def heads_of(t: str, name: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [t, split_heads], f"{name}.split")],
                    f"{name}.heads", perm=perm)

    for i in range(layers):
        p = f"layer{i}"
        q = heads_of(linear(x, f"{p}.q", hidden, hidden), f"{p}.q", [0, 2, 1, 3])  # N,H,S,D
        k = heads_of(linear(x, f"{p}.k", hidden, hidden), f"{p}.k", [0, 2, 3, 1])  # N,H,D,S
        v = heads_of(linear(x, f"{p}.v", hidden, hidden), f"{p}.v", [0, 2, 1, 3])  # N,H,S,D
        s = g.op("Mul", [g.op("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scores")
        a = g.op("Softmax", [g.op("Add", [s, mask], f"{p}.masked")], f"{p}.probs", axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [a, v], f"{p}.ctx")], f"{p}.ctx_t",
                   perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_heads], f"{p}.ctx_merged")
        x = layer_norm(g.op("Add", [x, linear(ctx, f"{p}.o", hidden, hidden)], f"{p}.res1"),
                       f"{p}.ln1")
        h = linear(x, f"{p}.ffn1", hidden, ffn)
        # exact GELU: 0.5 x (1 + erf(x / sqrt 2)); ONNX Runtime fuses this into one Gelu op
        e = g.op("Erf", [g.op("Mul", [h, sqrt_half], f"{p}.gelu.scaled")], f"{p}.gelu.erf")
        e = g.op("Add", [e, one], f"{p}.gelu.onep")
        h = g.op("Mul", [g.op("Mul", [h, e], f"{p}.gelu.xe"), half], f"{p}.gelu")
        x = layer_norm(g.op("Add", [x, linear(h, f"{p}.ffn2", ffn, hidden)], f"{p}.res2"),
                       f"{p}.ln2")

    cls_index = g.const("cls.index", np.array(0, np.int64))
    cls = g.op("Gather", [x, cls_index], "cls", axis=1)  # [N, hidden]
    pre = g.op("Relu", [linear(cls, "pre_classifier", hidden, hidden)], "pre_classifier.relu")
    w = g.init("classifier.weight", normal((hidden, n_labels)))
    b = g.init("classifier.bias", np.zeros(n_labels, f32))
    g.op("Gemm", [pre, w, b], "logits")
    model = g.model(
        "bert6",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", seq_len]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", seq_len])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_labels])],
        "6-layer Transformer encoder, DistilBERT dimensions, random N(0,0.02) weights, seed %d"
        % seed,
    )
    return model, g.n_params


# --------------------------------------------------------------------------------------------
# Digits classifiers (scikit-learn load_digits)
# --------------------------------------------------------------------------------------------
def pool_matrix() -> np.ndarray:
    """64x16 matrix that averages 2x2 pixel blocks of an 8x8 image into a 4x4 image."""
    p = np.zeros((64, 16), np.float32)
    for r in range(8):
        for c in range(8):
            p[r * 8 + c, (r // 2) * 4 + c // 2] = 0.25
    return p


def digits_data(seed: int):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float32)  # raw grey levels 0..16
    idx = np.arange(len(x))
    tr, te = train_test_split(idx, test_size=0.3, random_state=seed, stratify=d.target)
    return x[tr], d.target[tr], x[te], d.target[te], te


def train_digits(name: str, x_train, y_train, seed: int):
    """Train one digits classifier; returns (sklearn estimator, ONNX model, n_params, arch)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    xs = x_train / 16.0
    g = Graph(np.random.default_rng(seed))
    scale = g.const("scale", np.array(1 / 16, np.float32))
    h = g.op("Mul", ["input", scale], "scaled")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if name == "digits_tiny":
            pool = pool_matrix()
            est = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
            est.fit(xs @ pool, y_train)
            est.predict_input = lambda x: (x / 16.0) @ pool  # type: ignore[attr-defined]
            h = g.op("MatMul", [h, g.const("pool", pool)], "pooled")
            layers = [(est.coef_.T, est.intercept_)]
            arch = "logistic regression on 4x4 average-pooled pixels (16 -> 10)"
        else:
            hidden = {"digits_small": (16,), "digits_medium": (128,),
                      "digits_large": (1024, 1024)}[name]
            est = MLPClassifier(hidden_layer_sizes=hidden, activation="relu", alpha=1e-4,
                                max_iter=400, random_state=seed)
            est.fit(xs, y_train)
            est.predict_input = lambda x: x / 16.0  # type: ignore[attr-defined]
            layers = list(zip(est.coefs_, est.intercepts_))
            arch = "MLP 64 -> %s -> 10, ReLU" % " -> ".join(map(str, hidden))
    for i, (w, b) in enumerate(layers):
        wi = g.init(f"fc{i}.weight", w.astype(np.float32))
        bi = g.init(f"fc{i}.bias", b.astype(np.float32))
        h = g.op("Gemm", [h, wi, bi], f"fc{i}")
        if i + 1 < len(layers):
            h = g.op("Relu", [h], f"fc{i}.relu")
    g.op("Softmax", [h], "probs", axis=1)
    model = g.model(
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        f"{arch}; trained on sklearn load_digits, raw pixels 0..16 in, softmax out",
    )
    return est, model, g.n_params, arch


# --------------------------------------------------------------------------------------------
# I/O helpers
# --------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_model(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model, full_check=True)
    atomic_write(path, lambda p: p.write_bytes(model.SerializeToString()))


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def io_spec(path: Path) -> tuple[list[dict], list[dict]]:
    sess = session(path)
    def spec(v):
        t = v.type.removeprefix("tensor(").removesuffix(")")  # ORT says tensor(float)
        return {"name": v.name, "shape": [d if isinstance(d, int) else "N" for d in v.shape],
                "dtype": {"float": "float32", "double": "float64"}.get(t, t)}
    return [spec(v) for v in sess.get_inputs()], [spec(v) for v in sess.get_outputs()]


def up_to_date(out: Path) -> bool:
    manifest = out / "models.json"
    if not manifest.is_file():
        return False
    try:
        meta = json.loads(manifest.read_text())
        files = [m["file"] for m in meta["models"].values()] + list(meta["data_files"].keys())
        hashes = {m["file"]: m["sha256"] for m in meta["models"].values()} | meta["data_files"]
        if set(meta["models"]) != set(ALL_MODELS):
            return False
        return all((out / f).is_file() and sha256(out / f) == hashes[f] for f in files)
    except (KeyError, ValueError, TypeError):
        return False


# --------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path,
                    default=Path(os.environ.get("BASIN_CACHE", REPO / ".cache")) / "models")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    if not args.force and up_to_date(out):
        print(f"build_models: {out} is up to date (sha256 verified in "
              f"{time.perf_counter() - t_all:.1f} s); use --force to rebuild")
        return 0

    models: dict[str, dict] = {}

    def record(name: str, n_params: int, **extra) -> None:
        path = out / f"{name}.onnx"
        inputs, outputs = io_spec(path)
        models[name] = {"file": path.name, "inputs": inputs, "outputs": outputs,
                        "params": n_params, "bytes": path.stat().st_size,
                        "sha256": sha256(path), **extra}

    # ResNet-18 --------------------------------------------------------------------------
    t = time.perf_counter()
    model, n = build_resnet18(args.seed + 1)
    save_model(model, out / "resnet18.onnx")
    t_build = time.perf_counter() - t
    sess = session(out / "resnet18.onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    t = time.perf_counter()
    (y,) = sess.run(None, {"input": x})
    t_run = time.perf_counter() - t
    assert y.shape == (2, 1000) and np.isfinite(y).all(), y.shape
    record("resnet18", n, task="image classification (ImageNet-1k shape), random weights",
           architecture="ResNet-18 (He et al. 2016), Conv+BatchNormalization, fp32")
    print(f"build_models: resnet18  {n:>11,} params {models['resnet18']['bytes'] / 1e6:7.1f} MB"
          f"  build {t_build:5.1f} s, ORT run batch 2: {t_run * 1e3:.0f} ms")

    # bert6 ------------------------------------------------------------------------------
    t = time.perf_counter()
    model, n = build_bert6(args.seed + 2)
    save_model(model, out / "bert6.onnx")
    del model
    t_build = time.perf_counter() - t
    sess = session(out / "bert6.onnx")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30522, (2, 128), dtype=np.int64)
    ids[:, 0] = 101  # [CLS]
    mask = np.ones((2, 128), np.int64)
    mask[1, 64:] = 0  # second sequence padded
    t = time.perf_counter()
    (y,) = sess.run(None, {"input_ids": ids, "attention_mask": mask})
    t_run = time.perf_counter() - t
    assert y.shape == (2, 2) and np.isfinite(y).all(), y
    record("bert6", n, task="sequence classification (2 labels), random weights",
           architecture="6-layer Transformer encoder, DistilBERT dims (768/12/3072, vocab "
                        "30522, 512 positions), seq len 128, fp32")
    print(f"build_models: bert6     {n:>11,} params {models['bert6']['bytes'] / 1e6:7.1f} MB"
          f"  build {t_build:5.1f} s, ORT run batch 2: {t_run * 1e3:.0f} ms")

    # digits -----------------------------------------------------------------------------
    t = time.perf_counter()
    x_train, y_train, x_test, y_test, test_idx = digits_data(args.seed)
    quality_rows: list[str] = []
    for k, name in enumerate(DIGITS_MODELS):
        t1 = time.perf_counter()
        est, model, n, arch = train_digits(name, x_train, y_train, args.seed + 10 + k)
        path = out / f"{name}.onnx"
        save_model(model, path)
        probs = session(path).run(None, {"input": x_test})[0]
        ref = est.predict_proba(est.predict_input(x_test.astype(np.float64)))
        max_err = float(np.abs(probs - ref).max())
        agree = float((probs.argmax(1) == est.predict(est.predict_input(x_test))).mean())
        if max_err > 1e-4 or agree != 1.0:
            raise SystemExit(f"build_models: {name}: ONNX Runtime disagrees with scikit-learn "
                             f"(max |dp| = {max_err:.2e}, argmax agreement {agree:.4f})")
        pred = probs.argmax(1)
        conf = probs.max(1)
        correct = (pred == y_test).astype(int)
        acc = float(correct.mean())
        quality_rows += [f"{i},{name},{conf[i]:.6f},{correct[i]}" for i in range(len(y_test))]
        record(name, n, task="handwritten digit classification (sklearn load_digits)",
               architecture=arch, test_accuracy=round(acc, 6),
               mean_confidence=round(float(conf.mean()), 6), n_test=int(len(y_test)),
               max_abs_diff_vs_sklearn=max_err)
        print(f"build_models: {name:<13} {n:>7,} params  test acc {acc:.4f}  mean conf "
              f"{conf.mean():.4f}  |ORT-sklearn| {max_err:.1e}  ({time.perf_counter() - t1:.1f} s)")

    def write_quality(p: Path) -> None:
        p.write_text("sample,model,confidence,correct\n" + "\n".join(quality_rows) + "\n")

    def write_test(p: Path) -> None:
        header = "sample,dataset_index,label," + ",".join(f"px{i}" for i in range(64))
        rows = [f"{i},{test_idx[i]},{y_test[i]}," + ",".join(str(int(v)) for v in x_test[i])
                for i in range(len(y_test))]
        p.write_text(header + "\n" + "\n".join(rows) + "\n")

    atomic_write(out / "quality.csv", write_quality)
    atomic_write(out / "digits_test.csv", write_test)
    print(f"build_models: digits total {time.perf_counter() - t:.1f} s "
          f"({len(x_train)} train / {len(y_test)} test samples)")

    meta = {
        "generator": "scripts/build_models.py",
        "seed": args.seed,
        "opset": OPSET,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "digits_split": {"source": "sklearn.datasets.load_digits", "test_size": 0.3,
                         "stratified": True, "random_state": args.seed,
                         "n_train": int(len(x_train)), "n_test": int(len(y_test)),
                         "input": "raw pixel grey levels 0..16 (scaled by 1/16 in the graph)"},
        "models": models,
        "data_files": {f: sha256(out / f) for f in ("quality.csv", "digits_test.csv")},
    }
    atomic_write(out / "models.json",
                 lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    total_mb = sum(m["bytes"] for m in models.values()) / 1e6
    print(f"build_models: wrote {len(models)} models ({total_mb:.0f} MB) + quality.csv, "
          f"digits_test.csv, models.json to {out} in {time.perf_counter() - t_all:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
