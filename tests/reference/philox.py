"""Philox4x32-10 (Salmon et al., SC'11) and AMSNet's mask rule, vectorised in numpy.

Written from the paper's round function, not from the C++ (engine/rng.h): it is the independent
reference the fused mask + PD fixtures use to say which pixels are hidden. `python3 philox.py`
checks the Random123 known-answer vectors.

A draw for element `index` of `stream` under `seed` is word 0 of philox4x32 with counter
(index lo, index hi, stream lo, stream hi) and key (seed lo, seed hi).
"""

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
LO = np.uint64(0xFFFFFFFF)


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Counters: uint64 arrays holding 32-bit values (broadcast); keys: Python ints. Returns 4 words."""
    c = [np.asarray(v, dtype=np.uint64) & LO for v in (c0, c1, c2, c3)]
    k0, k1 = k0 & 0xFFFFFFFF, k1 & 0xFFFFFFFF
    for r in range(10):
        if r:  # the key schedule bumps the key between rounds
            k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
        p0, p1 = M0 * c[0], M1 * c[2]  # 32 x 32 -> 64 bits: exact in uint64
        hi0, lo0 = p0 >> np.uint64(32), p0 & LO
        hi1, lo1 = p1 >> np.uint64(32), p1 & LO
        c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
    return c


def draw_u32(seed, stream, index):
    index = np.asarray(index, dtype=np.uint64)
    return philox4x32(index & LO, index >> np.uint64(32), stream & 0xFFFFFFFF, stream >> 32,
                      seed & 0xFFFFFFFF, seed >> 32)[0]


def draw_uniform(seed, stream, index):
    """float32 in [0, 1) from the draw's top 24 bits (exact)."""
    return ((draw_u32(seed, stream, index) >> np.uint64(8)).astype(np.float64) / 16777216.0).astype(np.float32)


def draw_below(seed, stream, index, n):
    """Integer in [0, n): the high word of draw * n."""
    return (draw_u32(seed, stream, index) * np.uint64(n)) >> np.uint64(32)


def make_stream(purpose, step):
    return (purpose << 32) | step


def counters(B, h, w, full_h=0, full_w=0, y0=0, x0=0):
    """(B, h, w) counters: element (b, y, x) draws as element (b, y0 + y, x0 + x) of a (B, full_h, full_w)
    array (full size 0: the array itself)."""
    full_h, full_w = full_h or h, full_w or w
    b, y, x = np.meshgrid(np.arange(B), np.arange(h), np.arange(w), indexing="ij")
    return ((b * full_h + y0 + y) * full_w + x0 + x).astype(np.uint64)


def hidden(seed, stream, B, h, w, p=0.0, k=0, branch=0, **window):
    """(B, 1, h, w) float64 0/1 of the hidden sub-image pixels: with k = 0 each with probability p
    (uniform < p rounded to float32), else those whose branch in [0, k) is `branch`."""
    c = counters(B, h, w, **window)
    if k == 0:
        m = draw_uniform(seed, stream, c) < np.float32(p)
    else:
        m = draw_below(seed, stream, c, k) == branch
    return m.astype(np.float64)[:, None]


def _self_test():
    # Random123 kat_vectors, philox4x32 with 10 rounds: (counter, key) -> output.
    kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
           ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
           ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for ctr, key, want in kat:
        got = tuple(int(v) for v in philox4x32(*ctr, *key))
        if got != want:
            raise AssertionError("Philox4x32-10 known-answer vector: got %s" % [hex(v) for v in got])
    # Branches partition; a Bernoulli mask hides about p of the pixels.
    parts = sum(hidden(5, 9, 2, 30, 40, k=3, branch=b) for b in range(3))
    assert np.all(parts == 1)
    frac = hidden(5, 9, 4, 50, 50, p=0.3).mean()
    assert abs(frac - 0.3) < 0.02, frac


if __name__ == "__main__":
    _self_test()
    print("philox.py: known-answer vectors and mask sanity checks pass")
