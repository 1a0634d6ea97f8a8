"""Independent numpy reference of the evaluation metrics of SPEC.md -> tests/fixtures/metrics.json.

Run from the repository root:  /usr/bin/python3 tests/reference/make_metric_fixtures.py

Metrics as the reference code computes them:
  - images are clamped to [0, 1], scaled by 255 and rounded to uint8 (the inputs here are 8-bit
    PNG files already, so they are simply loaded as uint8 RGB);
  - PSNR = 20 log10(255 / sqrt(MSE)), MSE over all RGB values in float64, no border crop, no Y;
  - SSIM per channel on float64 with the 11x11 Gaussian window (sigma 1.5) built as the outer
    product of the normalised 1-D Gaussian (cv2.getGaussianKernel(11, 1.5)), C1 = (0.01*255)^2,
    C2 = (0.03*255)^2; the filtered maps are kept on the valid region only (what
    cv2.filter2D(...)[5:-5, 5:-5] leaves), the SSIM map is averaged, then the three channels
    are averaged.
Pairs: the 12 SIDD samples, NOISY_k.png (as the "prediction") vs GT_k.png, k = 0..11. Paths in the
JSON are relative to the shared data directory (../shared/data from the repository root).
"""

import json
import math
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
if not os.path.isdir(DATA):
    DATA = "/work/shared/data"
OUT = os.path.join(REPO, "tests", "fixtures", "metrics.json")


def load_rgb_u8(path):
    img = Image.open(path)
    img.load()
    if img.mode != "RGB":
        img = img.convert("RGB")
    a = np.asarray(img, dtype=np.uint8)
    assert a.ndim == 3 and a.shape[2] == 3, (path, a.shape)
    return a


def to_u8(img01):
    """The reference quantisation, for float images in [0, 1] (unused for PNG inputs)."""
    return np.round(np.clip(img01, 0.0, 1.0) * 255.0).astype(np.uint8)


def psnr(pred, clean):
    d = pred.astype(np.float64) - clean.astype(np.float64)
    mse = np.mean(d * d)
    if mse == 0:
        return float("inf")
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def gaussian_window(size=11, sigma=1.5):
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    g /= g.sum()
    return np.outer(g, g)


def filter_valid(img, win):
    """2-D correlation of img (H, W) with win (k, k), valid region only: (H-k+1, W-k+1)."""
    k = win.shape[0]
    H, W = img.shape
    out = np.zeros((H - k + 1, W - k + 1), dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out += win[i, j] * img[i:i + H - k + 1, j:j + W - k + 1]
    return out


def ssim_channel(a, b, win):
    C1 = (0.01 * 255) ** 2
    C2 = (0.03 * 255) ** 2
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mu1 = filter_valid(a, win)
    mu2 = filter_valid(b, win)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filter_valid(a * a, win) - mu1_sq
    s2 = filter_valid(b * b, win) - mu2_sq
    s12 = filter_valid(a * b, win) - mu12
    m = ((2 * mu12 + C1) * (2 * s12 + C2)) / ((mu1_sq + mu2_sq + C1) * (s1 + s2 + C2))
    return float(m.mean())


def ssim(pred, clean):
    win = gaussian_window()
    return float(np.mean([ssim_channel(pred[..., c], clean[..., c], win) for c in range(3)]))


def ssim_torch_check(pred, clean):
    """Alternative computation (separable float64 conv in torch) used only as a cross-check."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    x = np.arange(11, dtype=np.float64) - 5.0
    g = np.exp(-x * x / (2 * 1.5 ** 2))
    g /= g.sum()
    gv = torch.tensor(g).view(1, 1, 11, 1)
    gh = torch.tensor(g).view(1, 1, 1, 11)

    def filt(t):
        return F.conv2d(F.conv2d(t, gv), gh)

    a = torch.tensor(pred.astype(np.float64)).permute(2, 0, 1).unsqueeze(1)
    b = torch.tensor(clean.astype(np.float64)).permute(2, 0, 1).unsqueeze(1)
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt(a), filt(b)
    s1 = filt(a * a) - mu1 ** 2
    s2 = filt(b * b) - mu2 ** 2
    s12 = filt(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 ** 2 + mu2 ** 2 + C1) * (s1 + s2 + C2))
    return float(m.mean(dim=(1, 2, 3)).mean())


def main():
    pairs = []
    for k in range(12):
        pred_rel = "sidd-samples/NOISY_%d.png" % k
        clean_rel = "sidd-samples/GT_%d.png" % k
        pred = load_rgb_u8(os.path.join(DATA, pred_rel))
        clean = load_rgb_u8(os.path.join(DATA, clean_rel))
        assert pred.shape == clean.shape, (pred.shape, clean.shape)
        p, s = psnr(pred, clean), ssim(pred, clean)
        alt = ssim_torch_check(pred, clean)
        if alt is not None and abs(alt - s) > 1e-10:
            sys.exit("SSIM cross-check failed for pair %d: %.15g vs %.15g" % (k, s, alt))
        pairs.append({"pred": pred_rel, "clean": clean_rel, "height": int(pred.shape[0]),
                      "width": int(pred.shape[1]), "psnr": p, "ssim": s})
        print("%-26s %4dx%-4d PSNR %.6f  SSIM %.6f" % (pred_rel, pred.shape[1], pred.shape[0], p, s))
    mean_psnr = float(np.mean([q["psnr"] for q in pairs]))
    mean_ssim = float(np.mean([q["ssim"] for q in pairs]))
    print("mean PSNR %.6f dB  mean SSIM %.6f" % (mean_psnr, mean_ssim))
    # sanity: the data README says the noisy-vs-clean PSNR of these samples averages about 22.98 dB
    assert abs(mean_psnr - 22.98) < 0.01, mean_psnr
    # sanity: identical images give PSNR inf and SSIM 1
    g = load_rgb_u8(os.path.join(DATA, "sidd-samples/GT_11.png"))
    assert psnr(g, g) == float("inf")
    assert abs(ssim(g, g) - 1.0) < 1e-12
    doc = {"data_root": "../shared/data (relative to the repository root)",
           "pairs": pairs, "mean_psnr": mean_psnr, "mean_ssim": mean_ssim}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)  # json writes floats with repr(): full double precision
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
