"""The seed note's worked example 1, backpropagation by hand and by functad.

    f(x) = -ln(1 / (1 + exp(-a x))),   a = 3,   df/dx(0) = -3/2

(the negative log-likelihood of logistic regression for one positive sample).
The note builds ``f`` from three "library functions" whose derivatives are
known, ``-ln(x)``, ``exp(-x)`` and ``1/(1+x)``, and differentiates it in two
phases:

* forward (its figure 6): evaluate the nodes in order and store on each one
  its local partial derivative;
* backward (figure 7): starting from 1 at the output, multiply the incoming
  adjoint by each stored partial.  Between ``1/(1+x)`` and ``exp`` the adjoint
  is ``1/2``, the product of ``-2`` (from ``-ln``) and ``-1/4`` (from
  ``1/(1+x)``).

This script does it by hand, node by node, then shows the same computation
inside functad: the jaxpr of ``f``, the linear jaxpr that ``linearize``
stages (its constants are the stored partials), the VJP, and both figures as
``functad.debug.show_backprop`` draws them.

Run:  python examples/seed_logistic.py       (exits 1 if a check fails)
"""

import sys

import functad as fd
import functad.numpy as fnp

A = 3.0


# The note's three library functions, each with its known derivative.
def neg_log(x):          # d/dx = -1/x
    return -fnp.log(x)


def exp_neg(x):          # d/dx = -exp(-x)
    return fnp.exp(-x)


def inv_1p(x):           # d/dx = -1/(1+x)^2
    return 1.0 / (1.0 + x)


def scale(x):            # the input layer a*x, d/dx = a
    return A * x


def f(x):
    return neg_log(inv_1p(exp_neg(scale(x))))


failures = []


def check(what, got, expected):
    ok = got == expected
    print(f"  check {what}: {got!r} == {expected!r}  {'ok' if ok else 'FAILED'}")
    if not ok:
        failures.append(what)


# --- 1. functad's answer ---------------------------------------------------
x0 = 0.0
dfdx = fd.grad(f)(x0)
print(f"f(x) = -ln(1/(1+exp(-{A:g} x)))")
print(f"f(0)      = {float(f(x0)):.6f}   (ln 2 = 0.693147)")
print(f"df/dx(0)  = {float(dfdx)}")
check("df/dx(0)", float(dfdx), -1.5)

# --- 2. Forward pass by hand: value and local partial of each node -----------
# fd.value_and_grad of each elementary function gives the value of the node
# and the derivative of that node with respect to its input.
print("\nForward pass (seed figure 6): each node stores its local partial")
print(f"  {'node':<10}{'input':>10}{'value':>12}{'local partial':>16}")
nodes = [("a*x", scale), ("exp(-x)", exp_neg), ("1/(1+x)", inv_1p), ("-ln(x)", neg_log)]
tape = []
v = x0
for name, fn in nodes:
    out, partial = fd.value_and_grad(fn)(v)
    tape.append((name, float(partial)))
    print(f"  {name:<10}{float(v):>10.4f}{float(out):>12.6f}{float(partial):>16.4f}")
    v = out

# --- 3. Backward pass by hand: multiply adjoints by the stored partials -------
print("\nBackward pass (seed figure 7): adjoint = incoming adjoint * local partial")
adjoint = 1.0
print(f"  adjoint of the output f              = {adjoint:g}")
adjoints = {}
for name, partial in reversed(tape):
    new = adjoint * partial
    print(f"  adjoint of the input of {name:<10}   = {adjoint:g} * {partial:g} = {new:g}")
    adjoints[name] = new
    adjoint = new
# the input of 1/(1+x) is the output of exp: the note's adjoint 1/2 = (-2) * (-1/4)
check("adjoint between 1/(1+x) and exp", adjoints["1/(1+x)"], 0.5)
check("(-2) * (-1/4)", tape[3][1] * tape[2][1], 0.5)
check("hand-made df/dx(0)", adjoint, -1.5)

# --- 4. The same inside functad ---------------------------------------------
print("\nThe graph functad traces (make_jaxpr): one equation per primitive")
print(fd.make_jaxpr(f)(x0))

y, f_jvp = fd.linearize(f, x0)
print("\nThe linear jaxpr staged by the forward pass (linearize).  The numbers it")
print("multiplies by (inline literals or constvars) are the stored local partials:")
print("exp: 1;  1/(1+x): -1/4, a 'mul 0.25' then 'neg';  -ln: -1/x = -2, 'mul 2' then 'neg'")
print(f_jvp.linear_jaxpr)
consts = getattr(f_jvp.linear_jaxpr, "consts", None)
if consts:
    print("  constvars (in order):", [float(c) for c in consts])
check("jvp of the linearization at t=1", float(f_jvp(1.0)), -1.5)

# At the top level, vjp records the same partials on a tape and multiplies
# back through them (under jit or vmap it transposes the linear jaxpr).
_, f_vjp = fd.vjp(f, x0)
(ct,) = f_vjp(1.0)
print(f"\nvjp(f, 0)(1.0) = {float(ct)}")
check("vjp", float(ct), -1.5)

# Both of the note's pictures for this function, drawn by functad: values and
# local partials forward (figure 6), adjoints backward (figure 7).
report = fd.debug.show_backprop(f, x0)
print("\nfd.debug.show_backprop(f, 0.0):")
print(report)
exp_value = next(node[1] for node in report.tape.nodes if node[4].name == "exp")
check("show_backprop: adjoint of the output of exp", float(report.adjoints[exp_value]), 0.5)
check("show_backprop: gradient", float(report.grad), -1.5)

# Forward mode gives the same number (one tangent in, one out).
_, t = fd.jvp(f, (x0,), (1.0,))
check("jvp", float(t), -1.5)

if failures:
    print(f"\nFAILED: {', '.join(failures)}")
    sys.exit(1)
print("\nall checks passed")
