"""Gradient descent (the seed note's Algorithm 1) on logistic regression.

    theta(t+1) = theta(t) - eta * grad L(theta(t))

until the loss stops changing: as the note advises, the stop condition is
judged on *loss values* (|L(t) - L(t-1)| < tol), not on successive parameter
values.  The data are synthetic (a fixed-seed NumPy generator): 500 points
with 5 features, labels drawn from a known logistic model.

L is the mean binary cross-entropy, written with ``log_sigmoid`` so that it
stays finite however confident the model becomes.

Run:  python examples/gradient_descent.py    (exits 1 if a check fails)
"""

import sys
import time

import numpy as np

import functad as fd
import functad.numpy as fnp
from functad import nn
from functad.tree_util import tree_map

# --- synthetic data ---------------------------------------------------------
rng = np.random.default_rng(42)
N, D = 500, 5
X = rng.standard_normal((N, D))
TRUE_W = np.array([2.0, -1.0, 0.5, 0.0, 1.5])
TRUE_B = 0.3
y = (rng.random(N) < 1.0 / (1.0 + np.exp(-(X @ TRUE_W + TRUE_B)))).astype(np.float64)


def logits(params, X):
    # <w, x_i> + b for every row i
    return X @ params["w"] + params["b"]


def loss_fn(params, X, y):
    """Mean binary cross-entropy: -mean(y ln f + (1 - y) ln(1 - f)), f = sigmoid(z)."""
    z = logits(params, X)
    return -fnp.mean(y * nn.log_sigmoid(z) + (1.0 - y) * nn.log_sigmoid(-z))


def accuracy(params, X, y):
    return float(np.mean((np.asarray(logits(params, X)) > 0) == (y > 0.5)))


# --- Algorithm 1 ------------------------------------------------------------
eta = 1.0          # step size (too large a step makes the iteration unstable)
tol = 1e-9         # stop when the loss changes by less than this
max_iter = 5000

params = {"w": fnp.zeros(D), "b": 0.0}
loss_and_grad = fd.value_and_grad(loss_fn)

start = time.perf_counter()
prev = None
print(f"{'iter':>6}  {'loss':>12}")
for it in range(1, max_iter + 1):
    loss, grads = loss_and_grad(params, X, y)
    loss = float(loss)
    if it == 1 or it % 25 == 0:
        print(f"{it:>6}  {loss:12.8f}")
    if prev is not None and abs(prev - loss) < tol:
        break
    prev = loss
    params = tree_map(lambda p, g: p - eta * g, params, grads)
elapsed = time.perf_counter() - start

grad_norm = float(np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in grads.values())))
acc = accuracy(params, X, y)
bayes = float(np.mean(((X @ TRUE_W + TRUE_B) > 0) == (y > 0.5)))
print(f"\nstopped after {it} iterations ({elapsed:.2f} s): |L(t) - L(t-1)| < {tol:g}")
print(f"final loss      {loss:.8f}")
print(f"gradient norm   {grad_norm:.2e}")
print(f"weights         {np.round(np.asarray(params['w']), 3)}   (true {TRUE_W})")
print(f"bias            {float(params['b']):.3f}   (true {TRUE_B})")
print(f"train accuracy  {acc:.3f}   (the true model's: {bayes:.3f})")

failures = []
if it >= max_iter:
    failures.append("did not converge")
if grad_norm > 1e-3:
    failures.append(f"gradient norm {grad_norm:g} is not small at the end")
if acc < 0.75:
    failures.append(f"accuracy {acc:.3f} is too low")
if failures:
    print("FAILED: " + "; ".join(failures))
    sys.exit(1)
print("all checks passed")
