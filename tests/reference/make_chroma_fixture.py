"""Independent numpy reference of the chroma smoothing and its calibration objective
(train/chroma.h, train/gaussian.h) -> tests/fixtures/chroma.safetensors.

Run from the repository root:  /usr/bin/python3 tests/reference/make_chroma_fixture.py

  - Gaussian blur: the normalised 2-D kernel exp(-(i^2 + j^2) / (2 sigma^2)), |i|, |j| <= ceil(3 sigma),
    applied as one 2-D correlation (not separably, as the C++ does) to the plane padded by np.pad's
    "reflect" (mirror without repeating the edge, repeated when the radius exceeds the plane);
  - chroma smoothing: RGB -> YCbCr by BT.601 (JPEG's constants, no offsets), blur Cb and Cr, back
    by the matrix inverse (np.linalg.inv);
  - objective: mean |u - noisy| + lambda * (TV(Y) + a * (TV(Cb) + TV(Cr))), TV of a plane = the mean
    over its (H-1) x (W-1) cells of sqrt(dx^2 + dy^2 + 1e-6), dx = u[i, j+1] - u[i, j],
    dy = u[i+1, j] - u[i, j]; summed over images.
Everything in float64 from float32 inputs. Deterministic: rerunning gives byte-identical files.
"""

import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "chroma.safetensors"))
M = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def blur(plane, sigma):
    r = int(math.ceil(3 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma * sigma))
    k /= k.sum()
    p = np.pad(plane, r, mode="reflect")
    h, w = plane.shape
    out = np.zeros((h, w))
    for i in range(2 * r + 1):
        for j in range(2 * r + 1):
            out += k[i, j] * p[i:i + h, j:j + w]
    return out


def chroma_smooth(img, sigma):  # (N, 3, H, W)
    out = np.empty_like(img)
    for n in range(img.shape[0]):
        ycc = np.einsum("cd,dhw->chw", M, img[n])
        ycc[1] = blur(ycc[1], sigma)
        ycc[2] = blur(ycc[2], sigma)
        out[n] = np.einsum("cd,dhw->chw", np.linalg.inv(M), ycc)
    return out


def tv(p):
    dy = p[1:, :-1] - p[:-1, :-1]
    dx = p[:-1, 1:] - p[:-1, :-1]
    return np.mean(np.sqrt(dx * dx + dy * dy + 1e-6))


def objective(u, noisy, lam, a):
    total = 0.0
    for n in range(u.shape[0]):
        ycc = np.einsum("cd,dhw->chw", M, u[n])
        total += np.mean(np.abs(u[n] - noisy[n])) + lam * (tv(ycc[0]) + a * (tv(ycc[1]) + tv(ycc[2])))
    return total


def main():
    rng = np.random.default_rng(20261124)
    t = {}
    # Smooth content plus blotchy colour noise, so the blur and the objective see both.
    x = rng.random((2, 3, 11, 13)).astype(np.float32)
    small = rng.random((1, 3, 4, 6)).astype(np.float32)  # radius 8 > both sides: repeated mirroring
    noisy = (x + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    t["x"], t["small"], t["noisy"] = x, small, noisy
    x64, s64 = x.astype(np.float64), small.astype(np.float64)
    t["blur_0_8"] = np.stack([[blur(x64[n, c], 0.8) for c in range(3)] for n in range(2)])
    t["blur_small_2_5"] = np.stack([[blur(s64[0, c], 2.5) for c in range(3)]])
    t["chroma_1_5"] = chroma_smooth(x64, 1.5)
    t["chroma_small_2_5"] = chroma_smooth(s64, 2.5)
    t["objective_x"] = np.array(objective(x64, noisy.astype(np.float64), 0.6, 2.0))
    t["objective_chroma_1_5"] = np.array(objective(t["chroma_1_5"], noisy.astype(np.float64), 0.6, 2.0))
    # Sanity: the inverse transform undoes the forward one; the blur keeps a constant plane.
    back = np.einsum("cd,dhw->chw", np.linalg.inv(M), np.einsum("cd,dhw->chw", M, x64[0]))
    assert np.max(np.abs(back - x64[0])) < 1e-12, "YCbCr round trip"
    assert np.max(np.abs(blur(np.full((4, 6), 0.3), 2.5) - 0.3)) < 1e-12, "blur of a constant"
    st.save(OUT, t, {"lambda": "0.6", "chroma_weight": "2"})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
