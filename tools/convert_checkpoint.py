#!/usr/bin/env python3
"""Convert a reference checkpoint to amsnet's safetensors weights.

Accepts a Restormer state_dict (.pth; also BasicSR's {"params": ...} wrapping) or a Lightning .ckpt
of the reference AMSNet code, whose keys sit under a prefix such as "net.dn.branches.0.". The
prefix is stripped (the first branch is kept), the Restormer configuration is inferred from the
tensor names and shapes and written into __metadata__["config"], as `amsnet` expects.

    /usr/bin/python3 tools/convert_checkpoint.py model.ckpt model.safetensors

Needs PyTorch (Debian: python3-torch); nothing else in the project does.
"""
import argparse
import json
import struct
import sys

import torch

ANCHOR = "patch_embed.proj.weight"


def find_state_dict(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "params_ema", "params", "model", "net"):
            if key in obj and isinstance(obj[key], dict):
                return find_state_dict(obj[key])
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    sys.exit("convert_checkpoint: no state_dict of tensors found in the checkpoint")


def strip_prefix(sd):
    prefixes = [k[: -len(ANCHOR)] for k in sd if k.endswith(ANCHOR)]
    if not prefixes:
        sys.exit(f"convert_checkpoint: not a Restormer checkpoint (no key ending in {ANCHOR})")
    prefix = min(prefixes, key=len)
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def count(sd, level):
    n = 0
    while f"{level}.{n}.norm1.body.weight" in sd:
        n += 1
    return n


def infer_config(sd):
    dim = sd[ANCHOR].shape[0]
    levels = ["encoder_level1", "encoder_level2", "encoder_level3", "latent"]
    hidden = [sd[f"{lv}.0.ffn.project_out.weight"].shape[1] for lv in levels]
    factor = None
    for f in [2.66, 2.0, 4.0, 1.0, 3.0, 1.5] + [(hidden[0] + k / 100) / dim for k in range(101)]:
        if all(int((dim << i) * f) == hidden[i] for i in range(4)):
            factor = f
            break
    if factor is None:
        sys.exit(f"convert_checkpoint: cannot infer ffn_expansion_factor from FFN widths {hidden}")
    return {
        "inp_channels": sd[ANCHOR].shape[1],
        "out_channels": sd["output.weight"].shape[0],
        "dim": dim,
        "num_blocks": [count(sd, lv) for lv in levels],
        "num_refinement_blocks": count(sd, "refinement"),
        "heads": [sd[f"{lv}.0.attn.temperature"].shape[0] for lv in levels],
        "ffn_expansion_factor": factor,
        "bias": "encoder_level1.0.attn.qkv.bias" in sd,
        "layernorm_type": "WithBias" if "encoder_level1.0.norm1.body.bias" in sd else "BiasFree",
    }


def save_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    import os
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help=".pth state_dict or Lightning .ckpt")
    p.add_argument("output", help="output .safetensors")
    a = p.parse_args()
    try:
        obj = torch.load(a.input, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report any unreadable file clearly
        sys.exit(f"convert_checkpoint: cannot read {a.input}: {e}")
    sd = strip_prefix(find_state_dict(obj))
    cfg = infer_config(sd)
    save_safetensors(a.output, sd, {"config": json.dumps(cfg), "format": "amsnet-restormer-v1",
                                    "converted_from": a.input})
    n = sum(t.numel() for t in sd.values())
    print(f"wrote {a.output}: {len(sd)} tensors, {n:,} parameters, config {json.dumps(cfg)}")


if __name__ == "__main__":
    main()
