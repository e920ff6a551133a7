"""A small Elman RNN trained with lax.scan: learn to echo the input 3 steps late.

    h_t = tanh(x_t W_x + h_{t-1} W_h + b)        y_t = h_t W_y + c

The task needs memory: the target at step t is the input at step t - 3
(zero for t < 3).  The recurrence over time is one ``lax.scan``, so the loss
is a single staged program whatever the sequence length; its gradient
(reverse mode through the scan: the forward scan stores each step's
residuals, the transposed scan runs backwards through time) is compiled once
with ``functad.jit`` and reused at every training step.  The optimiser is
Adam, written with ``tree_map`` over the parameter dict.

The script checks the scan's gradient against the same RNN unrolled with a
Python loop, trains, and checks that the loss went down (on the training
batches and on held-out sequences).

Run:  python examples/rnn_scan.py    (exits 1 if the loss does not decrease)
"""

import sys
import time

import numpy as np

import functad as fd
import functad.numpy as fnp
from functad import lax
from functad.tree_util import tree_leaves, tree_map

T, BATCH, HIDDEN, DELAY = 20, 32, 16, 3
STEPS, LR = 200, 0.02


def make_batch(rng, n=BATCH):
    """Inputs (T, n, 1) uniform in [-1, 1]; targets the inputs delayed by DELAY."""
    xs = rng.uniform(-1.0, 1.0, size=(T, n, 1))
    ys = np.concatenate([np.zeros((DELAY, n, 1)), xs[:-DELAY]], axis=0)
    return xs, ys


def init_params(rng):
    def glorot(shape):
        return rng.standard_normal(shape) * np.sqrt(1.0 / shape[0])
    return {"W_x": glorot((1, HIDDEN)), "W_h": glorot((HIDDEN, HIDDEN)) * 0.9,
            "b": np.zeros(HIDDEN), "W_y": glorot((HIDDEN, 1)), "c": np.zeros(1)}


def cell(params, h, x):
    h = fnp.tanh(x @ params["W_x"] + h @ params["W_h"] + params["b"])
    return h, h @ params["W_y"] + params["c"]


def loss(params, xs, ys):
    """Mean squared error of the predictions over time and the batch."""
    h0 = fnp.zeros((xs.shape[1], HIDDEN))
    _, preds = lax.scan(lambda h, x: cell(params, h, x), h0, xs)     # preds: (T, n, 1)
    return fnp.mean((preds - ys) ** 2)


def loss_unrolled(params, xs, ys):
    """The same loss with a Python loop over time (the reference)."""
    h, preds = fnp.zeros((xs.shape[1], HIDDEN)), []
    for x in xs:
        h, p = cell(params, h, x)
        preds.append(p)
    return fnp.mean((fnp.stack(preds) - ys) ** 2)


def adam(step_size, b1=0.9, b2=0.999, eps=1e-8):
    def init(params):
        zeros = tree_map(np.zeros_like, params)
        return zeros, zeros, 0

    def update(grads, state, params):
        m, v, t = state
        t += 1
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        scale = step_size * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        params = tree_map(lambda p, m, v: p - scale * m / (np.sqrt(v) + eps), params, m, v)
        return params, (m, v, t)
    return init, update


def main():
    rng = np.random.default_rng(0)
    params = init_params(rng)
    test_xs, test_ys = make_batch(np.random.default_rng(1), 256)

    # the gradient through the scan equals the gradient of the unrolled loop
    xs, ys = make_batch(rng)
    g_scan = fd.grad(loss)(params, xs, ys)
    g_loop = fd.grad(loss_unrolled)(params, xs, ys)
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(tree_leaves(g_scan),
                                                          tree_leaves(g_loop)))
    print(f"gradient through scan vs unrolled loop: max |difference| = {err:.1e}")

    value_and_grad = fd.jit(fd.value_and_grad(loss))
    test_loss = fd.jit(loss)
    opt_init, opt_update = adam(LR)
    state = opt_init(params)
    first_test = float(test_loss(params, test_xs, test_ys))
    print(f"\n{'step':>5}  {'train loss':>10}  {'test loss':>9}")
    start = time.perf_counter()
    history = []
    for step in range(STEPS + 1):
        xs, ys = make_batch(rng)
        value, grads = value_and_grad(params, xs, ys)
        history.append(float(value))
        if step % 50 == 0:
            print(f"{step:>5}  {float(value):10.5f}  {float(test_loss(params, test_xs, test_ys)):9.5f}")
        params, state = opt_update(grads, state, params)
    elapsed = time.perf_counter() - start
    final_test = float(test_loss(params, test_xs, test_ys))
    baseline = float(np.mean(test_ys ** 2))          # predicting 0 everywhere
    print(f"\n{STEPS} Adam steps in {elapsed:.2f} s ({1e3 * elapsed / (STEPS + 1):.1f} ms per "
          f"jitted value_and_grad + update), traced {value_and_grad.trace_count} time(s)")
    print(f"test loss {first_test:.5f} -> {final_test:.5f} (predicting zeros: {baseline:.5f})")

    failures = []
    if err > 1e-10:
        failures.append(f"scan gradient differs from the unrolled loop by {err:g}")
    early, late = np.mean(history[:20]), np.mean(history[-20:])
    if not late < 0.5 * early:
        failures.append(f"training loss did not decrease enough ({early:.4f} -> {late:.4f})")
    if not final_test < 0.5 * min(first_test, baseline):
        failures.append(f"test loss did not decrease enough ({first_test:.4f} -> {final_test:.4f})")
    if value_and_grad.trace_count != 1:
        failures.append("the jitted gradient was traced more than once")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
