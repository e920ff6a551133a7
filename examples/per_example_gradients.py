"""Per-example gradients with vmap: the clipping step of DP-SGD.

Differentially private SGD needs the gradient of the loss of *each example*
separately, to clip each one to a norm bound before averaging. Written for
one example, the gradient is `grad(loss)`; `vmap` maps it over the batch,
sharing the parameters (`in_axes=None`) and splitting the data (`in_axes=0`):

    per_example = vmap(grad(loss), in_axes=(None, 0, 0))

The script checks the result against a Python loop over the examples, prints
the gradient norms, clips them, and runs a few steps of clipped SGD.
Run: python examples/per_example_gradients.py
"""

import sys

import numpy as np

import functad as fd
import functad.numpy as fnp


def loss(w, x, y):
    """Logistic regression on one example: binary cross-entropy with logits."""
    z = fnp.dot(x, w[:-1]) + w[-1]
    return fd.nn.softplus(z) - y * z


per_example_grads = fd.vmap(fd.grad(loss), in_axes=(None, 0, 0))


def clipped_mean_gradient(w, xs, ys, max_norm):
    """Clip every per-example gradient to `max_norm`, then average (DP-SGD without the noise)."""
    g = per_example_grads(w, xs, ys)                              # (batch, params)
    norms = fnp.linalg.norm(g, axis=1)
    scale = fnp.minimum(1.0, max_norm / fnp.maximum(norms, 1e-12))
    return fnp.mean(g * scale[:, None], axis=0), norms


def main():
    rng = np.random.default_rng(0)
    n, d = 256, 5
    xs = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d + 1)
    ys = (xs @ w_true[:-1] + w_true[-1] + 0.5 * rng.standard_normal(n) > 0).astype(np.float64)
    w = np.zeros(d + 1)

    batched = per_example_grads(w, xs, ys)
    looped = np.stack([fd.grad(loss)(w, x, y) for x, y in zip(xs, ys)])
    err = float(np.max(np.abs(batched - looped)))
    print(f"per-example gradients: shape {batched.shape}, max |vmap - loop| = {err:.2e}")
    if err > 1e-12:
        print("FAILED: vmap(grad) differs from the loop")
        return 1

    mean_loss = lambda w: fnp.mean(fd.vmap(loss, in_axes=(None, 0, 0))(w, xs, ys))  # noqa: E731
    for step in range(201):
        g, norms = clipped_mean_gradient(w, xs, ys, max_norm=1.0)
        if step % 50 == 0:
            print(f"step {step:3d}  loss {float(mean_loss(w)):.4f}  gradient norms: "
                  f"median {float(np.median(norms)):.3f}, max {float(np.max(norms)):.3f}")
        w = w - 0.5 * g
    acc = float(np.mean(((xs @ w[:-1] + w[-1]) > 0) == (ys > 0.5)))
    print(f"accuracy after clipped SGD: {acc:.3f}")
    if acc <= 0.8:
        print("FAILED: clipped SGD did not learn")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
