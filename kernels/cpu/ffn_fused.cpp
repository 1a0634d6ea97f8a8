// The Restormer block's feed-forward half for inference, fused in tiles of image rows:
//   y = x + W_out (gelu(d1) * d2) + b_out,   (d1, d2) = dw3x3(W_in LN(x) + b_in) + b_dw.
// As separate ops, a batch of 8 branches of a 512x512 photo writes and rereads three images of
// 2*hidden channels (700 MB each for the small model) through DRAM; here each thread keeps a few
// rows of them in cache. Every piece is the arithmetic of its op (LayerNorm, 1x1 GEMM, depthwise
// 3x3, GELU gate, bias, residual add) in the same order; only the GEMM's blocking differs.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include <omp.h>

#include "kernels/cpu/cpu.h"

namespace ams::cpu {

namespace {

// Per thread: the tile's rows of LN(x), A = W_in LN(x) + b_in (with one halo row above and below),
// D = dw3x3(A), G = gate(D) and W_out G. L3-sized, not L2: the GEMMs want long rows.
int64_t g_tile_bytes = int64_t(8) << 20;

// One output row of the depthwise 3x3 (padding 1) over the held rows [a0, a1) of one channel of A:
// bias first, then the three tap rows in order, as depthwise_plane does.
template <class T>
void dw3_row(const T* a, int64_t a0, int64_t a1, int64_t r, int64_t W, const T* w, T bias, T* out) {
    std::fill(out, out + W, bias);
    for (int64_t ky = 0; ky < 3; ++ky) {
        const int64_t ir = r + ky - 1;
        if (ir < a0 || ir >= a1) continue;  // outside the image: zero padding
        const T* xr = a + (ir - a0) * W;
        const T w0 = w[ky * 3], w1 = w[ky * 3 + 1], w2 = w[ky * 3 + 2];
        if (W == 1) {
            out[0] += w1 * xr[0];
            continue;
        }
        out[0] += w1 * xr[0] + w2 * xr[1];
#pragma omp simd
        for (int64_t ox = 1; ox < W - 1; ++ox) out[ox] += w0 * xr[ox - 1] + w1 * xr[ox] + w2 * xr[ox + 1];
        out[W - 1] += w0 * xr[W - 2] + w1 * xr[W - 1];
    }
}

template <class T>
void add_bias(T* p, int64_t rows, int64_t n, int64_t ld, const T* b) {
    if (!b) return;
    for (int64_t c = 0; c < rows; ++c)
        for (int64_t i = 0; i < n; ++i) p[c * ld + i] += b[c];
}

// Output rows [s0, s1) of image x (C, H, W) into y, tile by tile. A keeps a fixed channel stride
// (R + 2 rows) so the two rows the next tile shares with this one move to its front instead of
// being recomputed.
template <class T>
void ffn_strip(const T* x, T* y, int64_t C, int64_t H, int64_t W, const FfnParams<T>& p, int64_t s0, int64_t s1,
               int64_t R) {
    const int64_t h = p.hidden, h2 = 2 * h, HW = H * W, cap = (R + 2) * W;
    thread_local std::vector<T> buf[5];
    auto get = [&](int i, int64_t n) {
        if ((int64_t)buf[i].size() < n) buf[i].resize((size_t)n);
        return buf[i].data();
    };
    T* L = get(0, C * cap);
    T* A = get(1, h2 * cap);
    T* D = get(2, h2 * R * W);
    T* G = get(3, h * R * W);
    T* O = get(4, C * R * W);
    int64_t have0 = 0, have1 = 0;  // image rows held in A: [have0, have1)
    for (int64_t r0 = s0; r0 < s1; r0 += R) {
        const int64_t r1 = std::min(s1, r0 + R), nr = r1 - r0;
        const int64_t a0 = std::max<int64_t>(0, r0 - 1), a1 = std::min(H, r1 + 1);
        // Rows this tile shares with the previous one move to the front of each channel of A.
        const int64_t keep = have1 > a0 ? have1 - a0 : 0, n0 = a0 + keep, nn = a1 - n0;
        if (keep > 0)
            for (int64_t c = 0; c < h2; ++c)
                std::memmove(A + c * cap, A + c * cap + (a0 - have0) * W, (size_t)(keep * W) * sizeof(T));
        // New rows: LN(x), then A = W_in LN(x) + b_in.
        for (int64_t c = 0; c < C; ++c) std::memcpy(L + c * nn * W, x + c * HW + n0 * W, (size_t)(nn * W) * sizeof(T));
        layernorm_forward<T>(L, p.ln_w, p.ln_b, L, 1, C, nn * W, p.ln_with_bias, p.ln_eps);
        gemm<T>(false, false, h2, nn * W, C, T(1), p.w_in, C, L, nn * W, T(0), A + keep * W, cap);
        add_bias(A + keep * W, h2, nn * W, cap, p.b_in);
        have0 = a0, have1 = a1;
        // D = dw3x3(A) + b_dw on the output rows, G = gelu(D[:h]) * D[h:], O = W_out G + b_out.
        for (int64_t c = 0; c < h2; ++c)
            for (int64_t r = r0; r < r1; ++r)
                dw3_row(A + c * cap, a0, a1, r, W, p.w_dw + c * 9, p.b_dw ? p.b_dw[c] : T(0), D + (c * nr + r - r0) * W);
        gelu_gate_forward<T>(D, G, 1, h, nr * W);
        gemm<T>(false, false, C, nr * W, h, T(1), p.w_out, h, G, nr * W, T(0), O, nr * W);
        add_bias(O, C, nr * W, nr * W, p.b_out);
        for (int64_t c = 0; c < C; ++c) {
            const T* xs = x + c * HW + r0 * W;
            const T* os = O + c * nr * W;
            T* ys = y + c * HW + r0 * W;
            for (int64_t i = 0; i < nr * W; ++i) ys[i] = xs[i] + os[i];
        }
    }
}

}  // namespace

int64_t set_ffn_tile_bytes(int64_t bytes) { return std::exchange(g_tile_bytes, std::max<int64_t>(1, bytes)); }

template <class T>
void ffn_residual_forward(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, const FfnParams<T>& p) {
    if (B == 0 || C == 0 || H == 0 || W == 0) return;
    const int64_t per_row = (2 * C + 5 * p.hidden) * W * (int64_t)sizeof(T);
    const int64_t R = std::clamp<int64_t>(g_tile_bytes / per_row, 1, H);
    // Whole images per thread when the batch fills the threads; otherwise horizontal strips, each
    // recomputing one halo row of A at its top.
    const int nt = omp_get_max_threads();
    const int64_t strips = B >= nt ? 1 : std::min<int64_t>(H, (nt + B - 1) / B);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < B; ++n)
        for (int64_t s = 0; s < strips; ++s)
            ffn_strip(x + n * C * H * W, y + n * C * H * W, C, H, W, p, H * s / strips, H * (s + 1) / strips, R);
}

template void ffn_residual_forward<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t,
                                          const FfnParams<float>&);
template void ffn_residual_forward<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t,
                                           const FfnParams<double>&);

}  // namespace ams::cpu
