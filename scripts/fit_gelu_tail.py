#!/usr/bin/python3
"""Fit the table of src/ops/gelu.cpp's erf GELU and measure its error.

GELU(x) = max(x, 0) - t(|x|) with t(a) = a Phi(-a). On each interval [k h, (k + 1) h) of
[0, 7.75), h = 1/4, t is a degree-5 polynomial in f = a / h - k (Chebyshev least squares on 400
nodes, near-minimax); interval 0 fits Phi(-a) with degree 4 and multiplies by a, so that its
constant term is 0 and the error is relative to a. Interval 31 is 0 (t(7.75) < 3.6e-14, below
|x| 2^-47). The coefficients are rounded to f32, and the script evaluates the f32 Horner scheme
(one rounding per fused step) on every f32 value in [2^-30, 8) and 2^20 points below, against
SciPy's double Phi, printing the largest |error| / a in units of u = 2^-24, then the C++ table.

Run: /usr/bin/python3 scripts/fit_gelu_tail.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian_python  # noqa: E402
debian_python.require("numpy", "scipy")
import numpy as np  # noqa: E402
from scipy.special import ndtr  # noqa: E402

H, INTERVALS, DEGREE = 0.25, 32, 5


def tail(a):
    return a * ndtr(-a)


def fit():
    coefficients = np.zeros((DEGREE + 1, INTERVALS))
    f = 0.5 - 0.5 * np.cos(np.pi * (np.arange(400) + 0.5) / 400)  # Chebyshev nodes of [0, 1]
    for k in range(INTERVALS - 1):
        a = H * (k + f)
        if k == 0:
            q = np.polynomial.Chebyshev.fit(f, ndtr(-a), DEGREE - 1, domain=[0, 1])
            c = np.concatenate([[0.0], H * q.convert(kind=np.polynomial.Polynomial).coef])
        else:
            p = np.polynomial.Chebyshev.fit(f, tail(a), DEGREE, domain=[0, 1])
            c = p.convert(kind=np.polynomial.Polynomial).coef
        coefficients[:, k] = c
    return coefficients.astype(np.float32)


def f32_error_in_u(table, a):
    """Largest |t' - t| / a over the f32 values a > 0 (below 8), in units of u = 2^-24, t' the
    kernel's arithmetic: 4 a and f = 4 a - floor(4 a) exact, then Horner's scheme with one
    rounding per fused multiply-add (the product of two f32 values is exact in double)."""
    a = a[(a > 0) & (a < 8)]
    scaled = a * np.float32(1 / H)  # exact: 1/H is a power of two
    k = np.floor(scaled).astype(int)
    f = scaled - np.floor(scaled)
    p = table[DEGREE, k]
    for j in range(DEGREE - 1, -1, -1):
        p = (p.astype(np.float64) * f + table[j, k]).astype(np.float32)
    return np.max(np.abs(p - tail(a.astype(np.float64))) / a) / 2.0**-24


def every_f32(low_exponent, high_exponent):
    """Every f32 value in [2^low_exponent, 2^high_exponent), one binade at a time."""
    for exponent in range(low_exponent, high_exponent):
        bits = np.arange(2**23, dtype=np.uint32) | np.uint32((exponent + 127) << 23)
        yield bits.view(np.float32)


def hex_float(value):
    if value == 0:
        return "0.0f"
    mantissa, exponent = float(value).hex().split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}f"


def main():
    table = fit()
    # Every f32 in [2^-30, 8), and 2^20 points below (where interval 0's terms beyond f are below
    # 2^-25 of its first, so t' is 4 c_1 a rounded once or twice, as at 2^-30).
    worst = max(f32_error_in_u(table, a) for a in every_f32(-30, 3))
    worst = max(worst, f32_error_in_u(table, np.linspace(0, 2.0**-30, 2**20).astype(np.float32)))
    print(f"// largest |error| / a of the f32 evaluation: {worst:.3f} u")
    print(f"alignas(64) constexpr float kTail[{DEGREE + 1}][{INTERVALS}] = {{")
    for j in range(DEGREE + 1):
        values = [hex_float(v) for v in table[j]]
        lines = [", ".join(values[i:i + 6]) for i in range(0, INTERVALS, 6)]
        print("    {" + ",\n     ".join(lines) + "},")
    print("};")


if __name__ == "__main__":
    main()
