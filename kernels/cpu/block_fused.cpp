// The Restormer block's two halves for inference, fused in tiles of image rows. Both start with
// the same pipeline, D = dw3x3(W_in LN(x) + b_in) + b_dw:
//   attention half: qkv = D (W_in = the qkv projection), then the attention op, which needs all
//                   of qkv at once;
//   feed-forward:   y = x + W_out (gelu(D[:h]) * D[h:]) + b_out.
// As separate ops, a batch of 8 branches of a 512x512 photo writes and rereads several images of
// 3C or 2*hidden channels (up to 700 MB each for the small model) through DRAM; here each thread
// keeps a few rows of them in cache. Every piece is the arithmetic of its op (LayerNorm, 1x1 GEMM,
// depthwise 3x3, GELU gate, bias, residual add); the GEMM's blocking and the order in which the
// depthwise conv adds its nine taps differ, so results agree to rounding (tests: 1e-13 in double).
#include <algorithm>
#include <cstring>
#include <utility>

#include <omp.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace ams::cpu {

namespace {

// Per thread, the tile's buffers (LN(x), the projection with a halo row above and below, and the
// feed-forward's D and G). L3-sized, not L2: the GEMMs want long rows.
int64_t g_tile_bytes = int64_t(8) << 20;

// The thread's tile buffers (slots 0-1: ProjectedRows, 2-3: the feed-forward's D and G).
struct FusedScratch;
template <class T>
T* scratch(size_t slot, int64_t n) {
    return thread_scratch<FusedScratch, T>(slot, n);
}

// The interior columns of one output row from the NK tap rows inside the image: one pass, each
// output the bias plus the rows' three-tap sums in row order (the order of a row-by-row pass).
template <int NK, class T>
void dw3_interior(const T* const* x, const T* const* wk, T bias, int64_t W, T* out) {
    const T *x0 = x[0], *x1 = x[NK > 1 ? 1 : 0], *x2 = x[NK > 2 ? 2 : 0];
    T w[3][3];
    for (int k = 0; k < NK; ++k)
        for (int j = 0; j < 3; ++j) w[k][j] = wk[k][j];
#pragma omp simd
    for (int64_t ox = 1; ox < W - 1; ++ox) {
        T acc = bias;
        acc += w[0][0] * x0[ox - 1] + w[0][1] * x0[ox] + w[0][2] * x0[ox + 1];
        if constexpr (NK > 1) acc += w[1][0] * x1[ox - 1] + w[1][1] * x1[ox] + w[1][2] * x1[ox + 1];
        if constexpr (NK > 2) acc += w[2][0] * x2[ox - 1] + w[2][1] * x2[ox] + w[2][2] * x2[ox + 1];
        out[ox] = acc;
    }
}

// One output row of the depthwise 3x3 (padding 1) over the held rows [a0, a1) of one channel of A:
// the bias plus the tap rows inside the image in order (outside: zero padding), read in place (the
// held rows have no zero border).
template <class T>
void dw3_row(const T* a, int64_t a0, int64_t a1, int64_t r, int64_t W, const T* w, T bias, T* out) {
    const T* x[3];
    const T* wk[3];
    int nk = 0;
    for (int64_t ky = 0; ky < 3; ++ky) {
        const int64_t ir = r + ky - 1;
        if (ir < a0 || ir >= a1) continue;
        x[nk] = a + (ir - a0) * W;
        wk[nk++] = w + ky * 3;
    }
    if (W == 1) {
        T acc = bias;
        for (int k = 0; k < nk; ++k) acc += wk[k][1] * x[k][0];
        out[0] = acc;
        return;
    }
    T left = bias, right = bias;
    for (int k = 0; k < nk; ++k) {
        left += wk[k][1] * x[k][0] + wk[k][2] * x[k][1];
        right += wk[k][0] * x[k][W - 2] + wk[k][1] * x[k][W - 1];
    }
    if (nk == 3) dw3_interior<3>(x, wk, bias, W, out);
    else if (nk == 2) dw3_interior<2>(x, wk, bias, W, out);
    else if (nk == 1) dw3_interior<1>(x, wk, bias, W, out);
    else std::fill(out + 1, out + W - 1, bias);
    out[0] = left;
    out[W - 1] = right;
}

template <class T>
void add_bias(T* p, int64_t rows, int64_t n, int64_t ld, const T* b) {
    if (!b) return;
    for (int64_t c = 0; c < rows; ++c)
        for (int64_t i = 0; i < n; ++i) p[c * ld + i] += b[c];
}

// A = W_in LN(x) + b_in for the row tiles of one strip of image x (C, H, W), walked top to bottom.
// A keeps a fixed channel stride (R + 2 rows), so the two rows a tile shares with the next move to
// the front instead of being recomputed.
template <class T>
class ProjectedRows {
public:
    ProjectedRows(const T* x, int64_t C, int64_t H, int64_t W, const NormProjectDw<T>& p, int64_t R)
        : x_(x), C_(C), H_(H), W_(W), p_(p), cap_((R + 2) * W), L_(scratch<T>(0, C * cap_)),
          A_(scratch<T>(1, p.P * cap_)) {}

    // Makes A hold the image rows [a0, a1) that output rows [r0, r1) read.
    void advance(int64_t r0, int64_t r1) {
        const int64_t a0n = std::max<int64_t>(0, r0 - 1), a1n = std::min(H_, r1 + 1);
        const int64_t keep = a1 > a0n ? a1 - a0n : 0, n0 = a0n + keep, nn = a1n - n0;
        if (keep > 0)
            for (int64_t c = 0; c < p_.P; ++c)
                std::memmove(A_ + c * cap_, A_ + c * cap_ + (a0n - a0) * W_, (size_t)(keep * W_) * sizeof(T));
        for (int64_t c = 0; c < C_; ++c)
            std::memcpy(L_ + c * nn * W_, x_ + (c * H_ + n0) * W_, (size_t)(nn * W_) * sizeof(T));
        layernorm_forward<T>(L_, p_.ln_w, p_.ln_b, L_, 1, C_, nn * W_, p_.ln_with_bias, p_.ln_eps);
        gemm<T>(false, false, p_.P, nn * W_, C_, T(1), p_.w_in, C_, L_, nn * W_, T(0), A_ + keep * W_, cap_);
        add_bias(A_ + keep * W_, p_.P, nn * W_, cap_, p_.b_in);
        a0 = a0n, a1 = a1n;
    }

    // out (P, rows r0..r1 with row stride W, channel stride ld) = dw3x3(A) + b_dw.
    void depthwise(int64_t r0, int64_t r1, T* out, int64_t ld) const {
        for (int64_t c = 0; c < p_.P; ++c)
            for (int64_t r = r0; r < r1; ++r)
                dw3_row(A_ + c * cap_, a0, a1, r, W_, p_.w_dw + c * 9, p_.b_dw ? p_.b_dw[c] : T(0),
                        out + c * ld + (r - r0) * W_);
    }

    int64_t a0 = 0, a1 = 0;  // image rows held

private:
    const T* x_;
    int64_t C_, H_, W_;
    const NormProjectDw<T>& p_;
    int64_t cap_;
    T *L_, *A_;
};

// Runs strip(n, s0, s1, R) over the images and horizontal strips: whole images per thread when
// the batch fills the threads, else strips (each recomputes one halo row at its top). R, the
// rows per tile, keeps `per_row` bytes per row within the tile budget.
template <class F>
void for_strips(int64_t B, int64_t H, int64_t per_row, F strip) {
    const int64_t R = std::clamp<int64_t>(g_tile_bytes / std::max<int64_t>(1, per_row), 1, H);
    const int nt = omp_get_max_threads();
    const int64_t strips = B >= nt ? 1 : std::min<int64_t>(H, (nt + B - 1) / B);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < B; ++n)
        for (int64_t s = 0; s < strips; ++s) strip(n, H * s / strips, H * (s + 1) / strips, R);
}

}  // namespace

int64_t set_fused_tile_bytes(int64_t bytes) { return std::exchange(g_tile_bytes, std::max<int64_t>(1, bytes)); }

template <class T>
void norm_project_dw_forward(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, const NormProjectDw<T>& p) {
    if (B == 0 || C == 0 || H == 0 || W == 0 || p.P == 0) return;
    for_strips(B, H, (C + p.P) * W * (int64_t)sizeof(T), [&](int64_t n, int64_t s0, int64_t s1, int64_t R) {
        ProjectedRows<T> rows(x + n * C * H * W, C, H, W, p, R);
        T* yn = y + n * p.P * H * W;
        for (int64_t r0 = s0; r0 < s1; r0 += R) {
            const int64_t r1 = std::min(s1, r0 + R);
            rows.advance(r0, r1);
            rows.depthwise(r0, r1, yn + r0 * W, H * W);
        }
    });
}

template <class T>
void ffn_residual_forward(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, const FfnParams<T>& p) {
    const int64_t h2 = p.in.P, h = h2 / 2;
    if (B == 0 || C == 0 || H == 0 || W == 0 || h2 == 0) return;
    for_strips(B, H, (C + 5 * h) * W * (int64_t)sizeof(T), [&](int64_t n, int64_t s0, int64_t s1, int64_t R) {
        const T* xn = x + n * C * H * W;
        T* yn = y + n * C * H * W;
        ProjectedRows<T> rows(xn, C, H, W, p.in, R);
        T* D = scratch<T>(2, h2 * R * W);
        T* G = scratch<T>(3, h * R * W);
        for (int64_t r0 = s0; r0 < s1; r0 += R) {
            const int64_t r1 = std::min(s1, r0 + R), nr = r1 - r0;
            rows.advance(r0, r1);
            // D = dw3x3(A) + b_dw on the output rows, G = gelu(D[:h]) * D[h:], then y = x + b_out
            // and y += W_out G straight into y's rows (channel stride H*W): the residual costs no
            // buffer and no pass of its own, and the GEMM no zeroing pass.
            rows.depthwise(r0, r1, D, nr * W);
            gelu_gate_forward<T>(D, G, 1, h, nr * W);
            for (int64_t c = 0; c < C; ++c) {
                const T* xs = xn + (c * H + r0) * W;
                T* ys = yn + (c * H + r0) * W;
                if (p.b_out)
                    for (int64_t i = 0; i < nr * W; ++i) ys[i] = xs[i] + p.b_out[c];
                else
                    std::memcpy(ys, xs, (size_t)(nr * W) * sizeof(T));
            }
            gemm<T>(false, false, C, nr * W, h, T(1), p.w_out, h, G, nr * W, T(1), yn + r0 * W, H * W);
        }
    });
}

#define AMS_INST(T)                                                                                              \
    template void norm_project_dw_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t,                  \
                                             const NormProjectDw<T>&);                                           \
    template void ffn_residual_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, const FfnParams<T>&);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
