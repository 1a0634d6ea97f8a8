"""Write tests/fixtures/<name>.safetensors: PyTorch (float64) references for the C++ CPU ops.

Run from the repository root:  /usr/bin/python3 tests/reference/make_fixtures.py

Conventions (every op fixture):
  - inputs are stored as F32 under their own names;
  - "out" (F64) is the reference output, computed in float64 from the float32 inputs (x.double());
  - "R" (F32, same shape as out) is a random projection; "grad_<input>" (F64) is the gradient of
    f = sum(out * R) w.r.t. that input, computed in float64 by autograd;
  - op parameters are strings in __metadata__.
Losses (masked_l1, tv_loss) have a 0-dim "out" and a 0-dim R = 1.
The Restormer fixtures store parameters as "param.<state_dict name>" (F32), gradients as
"grad.<state_dict name>" (F64), plus "input", "out", "R", "grad_input", "padded_input", "padded_out".
"""

import copy
import json
import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
import philox  # noqa: E402
import restormer  # noqa: E402

OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

torch.set_num_threads(1)  # deterministic float64 reductions
torch.use_deterministic_algorithms(True)

WRITTEN = []


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def check(cond, what):
    if not cond:
        raise AssertionError("sanity check failed: " + what)


def close(a, b, what, tol=1e-10):
    a = np.asarray(a.detach() if torch.is_tensor(a) else a, dtype=np.float64)
    b = np.asarray(b.detach() if torch.is_tensor(b) else b, dtype=np.float64)
    check(a.shape == b.shape, what + " (shape %s vs %s)" % (a.shape, b.shape))
    err = np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))) if a.size else 0.0
    check(err <= tol, "%s (rel err %.3g)" % (what, err))


def write(name, tensors, metadata):
    path = os.path.join(OUT_DIR, name + ".safetensors")
    st.save(path, tensors, metadata)
    back, md = st.load(path)  # round-trip check of the writer
    check(md == metadata, name + " metadata round-trip")
    for k, v in tensors.items():
        v = v.detach().numpy() if torch.is_tensor(v) else v
        check(back[k].dtype == v.dtype and np.array_equal(back[k], v), name + " round-trip " + k)
    WRITTEN.append((name, path, list(tensors.keys())))


def op_fixture(name, inputs, diff, fn, metadata=None, scalar=False, extra=None):
    """inputs: dict name -> float32 tensor; diff: names to differentiate; fn(dict of float64) -> out;
    extra: more tensors to store (e.g. an op's second output)."""
    for k, v in inputs.items():
        check(v.dtype == torch.float32, name + ": inputs must be float32")
    d = {k: v.double().requires_grad_(k in diff) for k, v in inputs.items()}
    out = fn(d)
    if scalar:
        check(out.dim() == 0, name + ": loss must be 0-dim")
        R = torch.tensor(1.0, dtype=torch.float32)
    else:
        R = torch.randn(out.shape, dtype=torch.float32)
    f = (out * R.double()).sum()
    grads = torch.autograd.grad(f, [d[k] for k in diff])
    tensors = dict(inputs)
    tensors["out"] = out.detach()
    tensors["R"] = R
    for k, g in zip(diff, grads):
        tensors["grad_" + k] = g.detach()
    tensors.update(extra or {})
    md = {k: str(v) for k, v in (metadata or {}).items()}
    write(name, tensors, md)
    return d, out.detach(), tensors


# --------------------------------------------------------------------------- independent numpy refs

def np_conv2d(x, w, b, pad, groups):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    B, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = H + 2 * pad - KH + 1, W + 2 * pad - KW + 1
    y = np.zeros((B, O, Ho, Wo))
    og = O // groups
    for o in range(O):
        g = o // og
        for c in range(Cg):
            for i in range(KH):
                for j in range(KW):
                    y[:, o] += w[o, c, i, j] * xp[:, g * Cg + c, i:i + Ho, j:j + Wo]
        if b is not None:
            y[:, o] += float(b[o])
    return y


def pd_down(x, s):
    b, c, h, w = x.shape
    y = F.pixel_unshuffle(x, s).view(b, c, s, s, h // s, w // s)
    return y.permute(0, 2, 3, 1, 4, 5).reshape(b * s * s, c, h // s, w // s)


def pd_up(x, s):
    bss, c, hs, ws = x.shape
    b = bss // (s * s)
    y = x.view(b, s, s, c, hs, ws).permute(0, 3, 1, 2, 4, 5).reshape(b, c * s * s, hs, ws)
    return F.pixel_shuffle(y, s)


def layernorm(x, w, b=None):
    mu = x.mean(dim=1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=1, keepdim=True)
    if b is None:
        return x / torch.sqrt(var + 1e-5) * w.view(1, -1, 1, 1)
    return (x - mu) / torch.sqrt(var + 1e-5) * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)


def masked_l1(pred, target, mask):
    c = pred.shape[1]
    return ((pred - target).abs() * mask).sum() / (mask.sum() * c)


def tv_loss(x):
    dv = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
    dh = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
    return torch.sqrt(dv * dv + dh * dh + 1e-6).mean()


# --------------------------------------------------------------------------- op fixtures

def conv_fixtures():
    specs = [
        ("conv2d_dense", (2, 5, 7, 9), (4, 5, 3, 3), True, 1, 1),
        ("conv2d_1x1", (2, 6, 5, 7), (4, 6, 1, 1), False, 0, 1),
        ("conv2d_depthwise", (2, 6, 7, 5), (6, 1, 3, 3), False, 1, 6),
        # The 3x3 depthwise path works in chunks of 8 floats / 4 doubles: widths past one chunk
        # with a remainder, and one-row and one-column images.
        ("conv2d_depthwise_wide", (3, 5, 6, 21), (5, 1, 3, 3), True, 1, 5),
        ("conv2d_depthwise_row", (2, 3, 1, 11), (3, 1, 3, 3), True, 1, 3),
        ("conv2d_depthwise_col", (2, 3, 9, 1), (3, 1, 3, 3), False, 1, 3),
        ("conv2d_grouped", (1, 6, 6, 5), (4, 3, 3, 3), True, 1, 2),
        ("conv2d_k5", (1, 3, 9, 8), (2, 3, 5, 5), True, 2, 1),
        # Non-square kernels: one padding for both axes, so the output is not the input's size.
        ("conv2d_depthwise_3x5", (2, 4, 7, 6), (4, 1, 3, 5), True, 1, 4),
        ("conv2d_dense_1x3", (1, 3, 5, 6), (2, 3, 1, 3), False, 1, 1),
    ]
    for name, xs, ws, has_b, pad, groups in specs:
        seed(name)
        inputs = {"x": torch.randn(xs) + 0.1, "w": torch.randn(ws) * 0.5}
        if has_b:
            inputs["b"] = torch.randn(ws[0]) * 0.5
        diff = list(inputs.keys())
        _, out, t = op_fixture(
            name, inputs, diff,
            lambda d, pad=pad, groups=groups: F.conv2d(d["x"], d["w"], d.get("b"), padding=pad, groups=groups),
            {"padding": pad, "groups": groups, "stride": 1, "kernel_h": ws[2], "kernel_w": ws[3],
             "bias": "true" if has_b else "false"})
        ref = np_conv2d(inputs["x"].numpy(), inputs["w"].numpy(),
                        inputs["b"].numpy() if has_b else None, pad, groups)
        close(out, ref, name + " vs numpy conv")
        # grad_x of a conv is the transposed conv of R: check against conv_transpose2d
        gx = F.conv_transpose2d(t["R"].double(), inputs["w"].double(), padding=pad, groups=groups)
        close(t["grad_x"], gx, name + " grad_x vs conv_transpose2d")
        if has_b:
            close(t["grad_b"], t["R"].double().sum(dim=(0, 2, 3)), name + " grad_b")


def shuffle_fixtures():
    seed("pixel_unshuffle")
    x = torch.randn(2, 3, 6, 10)
    _, out, _ = op_fixture("pixel_unshuffle", {"x": x}, ["x"], lambda d: F.pixel_unshuffle(d["x"], 2), {"r": 2})
    check(torch.equal(F.pixel_shuffle(out, 2), x.double()), "pixel_shuffle(pixel_unshuffle(x)) == x")
    # out[b, c*r*r + i*r + j, y, x] = in[b, c, y*r + i, x*r + j]
    xn, on = x.numpy(), out.numpy()
    for c in range(3):
        for i in range(2):
            for j in range(2):
                check(np.array_equal(on[:, c * 4 + i * 2 + j], xn[:, c, i::2, j::2]), "pixel_unshuffle layout")

    seed("pixel_shuffle")
    x = torch.randn(2, 12, 3, 5)
    _, out, _ = op_fixture("pixel_shuffle", {"x": x}, ["x"], lambda d: F.pixel_shuffle(d["x"], 2), {"r": 2})
    check(torch.equal(F.pixel_unshuffle(out, 2), x.double()), "pixel_unshuffle(pixel_shuffle(x)) == x")


def layernorm_fixtures():
    seed("layernorm_biasfree")
    inputs = {"x": torch.randn(2, 7, 5, 3) + 0.5, "w": 1 + 0.3 * torch.randn(7)}
    _, out, _ = op_fixture("layernorm_biasfree", inputs, ["x", "w"], lambda d: layernorm(d["x"], d["w"]),
                           {"eps": "1e-05", "type": "BiasFree"})
    x = inputs["x"].numpy().astype(np.float64)
    ref = x / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5) * inputs["w"].numpy().astype(np.float64)[None, :, None, None]
    close(out, ref, "layernorm_biasfree vs numpy")
    net_ln = restormer.LayerNorm(7, "BiasFree").double()
    net_ln.body.weight.data.copy_(inputs["w"].double())
    close(out, net_ln(inputs["x"].double()), "layernorm_biasfree vs restormer.LayerNorm")

    seed("layernorm_withbias")
    inputs = {"x": torch.randn(2, 7, 5, 3) + 0.5, "w": 1 + 0.3 * torch.randn(7), "b": 0.3 * torch.randn(7)}
    _, out, t = op_fixture("layernorm_withbias", inputs, ["x", "w", "b"],
                           lambda d: layernorm(d["x"], d["w"], d["b"]), {"eps": "1e-05", "type": "WithBias"})
    xd = inputs["x"].double().requires_grad_(True)
    ref = F.layer_norm(xd.permute(0, 2, 3, 1), (7,), inputs["w"].double(), inputs["b"].double(), 1e-5).permute(0, 3, 1, 2)
    close(out, ref, "layernorm_withbias vs F.layer_norm")
    (g,) = torch.autograd.grad((ref * t["R"].double()).sum(), [xd])
    close(t["grad_x"], g, "layernorm_withbias grad_x vs F.layer_norm")


def attention_fixture():
    seed("attention")
    heads = 2
    inputs = {"qkv": torch.randn(2, 24, 5, 7), "temperature": 0.5 + torch.rand(2, 1, 1)}
    _, out, _ = op_fixture("attention", inputs, ["qkv", "temperature"],
                           lambda d: restormer.mdta_core(d["qkv"], d["temperature"], heads), {"heads": heads})
    # explicit numpy loop over batch and heads
    qkv = inputs["qkv"].numpy().astype(np.float64)
    T = inputs["temperature"].numpy().astype(np.float64)
    C, ch = 8, 4
    ref = np.zeros((2, C, 5, 7))
    for b in range(2):
        for h in range(heads):
            q = qkv[b, h * ch:(h + 1) * ch].reshape(ch, -1)
            k = qkv[b, C + h * ch:C + (h + 1) * ch].reshape(ch, -1)
            v = qkv[b, 2 * C + h * ch:2 * C + (h + 1) * ch].reshape(ch, -1)
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            k = k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-12)
            a = q @ k.T * T[h, 0, 0]
            a = np.exp(a - a.max(axis=1, keepdims=True))
            a /= a.sum(axis=1, keepdims=True)
            ref[b, h * ch:(h + 1) * ch] = (a @ v).reshape(ch, 5, 7)
    close(out, ref, "attention vs numpy loop")
    check(torch.autograd.gradcheck(lambda q, t: restormer.mdta_core(q, t, heads),
                                   (inputs["qkv"][:1, :, :2, :3].double().requires_grad_(),
                                    inputs["temperature"].double().requires_grad_())), "attention gradcheck")


def gelu_fixture():
    seed("gelu_gate")
    inputs = {"x": torch.randn(2, 10, 4, 5) * 1.5}
    _, out, _ = op_fixture("gelu_gate", inputs, ["x"], lambda d: restormer.gelu_gate(d["x"]), {"gelu": "erf"})
    x = inputs["x"].numpy().astype(np.float64)
    erf = np.vectorize(math.erf)
    ref = 0.5 * x[:, :5] * (1 + erf(x[:, :5] / math.sqrt(2))) * x[:, 5:]
    close(out, ref, "gelu_gate vs math.erf")


def pad_crop_fixtures():
    seed("reflect_pad")
    x = torch.randn(1, 3, 5, 6)
    _, out, _ = op_fixture("reflect_pad", {"x": x}, ["x"], lambda d: F.pad(d["x"], (3, 4, 1, 2), mode="reflect"),
                           {"top": 1, "bottom": 2, "left": 3, "right": 4})
    ref = np.pad(x.numpy().astype(np.float64), ((0, 0), (0, 0), (1, 2), (3, 4)), mode="reflect")
    close(out, ref, "reflect_pad vs np.pad", tol=0)

    seed("crop")
    x = torch.randn(1, 3, 7, 9)
    _, out, t = op_fixture("crop", {"x": x}, ["x"], lambda d: d["x"][:, :, 2:6, 1:6],
                           {"top": 2, "left": 1, "height": 4, "width": 5})
    check(out.shape == (1, 3, 4, 5), "crop shape")
    check(float(t["grad_x"].abs().sum()) == float(t["grad_x"][:, :, 2:6, 1:6].abs().sum()), "crop grad support")


def dihedral_fixtures():
    # ops::dihedral(x, k): flip W if k & 1, flip H if k & 2, then transpose H and W if k & 4.
    for k in (3, 5, 6):
        name = "dihedral_%d" % k
        seed(name)
        x = torch.randn(2, 3, 5, 7)

        def fn(d, k=k):
            y = d["x"]
            if k & 1:
                y = torch.flip(y, [3])
            if k & 2:
                y = torch.flip(y, [2])
            return y.transpose(2, 3) if k & 4 else y

        _, out, _ = op_fixture(name, {"x": x}, ["x"], fn, {"k": k})
        ref = x.numpy().astype(np.float64)
        ref = ref[:, :, ::-1 if k & 2 else 1, ::-1 if k & 1 else 1]
        close(out, np.swapaxes(ref, 2, 3) if k & 4 else ref, name + " vs numpy", tol=0)


def pd_fixtures():
    seed("pd_down")
    x = torch.randn(2, 3, 10, 15)
    s = 5
    _, out, t = op_fixture("pd_down", {"x": x}, ["x"], lambda d: pd_down(d["x"], s), {"s": s})
    check(out.shape == (50, 3, 2, 3), "pd_down shape")
    for b in range(2):
        for i in range(s):
            for j in range(s):
                check(torch.equal(out[b * s * s + i * s + j], x[b, :, i::s, j::s].double()),
                      "pd_down sub-image (i, j) holds x[.., i::s, j::s]")
    check(torch.equal(pd_up(out, s), x.double()), "pd_up(pd_down(x)) == x")
    check(torch.equal(t["grad_x"], pd_up(t["R"].double(), s)), "pd_down grad == pd_up(R)")

    seed("pd_up")
    x = torch.randn(8, 3, 4, 5)
    s = 2
    _, out, t = op_fixture("pd_up", {"x": x}, ["x"], lambda d: pd_up(d["x"], s), {"s": s})
    check(out.shape == (2, 3, 8, 10), "pd_up shape")
    check(torch.equal(pd_down(out, s), x.double()), "pd_down(pd_up(x)) == x")
    check(torch.equal(t["grad_x"], pd_down(t["R"].double(), s)), "pd_up grad == pd_down(R)")


def dwconv_gate_fixture():
    # GDFN's depthwise 3x3 and GELU gate as one op: gelu(y[:, :C]) * y[:, C:], y = dwconv3x3(x) + b.
    seed("dwconv_gate")
    inputs = {"x": torch.randn(2, 10, 7, 9), "w": torch.randn(10, 1, 3, 3) * 0.5, "b": torch.randn(10) * 0.3}
    _, out, _ = op_fixture("dwconv_gate", inputs, ["x", "w", "b"],
                           lambda d: restormer.gelu_gate(F.conv2d(d["x"], d["w"], d["b"], padding=1, groups=10)),
                           {"gelu": "erf"})
    y = np_conv2d(inputs["x"], inputs["w"], inputs["b"], 1, 10)
    erf = np.vectorize(math.erf)
    close(out, 0.5 * y[:, :5] * (1 + erf(y[:, :5] / math.sqrt(2))) * y[:, 5:], "dwconv_gate vs numpy")


def recompute_fixtures():
    # The training ops that recompute their middle tensor in backward (engine/ops_recompute.cpp):
    # to the fixtures they are the two ops in a row, in PyTorch.
    seed("norm_conv1x1")
    inputs = {"x": torch.randn(2, 6, 5, 7) + 0.5, "ln_w": 1 + 0.3 * torch.randn(6), "ln_b": 0.3 * torch.randn(6),
              "w": torch.randn(10, 6, 1, 1) * 0.4, "b": torch.randn(10) * 0.3}
    _, out, _ = op_fixture("norm_conv1x1", inputs, ["x", "ln_w", "ln_b", "w", "b"],
                           lambda d: F.conv2d(layernorm(d["x"], d["ln_w"], d["ln_b"]), d["w"], d["b"]),
                           {"eps": "1e-05", "type": "WithBias"})
    x = inputs["x"].numpy().astype(np.float64)
    n = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    n = n * inputs["ln_w"].numpy().astype(np.float64)[None, :, None, None] + \
        inputs["ln_b"].numpy().astype(np.float64)[None, :, None, None]
    close(out, np_conv2d(torch.from_numpy(n), inputs["w"], inputs["b"], 0, 1), "norm_conv1x1 vs numpy")

    seed("dwconv_attention")
    heads = 2
    inputs = {"qkv": torch.randn(2, 12, 5, 7), "w": torch.randn(12, 1, 3, 3) * 0.5, "b": torch.randn(12) * 0.3,
              "temperature": 0.5 + torch.rand(2, 1, 1)}
    _, out, _ = op_fixture("dwconv_attention", inputs, ["qkv", "w", "b", "temperature"],
                           lambda d: restormer.mdta_core(F.conv2d(d["qkv"], d["w"], d["b"], padding=1, groups=12),
                                                         d["temperature"], heads), {"heads": heads})
    check(torch.autograd.gradcheck(
        lambda q, w, b, t: restormer.mdta_core(F.conv2d(q, w, b, padding=1, groups=12), t, heads),
        (inputs["qkv"][:1, :, :3, :4].double().requires_grad_(), inputs["w"].double().requires_grad_(),
         inputs["b"].double().requires_grad_(), inputs["temperature"].double().requires_grad_())),
        "dwconv_attention gradcheck")

    seed("gate_conv1x1")
    inputs = {"x": torch.randn(2, 8, 5, 7), "w_dw": torch.randn(8, 1, 3, 3) * 0.5, "b_dw": torch.randn(8) * 0.3,
              "w": torch.randn(5, 4, 1, 1) * 0.4, "b": torch.randn(5) * 0.3}
    _, out, _ = op_fixture("gate_conv1x1", inputs, ["x", "w_dw", "b_dw", "w", "b"],
                           lambda d: F.conv2d(restormer.gelu_gate(F.conv2d(d["x"], d["w_dw"], d["b_dw"], padding=1,
                                                                          groups=8)), d["w"], d["b"]),
                           {"gelu": "erf"})
    y = np_conv2d(inputs["x"], inputs["w_dw"], inputs["b_dw"], 1, 8)
    erf = np.vectorize(math.erf)
    h = 0.5 * y[:, :4] * (1 + erf(y[:, :4] / math.sqrt(2))) * y[:, 4:]
    close(out, np_conv2d(torch.from_numpy(h), inputs["w"], inputs["b"], 0, 1), "gate_conv1x1 vs numpy")


def rounding_fixture():
    """The precision policies' operand rounding (engine/precision.h), from independent converters:
    bfloat16 by torch (round to nearest even), TF32 (10-bit mantissa) by numpy's float16, which rounds
    to nearest even with the same mantissa width (so only values in float16's normal range)."""
    g = torch.Generator().manual_seed(7)
    mag = torch.pow(10.0, torch.empty(4000).uniform_(-30, 30, generator=g))
    x = (torch.randn(4000, generator=g) * mag).float()
    one = 1.0
    ties = [one + 2.0 ** -8, one + 3 * 2.0 ** -8, -(one + 2.0 ** -8), 3.0 * 2.0 ** -9, 2.0 ** -130,
            3.4e38, -3.39e38, 0.0, -0.0, 1e-45]
    x = torch.cat([x, torch.tensor(ties, dtype=torch.float32)])
    bf16 = x.to(torch.bfloat16).to(torch.float32)
    t = (torch.pow(10.0, torch.empty(4000).uniform_(-4, 4.8, generator=g)) *
         torch.randn(4000, generator=g).sign()).float()
    tties = [one + 2.0 ** -11, one + 3 * 2.0 ** -11, -(one + 2.0 ** -11), 1000.0 + 2.0 ** -2]
    t = torch.cat([t, torch.tensor(tties, dtype=torch.float32)])
    t = t[(t.abs() >= 2.0 ** -14) & (t.abs() <= 65504)]
    tf32 = torch.from_numpy(t.numpy().astype(np.float16).astype(np.float32))
    check(bf16[4000].item() == 1.0 and bf16[4001].item() == 1.0 + 2.0 ** -6, "bf16 ties to even")
    check(torch.isinf(bf16[4005]).item(), "bf16 rounds 3.4e38 past the largest float")
    check(tf32[-4].item() == 1.0 and tf32[-3].item() == 1.0 + 2.0 ** -9, "tf32 ties to even")
    write("rounding", {"x": x, "bf16": bf16, "tf32_in": t, "tf32": tf32}, {})


def mask_metadata(s, seed_, stream, p=0.0, k=0, branch=0, full_h=0, full_w=0, y0=0, x0=0):
    return {"s": s, "seed": seed_, "stream": stream, "p": p, "k": k, "branch": branch,
            "full_h": full_h, "full_w": full_w, "y0": y0, "x0": x0}


def hidden_of(md, B, h, w, branch=None):
    """The (B, 1, h, w) hidden flags of md's mask (philox.py, not the C++ generator)."""
    win = {k: md[k] for k in ("full_h", "full_w", "y0", "x0")}
    return torch.from_numpy(philox.hidden(md["seed"], md["stream"], B, h, w, p=md["p"], k=md["k"],
                                          branch=md["branch"] if branch is None else branch, **win))


def fused_mask_fixtures():
    """masked_pd_down (training's Bernoulli mask; a branch mask in a window) and pd_stitch: the mask
    from philox.py, then the separate torch ops the fused ones replace. `hidden` (F64) is the flags."""
    big_seed = 0x9E3779B97F4A7C15  # both key words non-zero
    cases = [("masked_pd_down", (2, 3, 10, 15), mask_metadata(5, big_seed, philox.make_stream(3, 123457), p=0.5)),
             ("masked_pd_down_branch", (1, 2, 12, 14),
              mask_metadata(2, 77, philox.make_stream(3, 9), k=3, branch=2, full_h=11, full_w=13, y0=4, x0=5))]
    for name, shape, md in cases:
        seed(name)
        s = md["s"]
        B, h, w = shape[0] * s * s, shape[2] // s, shape[3] // s
        hid = hidden_of(md, B, h, w)
        op_fixture(name, {"x": torch.randn(*shape)}, ["x"], lambda d: pd_down(d["x"], s) * (1 - hid), md,
                   extra={"hidden": hid})
        frac = float(hid.mean())
        check(0.2 < frac < 0.8 if md["k"] == 0 else 0.1 < frac < 0.6, name + " hides a plausible share (%.2f)" % frac)

    name = "pd_stitch"
    seed(name)
    md = mask_metadata(2, big_seed, philox.make_stream(3, 5), k=3, full_h=9, full_w=8, y0=1, x0=0)
    B, C, h, w = 8, 3, 5, 7  # 2 images of 10x14 at stride 2
    hid = [hidden_of(md, B, h, w, branch=b) for b in range(3)]
    check(torch.equal(hid[0] + hid[1] + hid[2], torch.ones_like(hid[0])), "pd_stitch branches partition the pixels")
    inputs = {"o%d" % b: torch.randn(B, C, h, w) for b in range(3)}
    _, out, _ = op_fixture(name, inputs, list(inputs), lambda d: pd_up(sum(d["o%d" % b] * hid[b] for b in range(3)), 2),
                           md)
    check(out.shape == (2, C, 10, 14), "pd_stitch shape")


def concat_fixture():
    seed("concat")
    inputs = {"a": torch.randn(2, 3, 4, 5), "b": torch.randn(2, 2, 4, 5)}
    _, out, t = op_fixture("concat", inputs, ["a", "b"], lambda d: torch.cat([d["a"], d["b"]], 1), {"dim": 1})
    check(torch.equal(t["grad_a"], t["R"][:, :3].double()) and torch.equal(t["grad_b"], t["R"][:, 3:].double()),
          "concat grads")


def loss_fixtures():
    seed("masked_l1")
    mask = (torch.rand(2, 1, 6, 5) < 0.5).float()
    check(0 < mask.sum() < mask.numel(), "mask non-trivial")
    inputs = {"pred": torch.randn(2, 3, 6, 5), "target": torch.randn(2, 3, 6, 5), "mask": mask}
    _, out, t = op_fixture("masked_l1", inputs, ["pred"], lambda d: masked_l1(d["pred"], d["target"], d["mask"]),
                           {"reduction": "mean over hidden pixels x channels"}, scalar=True)
    p, g, m = (inputs[k].numpy().astype(np.float64) for k in ("pred", "target", "mask"))
    mb = np.broadcast_to(m, p.shape).astype(bool)
    close(out, np.abs(p - g)[mb].mean(), "masked_l1 vs numpy")
    close(t["grad_pred"], np.sign(p - g) * mb / mb.sum(), "masked_l1 grad vs numpy")

    seed("tv_loss")
    inputs = {"x": torch.randn(2, 3, 6, 7)}
    _, out, _ = op_fixture("tv_loss", inputs, ["x"], lambda d: tv_loss(d["x"]), {"eps": "1e-06"}, scalar=True)
    x = inputs["x"].numpy().astype(np.float64)
    acc = 0.0
    for b in range(2):
        for c in range(3):
            for i in range(5):
                for j in range(6):
                    acc += math.sqrt((x[b, c, i + 1, j] - x[b, c, i, j]) ** 2 +
                                     (x[b, c, i, j + 1] - x[b, c, i, j]) ** 2 + 1e-6)
    close(out, acc / (2 * 3 * 5 * 6), "tv_loss vs loop")
    check(torch.autograd.gradcheck(tv_loss, (inputs["x"].double().requires_grad_(),)), "tv_loss gradcheck")


# --------------------------------------------------------------------------- Restormer fixtures

# The small Restormer of the two model fixtures. With dim 8 it has about 262k (BiasFree) / 267k
# (WithBias) parameters, so each file is about 3.2 MB (F32 params + F64 grads = 12 bytes/param);
# dim 4 would give about 71k parameters (about 0.85 MB per file).
SMALL_CONFIG = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 2, 4, 8],
                "ffn_expansion_factor": 2.66, "inp_channels": 3, "out_channels": 3}


def restormer_fixture(name, bias, ln_type):
    keys = ["dim", "num_blocks", "num_refinement_blocks", "heads", "ffn_expansion_factor", "bias",
            "layernorm_type", "inp_channels", "out_channels"]
    cfg = dict(SMALL_CONFIG, bias=bias, layernorm_type=ln_type)
    cfg = {k: cfg[k] for k in keys}
    seed(name)
    net = restormer.from_config(cfg)  # PyTorch default init, float32
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if ".norm" in pname and pname.endswith(".body.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape))
            elif pname.endswith(".temperature"):
                p.copy_(0.5 + torch.rand(p.shape))
    names = [n for n, _ in net.named_parameters()]
    check(len(names) == len(net.state_dict()), "no buffers in state_dict")
    if bias:
        check("patch_embed.proj.bias" not in names and "down1_2.body.0.bias" not in names and
              "output.bias" in names and "encoder_level1.0.attn.qkv.bias" in names, "bias layout")
    check(("encoder_level1.0.norm1.body.bias" in names) == (ln_type == "WithBias"), "norm bias layout")

    inp = torch.rand(2, 3, 16, 24)
    R = torch.randn(2, 3, 16, 24)
    padded_input = torch.rand(1, 3, 21, 19)

    net64 = copy.deepcopy(net).double()  # float64 copy of the float32 parameters
    x64 = inp.double().requires_grad_(True)
    out = net64(x64)
    f = (out * R.double()).sum()
    params64 = list(net64.parameters())
    grads = torch.autograd.grad(f, params64 + [x64])

    with torch.no_grad():
        xp = F.pad(padded_input.double(), (0, 5, 0, 3), mode="reflect")
        check(xp.shape == (1, 3, 24, 24), "padded shape")
        padded_out = net64(xp)[:, :, :21, :19].contiguous()

    # sanity: the float32 model agrees with the float64 one to float32 accuracy
    with torch.no_grad():
        close(net(inp), out, name + " float32 vs float64 forward", tol=1e-4)
    # sanity: directional finite difference of f along a random direction of (params, input)
    gen = torch.Generator().manual_seed(1)
    dirs = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params64 + [x64]]
    lin = sum(float((g * d).sum()) for g, d in zip(grads, dirs))
    eps = 1e-6
    net_p, net_m = copy.deepcopy(net64), copy.deepcopy(net64)
    with torch.no_grad():
        for pp, pm, d in zip(net_p.parameters(), net_m.parameters(), dirs[:-1]):
            pp.add_(eps * d)
            pm.sub_(eps * d)
        fp = float((net_p(inp.double() + eps * dirs[-1]) * R.double()).sum())
        fm = float((net_m(inp.double() - eps * dirs[-1]) * R.double()).sum())
    fd = (fp - fm) / (2 * eps)
    check(abs(fd - lin) <= 1e-6 * max(1.0, abs(lin)), "%s finite difference %.12g vs autograd %.12g" % (name, fd, lin))

    tensors = {}
    for pname, p in net.named_parameters():
        tensors["param." + pname] = p.detach().clone()
    tensors["input"] = inp
    tensors["out"] = out.detach()
    tensors["R"] = R
    for pname, g in zip(names, grads[:-1]):
        tensors["grad." + pname] = g.detach()
    tensors["grad_input"] = grads[-1].detach()
    tensors["padded_input"] = padded_input
    tensors["padded_out"] = padded_out
    md = {"config": json.dumps(cfg), "padded_pad_bottom": "3", "padded_pad_right": "5",
          "padded_pad_mode": "reflect", "num_params": str(sum(p.numel() for p in net.parameters()))}
    write(name, tensors, md)
    print("  %s: %d parameters, |out| max %.4f" % (name, sum(p.numel() for p in net.parameters()),
                                                   float(out.abs().max())))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    conv_fixtures()
    shuffle_fixtures()
    layernorm_fixtures()
    attention_fixture()
    gelu_fixture()
    pad_crop_fixtures()
    dihedral_fixtures()
    pd_fixtures()
    dwconv_gate_fixture()
    recompute_fixtures()
    rounding_fixture()
    fused_mask_fixtures()
    concat_fixture()
    loss_fixtures()
    restormer_fixture("restormer_small_biasfree", False, "BiasFree")
    restormer_fixture("restormer_small_withbias", True, "WithBias")
    for name, path, keys in WRITTEN:
        print("%-28s %8d bytes  %s" % (name, os.path.getsize(path),
                                       ", ".join(keys) if len(keys) < 12 else "%d tensors" % len(keys)))
    print("all sanity checks passed; %d fixtures in %s" % (len(WRITTEN), OUT_DIR))


if __name__ == "__main__":
    main()
