"""Train the two digits example networks in NumPy (no torch) and save their weights.

    python examples/digits/train.py            # writes examples/digits/weights.npz

Data: scikit-learn's bundled digits (1797 images of 8x8 pixels, values 0..16, scaled to
[0, 1]), split with a seeded permutation into 1437 training and 360 test images.

Networks (layouts are the ONNX ones written by ``export.py``):

* MLP: 64 -> 32 (ReLU) -> 10. ``mlp_fc1_w`` is K x N = 64 x 32, ``mlp_fc2_w`` 32 x 10.
* CNN: Conv 1->8 channels, 3x3, padding 1 (ReLU), MaxPool 2x2 -> 8x4x4 = 128 (flattened
  in C, H, W order, as ONNX ``Flatten`` does) -> fully connected -> 10.
  ``cnn_conv1_w`` is OIHW = 8 x 1 x 3 x 3; ``cnn_fc_w`` is N x K = 10 x 128 (Gemm with
  transB=1).

Adam on softmax cross-entropy, float64, everything seeded; BLAS is limited to one thread
(set before NumPy is imported) so that a rerun on the same machine gives the same bits.
The weights are stored as float32, together with the per-tensor calibration maxima of the
quantized activations (max |x| over the training set, computed with the float32 weights).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
N_TEST = 360
SPLIT_SEED = 0


# --------------------------------------------------------------------------- data
def load_data():
    """``(x_train, y_train, x_test, y_test)``: x float32 in [0, 1], N x 64; y int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    test, train = perm[:N_TEST], perm[N_TEST:]
    return x[train], y[train], x[test], y[test]


# --------------------------------------------------------------------------- layers
def softmax_xent(logits, y):
    """Mean cross-entropy and its gradient w.r.t. the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y] + 1e-300).mean()
    g = p
    g[np.arange(n), y] -= 1.0
    return loss, g / n


def im2col(img):
    """N x 8 x 8 image (one channel) -> N x 64 x 9 patches of the 3x3, padding-1 conv."""
    n, h, w = img.shape
    pad = np.zeros((n, h + 2, w + 2), dtype=img.dtype)
    pad[:, 1:-1, 1:-1] = img
    cols = np.empty((n, h * w, 9), dtype=img.dtype)
    for ky in range(3):
        for kx in range(3):
            cols[:, :, ky * 3 + kx] = pad[:, ky:ky + h, kx:kx + w].reshape(n, h * w)
    return cols


def mlp_forward(p, x):
    h = np.maximum(x @ p["mlp_fc1_w"] + p["mlp_fc1_b"], 0.0)
    return h @ p["mlp_fc2_w"] + p["mlp_fc2_b"], h


def cnn_forward(p, x, *, cache=False):
    """x: N x 64 (row-major 8x8). Returns logits (and intermediates if ``cache``)."""
    n = len(x)
    cols = im2col(x.reshape(n, 8, 8))                          # N, 64, 9
    wmat = p["cnn_conv1_w"].reshape(8, 9).T                    # 9, 8
    conv = cols @ wmat + p["cnn_conv1_b"]                      # N, 64(hw), 8(c)
    act = np.maximum(conv, 0.0)
    chw = act.transpose(0, 2, 1).reshape(n, 8, 4, 2, 4, 2)    # N, C, H/2, 2, W/2, 2
    win = chw.transpose(0, 1, 2, 4, 3, 5).reshape(n, 8, 4, 4, 4)  # last axis: 2x2 window
    pooled = win.max(axis=-1)                                  # N, 8, 4, 4
    flat = pooled.reshape(n, 128)                              # C, H, W order
    logits = flat @ p["cnn_fc_w"].T + p["cnn_fc_b"]
    if cache:
        return logits, dict(cols=cols, conv=conv, win=win, flat=flat)
    return logits, flat


def mlp_grads(p, x, y):
    logits, h = mlp_forward(p, x)
    loss, g = softmax_xent(logits, y)
    gh = (g @ p["mlp_fc2_w"].T) * (h > 0)
    return loss, {
        "mlp_fc2_w": h.T @ g, "mlp_fc2_b": g.sum(0),
        "mlp_fc1_w": x.T @ gh, "mlp_fc1_b": gh.sum(0),
    }


def cnn_grads(p, x, y):
    n = len(x)
    logits, c = cnn_forward(p, x, cache=True)
    loss, g = softmax_xent(logits, y)
    grads = {"cnn_fc_w": g.T @ c["flat"], "cnn_fc_b": g.sum(0)}
    gflat = g @ p["cnn_fc_w"]                                  # N, 128
    gpool = gflat.reshape(n, 8, 4, 4)
    # max-pool backward: the gradient goes to the first maximum of each window
    win = c["win"]
    first = np.argmax(win, axis=-1)
    gwin = np.zeros_like(win)
    np.put_along_axis(gwin, first[..., None], gpool[..., None], axis=-1)
    gchw = gwin.reshape(n, 8, 4, 4, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, 8, 64)
    gconv = gchw.transpose(0, 2, 1) * (c["conv"] > 0)          # N, 64, 8
    grads["cnn_conv1_b"] = gconv.sum((0, 1))
    gw = np.einsum("npk,npc->kc", c["cols"], gconv)            # 9, 8
    grads["cnn_conv1_w"] = gw.T.reshape(8, 1, 3, 3)
    return loss, grads


# --------------------------------------------------------------------------- training
def init_mlp(rng):
    return {
        "mlp_fc1_w": rng.normal(0, np.sqrt(2 / 64), (64, 32)),
        "mlp_fc1_b": np.zeros(32),
        "mlp_fc2_w": rng.normal(0, np.sqrt(1 / 32), (32, 10)),
        "mlp_fc2_b": np.zeros(10),
    }


def init_cnn(rng):
    return {
        "cnn_conv1_w": rng.normal(0, np.sqrt(2 / 9), (8, 1, 3, 3)),
        "cnn_conv1_b": np.zeros(8),
        "cnn_fc_w": rng.normal(0, np.sqrt(1 / 128), (10, 128)),
        "cnn_fc_b": np.zeros(10),
    }


def adam(params, grad_fn, x, y, *, epochs, lr, batch, seed, wd=1e-4):
    rng = np.random.default_rng(seed)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        lr_e = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))  # cosine decay
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            _, g = grad_fn(params, x[idx], y[idx])
            t += 1
            for k in params:
                gk = g[k] + wd * params[k]
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                mh = m[k] / (1 - b1 ** t)
                vh = v[k] / (1 - b2 ** t)
                params[k] = params[k] - lr_e * mh / (np.sqrt(vh) + eps)
    return params


def accuracy(logits, y):
    return float((np.argmax(logits, axis=1) == y).mean())


def train(seed=1):
    """Train both networks. Returns ``(weights, report)``; weights are float32 arrays."""
    xtr, ytr, xte, yte = load_data()
    xtr64, xte64 = xtr.astype(np.float64), xte.astype(np.float64)
    rng = np.random.default_rng(seed)
    report = {}

    t0 = time.perf_counter()
    mlp = adam(init_mlp(rng), mlp_grads, xtr64, ytr, epochs=60, lr=5e-3, batch=32, seed=seed)
    report["mlp_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cnn = adam(init_cnn(rng), cnn_grads, xtr64, ytr, epochs=40, lr=5e-3, batch=32, seed=seed)
    report["cnn_seconds"] = time.perf_counter() - t0

    weights = {k: v.astype(np.float32) for k, v in {**mlp, **cnn}.items()}
    # evaluate and calibrate with the float32 weights (as exported), in float64
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    report["mlp_test_acc"] = accuracy(mlp_forward(w64, xte64)[0], yte)
    report["cnn_test_acc"] = accuracy(cnn_forward(w64, xte64)[0], yte)
    _, h = mlp_forward(w64, xtr64)
    _, flat = cnn_forward(w64, xtr64)
    # calibration maxima of the quantized activations over the training set
    weights["calib_input_absmax"] = np.float32(np.abs(xtr).max())
    weights["calib_mlp_fc2_in_absmax"] = np.float32(np.abs(h).max())
    weights["calib_cnn_fc_in_absmax"] = np.float32(np.abs(flat).max())
    return weights, report


def save_npz(path, arrays):
    """Like ``np.savez``, but byte-for-byte reproducible (sorted names, fixed zip dates)."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "weights.npz")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    weights, rep = train(args.seed)
    print(f"MLP float test accuracy: {rep['mlp_test_acc'] * 100:.2f}% "
          f"(trained in {rep['mlp_seconds']:.1f} s)")
    print(f"CNN float test accuracy: {rep['cnn_test_acc'] * 100:.2f}% "
          f"(trained in {rep['cnn_seconds']:.1f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_npz(args.out, weights)
    print(f"wrote {args.out}")
    return rep


if __name__ == "__main__":
    main()
