"""Restormer in plain PyTorch, written from /work/shared/SPEC.md.

Every hyperparameter is configurable; state_dict names match the public reference implementation
(swz30/Restormer, basicsr/models/archs/restormer_arch.py) so that checkpoints map one to one.

Structural facts that the reference code fixes regardless of `bias` (kept here on purpose):
  - patch_embed.proj has NO bias (the reference never passes `bias` to OverlapPatchEmbed);
  - the 3x3 convs of Downsample / Upsample (down*_*.body.0, up*_*.body.0) have NO bias;
  - every other conv (qkv, qkv_dwconv, project_out, project_in, dwconv, reduce_chan_level*,
    output) has a bias iff bias=True.
  - LayerNorm 'WithBias' adds norm*.body.bias; 'BiasFree' has only norm*.body.weight.
  - decoder_level1 and refinement work on 2*dim channels with heads[0].
"""

import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class _NormBody(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor, per pixel."""

    def __init__(self, channels, with_bias):
        super().__init__()
        self.with_bias = with_bias
        self.weight = nn.Parameter(torch.ones(channels))
        if with_bias:
            self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        mu = x.mean(dim=1, keepdim=True)
        var = ((x - mu) ** 2).mean(dim=1, keepdim=True)  # biased variance about the mean
        w = self.weight.view(1, -1, 1, 1)
        if self.with_bias:
            return (x - mu) / torch.sqrt(var + 1e-5) * w + self.bias.view(1, -1, 1, 1)
        return x / torch.sqrt(var + 1e-5) * w  # BiasFree: the mean is NOT subtracted


class LayerNorm(nn.Module):
    def __init__(self, channels, layernorm_type):
        super().__init__()
        if layernorm_type not in ("BiasFree", "WithBias"):
            raise ValueError(layernorm_type)
        self.body = _NormBody(channels, layernorm_type == "WithBias")

    def forward(self, x):
        return self.body(x)


def mdta_core(qkv, temperature, heads):
    """Transposed attention core. qkv: (B, 3C, H, W) after the depthwise conv;
    temperature: (heads, 1, 1). Returns (B, C, H, W) before project_out."""
    b, c3, h, w = qkv.shape
    c = c3 // 3
    q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]
    q = q.reshape(b, heads, c // heads, h * w)
    k = k.reshape(b, heads, c // heads, h * w)
    v = v.reshape(b, heads, c // heads, h * w)
    q = F.normalize(q, dim=-1, eps=1e-12)
    k = F.normalize(k, dim=-1, eps=1e-12)
    attn = torch.matmul(q, k.transpose(-2, -1)) * temperature
    attn = torch.softmax(attn, dim=-1)
    out = torch.matmul(attn, v)
    return out.reshape(b, c, h, w)


class Attention(nn.Module):  # MDTA
    def __init__(self, dim, heads, bias):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x):
        return self.project_out(mdta_core(self.qkv_dwconv(self.qkv(x)), self.temperature, self.heads))


def gelu_gate(x):
    c = x.shape[1] // 2
    return F.gelu(x[:, :c]) * x[:, c:]  # exact (erf) GELU


class FeedForward(nn.Module):  # GDFN
    def __init__(self, dim, expansion, bias):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        return self.project_out(gelu_gate(self.dwconv(self.project_in(x))))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, expansion, bias, layernorm_type):
        super().__init__()
        self.norm1 = LayerNorm(dim, layernorm_type)
        self.attn = Attention(dim, heads, bias)
        self.norm2 = LayerNorm(dim, layernorm_type)
        self.ffn = FeedForward(dim, expansion, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, 3, padding=1, bias=False)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, 2 * n, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


def _stage(n, dim, heads, expansion, bias, layernorm_type):
    return nn.Sequential(*[TransformerBlock(dim, heads, expansion, bias, layernorm_type) for _ in range(n)])


class Restormer(nn.Module):
    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8),
                 num_refinement_blocks=4, heads=(1, 2, 4, 8), ffn_expansion_factor=2.66,
                 bias=False, LayerNorm_type="BiasFree"):
        super().__init__()
        nb, hd, ef, lt = list(num_blocks), list(heads), ffn_expansion_factor, LayerNorm_type
        d1, d2, d3, d4 = dim, 2 * dim, 4 * dim, 8 * dim
        self.patch_embed = PatchEmbed(inp_channels, d1)
        self.encoder_level1 = _stage(nb[0], d1, hd[0], ef, bias, lt)
        self.down1_2 = Downsample(d1)
        self.encoder_level2 = _stage(nb[1], d2, hd[1], ef, bias, lt)
        self.down2_3 = Downsample(d2)
        self.encoder_level3 = _stage(nb[2], d3, hd[2], ef, bias, lt)
        self.down3_4 = Downsample(d3)
        self.latent = _stage(nb[3], d4, hd[3], ef, bias, lt)
        self.up4_3 = Upsample(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=bias)
        self.decoder_level3 = _stage(nb[2], d3, hd[2], ef, bias, lt)
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=bias)
        self.decoder_level2 = _stage(nb[1], d2, hd[1], ef, bias, lt)
        self.up2_1 = Upsample(d2)
        self.decoder_level1 = _stage(nb[0], d2, hd[0], ef, bias, lt)  # no channel reduction
        self.refinement = _stage(num_refinement_blocks, d2, hd[0], ef, bias, lt)
        self.output = nn.Conv2d(d2, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp):
        e1 = self.encoder_level1(self.patch_embed(inp))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1))
        return self.output(self.refinement(d1)) + inp


def from_config(cfg):
    """Build from the JSON config stored in fixture metadata."""
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    return Restormer(inp_channels=cfg.get("inp_channels", 3), out_channels=cfg.get("out_channels", 3),
                     dim=cfg["dim"], num_blocks=cfg["num_blocks"],
                     num_refinement_blocks=cfg["num_refinement_blocks"], heads=cfg["heads"],
                     ffn_expansion_factor=cfg["ffn_expansion_factor"], bias=cfg["bias"],
                     LayerNorm_type=cfg["layernorm_type"])


def count_params(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    net = Restormer()  # default = real-denoising configuration of SPEC.md
    n = count_params(net)
    print("default Restormer (dim 48, [4,6,6,8], ref 4, heads [1,2,4,8], 2.66, no bias, BiasFree):",
          "{:,} parameters".format(n))
    names = list(net.state_dict().keys())
    for want in ["patch_embed.proj.weight", "encoder_level1.0.norm1.body.weight",
                 "encoder_level1.0.attn.temperature", "encoder_level1.0.attn.qkv.weight",
                 "encoder_level1.0.attn.qkv_dwconv.weight", "encoder_level1.0.attn.project_out.weight",
                 "encoder_level1.0.norm2.body.weight", "encoder_level1.0.ffn.project_in.weight",
                 "encoder_level1.0.ffn.dwconv.weight", "encoder_level1.0.ffn.project_out.weight",
                 "down1_2.body.0.weight", "up2_1.body.0.weight", "reduce_chan_level3.weight",
                 "refinement.3.ffn.project_out.weight", "output.weight", "latent.7.attn.temperature"]:
        assert want in names, want
    assert n == 26111668, n
    print("parameter count and state_dict names ok ({} tensors)".format(len(names)))
    sys.exit(0)
