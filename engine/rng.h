// Counter-based randomness (Philox4x32-10, Salmon et al. 2011). A draw is a pure function of
// (seed, stream, index): no state to carry, the same numbers on CPU and GPU, and any element can be
// drawn independently by any thread. `stream` separates purposes and steps (see make_stream).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define AMS_HD __host__ __device__ __forceinline__
#else
#define AMS_HD inline
#endif

namespace ams::rng {

struct U32x4 {
    uint32_t v[4];
};

AMS_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

AMS_HD U32x4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; ++r) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return U32x4{{c0, c1, c2, c3}};
}

// One 32-bit draw for element `index` of stream `stream` under `seed`.
AMS_HD uint32_t draw_u32(uint64_t seed, uint64_t stream, uint64_t index) {
    return philox4x32((uint32_t)index, (uint32_t)(index >> 32), (uint32_t)stream,
                      (uint32_t)(stream >> 32), (uint32_t)seed, (uint32_t)(seed >> 32))
        .v[0];
}

// Uniform in [0, 1) with 24 random bits (exact in float).
AMS_HD float draw_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    return (float)(draw_u32(seed, stream, index) >> 8) * (1.0f / 16777216.0f);
}

// Uniform integer in [0, n) (n small; the bias of the modulo is below 2^-24 for n < 256).
AMS_HD uint32_t draw_below(uint64_t seed, uint64_t stream, uint64_t index, uint32_t n) {
    return (uint32_t)(((uint64_t)draw_u32(seed, stream, index) * n) >> 32);
}

// A (B, h, w) array as the window at (y0, x0) of a (B, full_h, full_w) one. counter(i) of its
// element i is that element's flat index in the full array, so a window draws what the whole
// array draws there (the whole array is the window with full = (h, w) at (0, 0): counter i).
// Columns past full_w run on into the next row; tiles only put padding there.
struct Window {
    int64_t h, w, full_h, full_w, y0, x0;
    AMS_HD uint64_t counter(int64_t i) const {
        int64_t x = i % w, t = i / w;
        int64_t y = t % h, b = t / h;
        return (uint64_t)((b * full_h + y0 + y) * full_w + x0 + x);
    }
};

// Which pixels of a (B, h, w) array of sub-image pixels a mask hides, drawn per element with the
// window's counter: k == 0: each with probability p (training's Bernoulli mask); k >= 1: those
// whose uniform branch in [0, k) is `branch` (the k complementary masks of inference, SPEC Eq. 5).
struct MaskRule {
    uint64_t seed, stream;
    Window win;
    float p;
    uint32_t k, branch;
    AMS_HD bool hidden(int64_t i) const {
        const uint64_t c = win.counter(i);
        return k == 0 ? draw_uniform(seed, stream, c) < p : draw_below(seed, stream, c, k) == branch;
    }
};
// Purposes of randomness; a stream is (purpose, step) packed into 64 bits.
enum Purpose : uint32_t { kCrop = 1, kFlip = 2, kMask = 3, kR3Replace = 4, kR3Mask = 5, kInit = 6, kTest = 7 };

AMS_HD uint64_t make_stream(uint32_t purpose, uint32_t step) {
    return ((uint64_t)purpose << 32) | step;
}

}  // namespace ams::rng
