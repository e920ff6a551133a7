"""Run each example as a user would (``python examples/X.py``) and check its
exit code and the key numbers it prints."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert proc.returncode == 0, (f"{name} exited with {proc.returncode}\n--- stdout\n"
                                  f"{proc.stdout}\n--- stderr\n{proc.stderr}")
    assert "FAILED" not in proc.stdout
    assert "all checks passed" in proc.stdout
    return proc.stdout


def test_seed_logistic():
    out = run_example("seed_logistic.py")
    assert re.search(r"df/dx\(0\)\s*=\s*-1\.5\b", out)
    assert "vjp(f, 0)(1.0) = -1.5" in out
    # the forward table: exp node value 1, partial -1; 1/(1+x) value 0.5, partial -0.25
    assert re.search(r"1/\(1\+x\)\s+1\.0000\s+0\.500000\s+-0\.2500", out)
    assert re.search(r"-ln\(x\)\s+0\.5000\s+0\.693147\s+-2\.0000", out)
    # the adjoint 1/2 between 1/(1+x) and exp, product of -2 and -1/4
    assert "= -2 * -0.25 = 0.5" in out
    # the jaxpr and the linear jaxpr are printed
    assert "= exp " in out and "{ lambda" in out


def test_seed_two_neuron():
    out = run_example("seed_two_neuron.py")
    assert "loss  = 0.693147180559945" in out
    assert re.search(r"dL/dtheta1 = \[-0\.35355339 -0\.35355339\]", out)
    assert re.search(r"dL/dtheta2 = \[0\.35355339 0\.35355339\]", out)
    assert re.search(r"dL/dw\s+= \[-0\.5 -0\.5\]", out)
    assert "max |theta1 - theta2| = 0\n" in out


def test_gradient_descent():
    out = run_example("gradient_descent.py")
    m = re.search(r"stopped after (\d+) iterations \(([\d.]+) s\)", out)
    assert m, out
    assert int(m.group(1)) < 5000
    assert float(m.group(2)) < 5.0
    acc = float(re.search(r"train accuracy\s+([\d.]+)", out).group(1))
    assert acc >= 0.75
    losses = [float(v) for v in re.findall(r"^\s*\d+\s+([\d.]+)$", out, flags=re.M)]
    assert len(losses) >= 3
    assert losses[0] == pytest.approx(0.69314718)        # ln 2 at w = 0
    assert all(b <= a for a, b in zip(losses, losses[1:]))   # monotone descent


def test_per_example_gradients():
    out = run_example("per_example_gradients.py")
    m = re.search(r"per-example gradients: shape \(256, 6\), max \|vmap - loop\| = (\S+)", out)
    assert m and float(m.group(1)) <= 1e-12
    losses = [float(v) for v in re.findall(r"loss (\d\.\d+)", out)]
    assert losses[0] == pytest.approx(0.69314718, abs=1e-4) and losses[-1] < 0.3
    assert float(re.search(r"accuracy after clipped SGD: ([\d.]+)", out).group(1)) > 0.8


def test_newton():
    out = run_example("newton.py")
    assert re.search(r"start \[-1\.2\s+1\. \]: 7 Newton steps -> p = \[1\. 1\.\]", out)
    assert "Python-loop reference: 7 steps" in out
    assert "staged as one 'while' primitive" in out
    steps = [int(k) for k in re.findall(r"-> +(\d+) steps, p = \[1\. 1\.\]", out)]
    assert len(steps) == 5 and len(set(steps)) > 2


def test_rnn_scan():
    out = run_example("rnn_scan.py")
    assert float(re.search(r"unrolled loop: max \|difference\| = (\S+)", out).group(1)) <= 1e-10
    m = re.search(r"test loss ([\d.]+) -> ([\d.]+) \(predicting zeros: ([\d.]+)\)", out)
    first, final, zeros = map(float, m.groups())
    assert final < 0.1 * zeros and final < first
    assert "traced 1 time(s)" in out
