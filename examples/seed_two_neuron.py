"""The seed note's worked example 2: a one-hidden-layer network of width 2.

    h_j = relu(<theta_j, x> + b_j),  j = 1, 2        (ReLU "ridge" neurons)
    f   = sigmoid(<w, h> + b_w)                      (probability of y = 1)
    L   = -(y ln f + (1 - y) ln(1 - f))              (binary cross-entropy)

At the initialisation consistent with the note, x = theta1 = theta2 =
(1/sqrt2, 1/sqrt2), w = (1, -1), all biases 0, and a positive sample y = 1:

    L = ln 2,  dL/dtheta1 = (-1/(2 sqrt2), -1/(2 sqrt2)),
               dL/dtheta2 = (+1/(2 sqrt2), +1/(2 sqrt2)),  dL/dw = (-1/2, -1/2).

The parameters are a dict (a pytree); ``value_and_grad`` returns the loss and
a dict of gradients of the same structure, the functional form of the
note's PyTorch loop (``loss.backward(); optimizer.step()``).

The second part shows the note's point about initialisation: if w1 = w2 (and
theta1 = theta2) the two hidden units get identical gradients, so gradient
descent can never make them differ.

Run:  python examples/seed_two_neuron.py     (exits 1 if a check fails)
"""

import math
import sys

import numpy as np

import functad as fd
import functad.numpy as fnp
from functad import nn
from functad.tree_util import tree_map

failures = []


def check_close(what, got, expected, tol=1e-12):
    got = np.asarray(got, dtype=np.float64)
    ok = got.shape == np.shape(expected) and np.allclose(got, expected, rtol=0, atol=tol)
    print(f"  check {what}: {got} vs {np.asarray(expected)}  {'ok' if ok else 'FAILED'}")
    if not ok:
        failures.append(what)


def logit(params, x):
    """<w, h> + b_w for the hidden activations h_j = relu(<theta_j, x> + b_j)."""
    h1 = nn.relu(fnp.dot(params["theta1"], x) + params["b1"])
    h2 = nn.relu(fnp.dot(params["theta2"], x) + params["b2"])
    h = fnp.stack([h1, h2])
    return fnp.dot(params["w"], h) + params["bw"]


def loss_fn(params, x, y):
    """Binary cross-entropy of sigmoid(logit), with ln f = log_sigmoid(z) and
    ln(1 - f) = log_sigmoid(-z): the same value, without log(0) for large |z|."""
    z = logit(params, x)
    return -(y * nn.log_sigmoid(z) + (1.0 - y) * nn.log_sigmoid(-z))


# --- 1. The note's initialisation --------------------------------------------
r = 1.0 / math.sqrt(2.0)
x = fnp.array([r, r])
y = 1.0
params = {
    "theta1": fnp.array([r, r]), "b1": 0.0,
    "theta2": fnp.array([r, r]), "b2": 0.0,
    "w": fnp.array([1.0, -1.0]), "bw": 0.0,
}

loss, grads = fd.value_and_grad(loss_fn)(params, x, y)
print("Width-2 ReLU network, sigmoid output, BCE loss, y = 1")
print(f"  f(x)  = sigmoid({float(logit(params, x)):g}) = "
      f"{float(nn.sigmoid(logit(params, x))):g}")
print(f"  loss  = {float(loss):.15f}   (ln 2 = {math.log(2):.15f})")
for k in sorted(grads):
    print(f"  dL/d{k:<7}= {np.asarray(grads[k])}")
q = 1.0 / (2.0 * math.sqrt(2.0))
print(f"  (1/(2 sqrt2) = {q:.8f})")
check_close("loss = ln 2", loss, math.log(2.0))
check_close("dL/dtheta1", grads["theta1"], [-q, -q])
check_close("dL/dtheta2", grads["theta2"], [q, q])
check_close("dL/dw", grads["w"], [-0.5, -0.5])
check_close("dL/db_w = f - y", grads["bw"], -0.5)

# --- 2. Symmetric initialisation (the note's item 8) -----------------------------
# With theta1 = theta2 and w1 = w2 the two hidden units compute the same thing
# and receive the same gradient; gradient descent keeps them equal forever.
print("\nSymmetric initialisation: w1 = w2")
sym = dict(params, w=fnp.array([0.5, 0.5]))
_, g = fd.value_and_grad(loss_fn)(sym, x, y)
print(f"  dL/dtheta1 = {np.asarray(g['theta1'])}")
print(f"  dL/dtheta2 = {np.asarray(g['theta2'])}")
check_close("identical hidden-unit gradients", g["theta1"], np.asarray(g["theta2"]), tol=0.0)

rng = np.random.default_rng(0)
xs = rng.standard_normal((16, 2))
ys = (xs[:, 0] - xs[:, 1] > 0).astype(np.float64)


def data_loss(p):
    return sum(loss_fn(p, fnp.asarray(xi), float(yi)) for xi, yi in zip(xs, ys)) / len(xs)


def descend(p, steps=25, eta=0.5):
    """Algorithm 1: p <- p - eta * grad L(p); update = the note's optimizer.step()."""
    for _ in range(steps):
        _, grads = fd.value_and_grad(data_loss)(p)
        p = tree_map(lambda v, g: v - eta * g, p, grads)
    return p


trained = descend(sym)
gap = float(np.max(np.abs(np.asarray(trained["theta1"]) - np.asarray(trained["theta2"]))))
print(f"  after 25 gradient steps on 16 points: max |theta1 - theta2| = {gap:g}")
check_close("symmetric units stay identical", gap, 0.0, tol=0.0)

rand = dict(params, theta1=fnp.asarray(rng.standard_normal(2)),
            theta2=fnp.asarray(rng.standard_normal(2)), w=fnp.asarray(rng.standard_normal(2)))
trained = descend(rand)
gap = float(np.max(np.abs(np.asarray(trained["theta1"]) - np.asarray(trained["theta2"]))))
print(f"  from a random initialisation instead:   max |theta1 - theta2| = {gap:.3f}")

if failures:
    print(f"\nFAILED: {', '.join(failures)}")
    sys.exit(1)
print("\nall checks passed")
