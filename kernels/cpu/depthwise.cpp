// Depthwise convolution (one input and one output channel per group), stride 1, on the CPU.
// The 3x3 / padding 1 case (every depthwise conv of the Restormer: qkv and GDFN) works on a
// zero-padded copy of each plane, so its loops have no bounds to test: the output row is written
// once with all nine taps, and the weight gradient keeps its nine sums in registers over a plane
// instead of updating nine rows in memory per output row. Any other kernel size takes the general
// tap-row loops.
#include <algorithm>
#include <vector>

#include <omp.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace ams::cpu {

namespace {

struct DepthwiseScratch;

// Lanes of one vector register (AVX2: 8 floats, 4 doubles); the 3x3 loops run in chunks of it.
template <class T>
constexpr int64_t kLanes = 32 / sizeof(T);

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The thread's buffer `slot` of n zeros. Planes are copied into its interior (copy_plane), which
// leaves the zero border and the columns past the plane's width untouched, so it is zeroed once per
// call, not once per plane.
template <class T>
T* zeroed_buffer(size_t slot, int64_t n) {
    T* p = thread_scratch<DepthwiseScratch, T>(slot, n);
    std::fill(p, p + n, T(0));
    return p;
}

// src (H, W) into buf (row stride ld) from row `border` and column `border` on.
template <class T>
void copy_plane(const T* src, T* buf, int64_t H, int64_t W, int64_t ld, int64_t border) {
    for (int64_t y = 0; y < H; ++y) std::copy(src + y * W, src + (y + 1) * W, buf + (y + border) * ld + border);
}

// y (H, W) (+)= init + correlate(x, w) for a 3x3 kernel, zero padding 1, from xp: x zero-padded
// by copy_plane (row stride ld). The backward data pass is the same with the kernel flipped.
template <bool Accumulate, class T>
void plane3x3(const T* xp, int64_t ld, const T* w, T* y, int64_t H, int64_t W, T init) {
    const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8];
    for (int64_t oy = 0; oy < H; ++oy) {
        const T *r0 = xp + oy * ld, *r1 = r0 + ld, *r2 = r1 + ld;
        T* yr = y + oy * W;
#pragma omp simd
        for (int64_t ox = 0; ox < W; ++ox) {
            T v = (Accumulate ? yr[ox] : init) + w0 * r0[ox] + w1 * r0[ox + 1] + w2 * r0[ox + 2];
            v += w3 * r1[ox] + w4 * r1[ox + 1] + w5 * r1[ox + 2];
            yr[ox] = v + w6 * r2[ox] + w7 * r2[ox + 1] + w8 * r2[ox + 2];
        }
    }
}

// The nine products sum(dy * shifted x) and sum(dy) of one plane, each held lane-wise over
// chunks of kLanes columns (registers, not memory), then reduced: tap k of the returned sums.
// gp: dy zero-padded to ld_g >= W columns (a multiple of kLanes); xp: x as for plane3x3.
template <class T>
void grad3x3(const T* xp, int64_t ld, const T* gp, int64_t ld_g, int64_t H, T (&sum)[10]) {
    constexpr int64_t L = kLanes<T>;
    T a0[L] = {}, a1[L] = {}, a2[L] = {}, a3[L] = {}, a4[L] = {}, a5[L] = {}, a6[L] = {}, a7[L] = {}, a8[L] = {},
      ab[L] = {};
    for (int64_t oy = 0; oy < H; ++oy)
        for (int64_t c0 = 0; c0 < ld_g; c0 += L) {
            const T* g = gp + oy * ld_g + c0;
            const T *r0 = xp + oy * ld + c0, *r1 = r0 + ld, *r2 = r1 + ld;
#pragma omp simd
            for (int64_t l = 0; l < L; ++l) {
                const T gv = g[l];
                a0[l] += gv * r0[l], a1[l] += gv * r0[l + 1], a2[l] += gv * r0[l + 2];
                a3[l] += gv * r1[l], a4[l] += gv * r1[l + 1], a5[l] += gv * r1[l + 2];
                a6[l] += gv * r2[l], a7[l] += gv * r2[l + 1], a8[l] += gv * r2[l + 2];
                ab[l] += gv;
            }
        }
    const T* acc[10] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, ab};
    for (int k = 0; k < 10; ++k) {
        T s = 0;
        for (int64_t l = 0; l < L; ++l) s += acc[k][l];
        sum[k] = s;
    }
}

bool is_3x3_same(const ConvShape& s) { return s.KH == 3 && s.KW == 3 && s.pad == 1; }

// One plane, any kernel: y (Ho, Wo) (+)= correlate(x (H, W), w (KH, KW)) with zero padding `pad_y`
// rows and `pad_x` columns. Tap row by tap row, bounds hoisted out of the vectorised inner loop.
template <class T>
void plane_general(const T* x, const T* w, T* y, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t KH,
                   int64_t KW, int64_t pad_y, int64_t pad_x, T init, bool accumulate) {
    for (int64_t oy = 0; oy < Ho; ++oy) {
        T* yr = y + oy * Wo;
        if (!accumulate) std::fill(yr, yr + Wo, init);
        for (int64_t ky = 0; ky < KH; ++ky) {
            int64_t iy = oy + ky - pad_y;
            if (iy < 0 || iy >= H) continue;
            const T* xr = x + iy * W;
            for (int64_t kx = 0; kx < KW; ++kx) {
                const T wv = w[ky * KW + kx];
                int64_t off = kx - pad_x;
                int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, W - off);
                const T* xs = xr + off;
#pragma omp simd
                for (int64_t ox = ox0; ox < ox1; ++ox) yr[ox] += wv * xs[ox];
            }
        }
    }
}

// dw, db of one channel for any kernel: products accumulate element-wise into one row per tap,
// reduced at the end.
template <class T>
void grad_general(const ConvShape& s, const T* x, const T* dy, int64_t c, T* acc, T* dw, T* db) {
    const int64_t Ho = s.Ho(), Wo = s.Wo(), C = s.Cin, K2 = s.KH * s.KW;
    std::fill(acc, acc + K2 * Wo, T(0));
    T bias_acc = 0;
    for (int64_t n = 0; n < s.B; ++n) {
        const T* xp = x + (n * C + c) * s.H * s.W;
        const T* gp = dy + (n * C + c) * Ho * Wo;
        for (int64_t oy = 0; oy < Ho; ++oy) {
            const T* gr = gp + oy * Wo;
            if (db) {
#pragma omp simd reduction(+ : bias_acc)
                for (int64_t ox = 0; ox < Wo; ++ox) bias_acc += gr[ox];
            }
            if (!dw) continue;
            for (int64_t ky = 0; ky < s.KH; ++ky) {
                int64_t iy = oy + ky - s.pad;
                if (iy < 0 || iy >= s.H) continue;
                for (int64_t kx = 0; kx < s.KW; ++kx) {
                    int64_t off = kx - s.pad;
                    int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, s.W - off);
                    const T* xr = xp + iy * s.W + off;
                    T* ar = acc + (ky * s.KW + kx) * Wo;
#pragma omp simd
                    for (int64_t ox = ox0; ox < ox1; ++ox) ar[ox] += gr[ox] * xr[ox];
                }
            }
        }
    }
    if (db) db[c] += bias_acc;
    if (dw)
        for (int64_t k = 0; k < K2; ++k) {
            T sum = 0;
            for (int64_t ox = 0; ox < Wo; ++ox) sum += acc[k * Wo + ox];
            dw[c * K2 + k] += sum;
        }
}

}  // namespace

template <class T>
void depthwise_forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
    const int64_t Ho = s.Ho(), Wo = s.Wo(), C = s.Cin, K2 = s.KH * s.KW;
    const bool fast = is_3x3_same(s);
    const int64_t ld = s.W + 2;
#pragma omp parallel
    {
        T* xp = fast ? zeroed_buffer<T>(0, (s.H + 2) * ld) : nullptr;
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < s.B; ++n)
            for (int64_t c = 0; c < C; ++c) {
                const T* xc = x + (n * C + c) * s.H * s.W;
                T* yc = y + (n * C + c) * Ho * Wo;
                const T init = b ? b[c] : T(0);
                if (fast) {
                    copy_plane(xc, xp, s.H, s.W, ld, 1);
                    plane3x3<false>(xp, ld, w + c * 9, yc, s.H, s.W, init);
                } else {
                    plane_general(xc, w + c * K2, yc, s.H, s.W, Ho, Wo, s.KH, s.KW, s.pad, s.pad, init, false);
                }
            }
    }
}

template <class T>
void depthwise_backward(const ConvShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
    const int64_t Ho = s.Ho(), Wo = s.Wo(), C = s.Cin, K2 = s.KH * s.KW;
    const bool fast = is_3x3_same(s);
    // dx: correlate dy with the flipped kernel (padding KH-1-pad, KW-1-pad), accumulating. Any plane
    // in parallel.
    if (dx) {
        std::vector<T> flipped((size_t)(C * K2));
        for (int64_t c = 0; c < C; ++c)
            for (int64_t k = 0; k < K2; ++k) flipped[c * K2 + k] = w[c * K2 + K2 - 1 - k];
        const int64_t ld = Wo + 2;
#pragma omp parallel
        {
            T* gp = fast ? zeroed_buffer<T>(0, (Ho + 2) * ld) : nullptr;
#pragma omp for collapse(2) schedule(static)
            for (int64_t n = 0; n < s.B; ++n)
                for (int64_t c = 0; c < C; ++c) {
                    const T* gc = dy + (n * C + c) * Ho * Wo;
                    T* dxc = dx + (n * C + c) * s.H * s.W;
                    if (fast) {
                        copy_plane(gc, gp, Ho, Wo, ld, 1);
                        plane3x3<true>(gp, ld, flipped.data() + c * 9, dxc, s.H, s.W, T(0));
                    } else {
                        plane_general(gc, flipped.data() + c * K2, dxc, Ho, Wo, s.H, s.W, s.KH, s.KW, s.KH - 1 - s.pad,
                                      s.KW - 1 - s.pad, T(0), true);
                    }
                }
        }
    }
    if (!dw && !db) return;
    // dw, db: per channel, summed over the batch one image at a time, in order: deterministic.
    const int64_t L = kLanes<T>, ld = round_up(s.W, L) + 2, ld_g = round_up(Wo, L);
#pragma omp parallel
    {
        T* xp = fast ? zeroed_buffer<T>(1, (s.H + 2) * ld) : nullptr;
        // dy is read in place when its rows already are whole chunks (the Restormer's widths).
        const bool pad_g = fast && ld_g != Wo;
        T* gp = pad_g ? zeroed_buffer<T>(2, Ho * ld_g) : nullptr;
        T* acc = fast ? nullptr : thread_scratch<DepthwiseScratch, T>(3, K2 * Wo);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < C; ++c) {
            if (!fast) {
                grad_general(s, x, dy, c, acc, dw, db);
                continue;
            }
            T total[10] = {};
            for (int64_t n = 0; n < s.B; ++n) {
                copy_plane(x + (n * C + c) * s.H * s.W, xp, s.H, s.W, ld, 1);
                const T* gc = dy + (n * C + c) * Ho * Wo;
                if (pad_g) copy_plane(gc, gp, Ho, Wo, ld_g, 0);
                T sum[10];
                grad3x3(xp, ld, pad_g ? gp : gc, ld_g, Ho, sum);
                for (int k = 0; k < 10; ++k) total[k] += sum[k];
            }
            if (dw)
                for (int k = 0; k < 9; ++k) dw[c * 9 + k] += total[k];
            if (db) db[c] += total[9];
        }
    }
}

template void depthwise_forward<float>(const ConvShape&, const float*, const float*, const float*, float*);
template void depthwise_forward<double>(const ConvShape&, const double*, const double*, const double*, double*);
template void depthwise_backward<float>(const ConvShape&, const float*, const float*, const float*, float*, float*,
                                        float*);
template void depthwise_backward<double>(const ConvShape&, const double*, const double*, const double*, double*,
                                         double*, double*);

}  // namespace ams::cpu
