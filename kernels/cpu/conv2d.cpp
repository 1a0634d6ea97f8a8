// conv2d (stride 1) on the CPU: 1x1 as one GEMM per image and group, depthwise as direct loops
// (depthwise.cpp), everything else as im2col + GEMM. Backward: dW = dY col^T, dX = col2im(W^T dY).
#include <algorithm>
#include <utility>
#include <vector>

#include <omp.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace ams::cpu {

namespace {

// Output rows per im2col tile: the column buffer of a tile stays under this many bytes, so it is
// reused from cache and a large image needs no Kc x Ho x Wo scratch (300 MB at 512x512 for the
// Restormer's output conv). Large enough that training crops (64x64) are one tile.
int64_t g_col_tile_bytes = int64_t(8) << 20;

int64_t tile_rows(const ConvShape& s, int64_t Kc, size_t elem) {
    const int64_t row_bytes = std::max<int64_t>(1, Kc * s.Wo() * (int64_t)elem);
    return std::clamp<int64_t>(g_col_tile_bytes / row_bytes, 1, std::max<int64_t>(1, s.Ho()));
}

// The thread's column buffers (slot 0: im2col, 1: its gradient).
struct ConvScratch;
template <class T>
T* scratch(size_t slot, int64_t n) {
    return thread_scratch<ConvScratch, T>(slot, n);
}

// col (cin*KH*KW, rows*Wo) for the output rows [oy0, oy0+rows) of one image-group x (cin, H, W),
// zero outside the image.
template <class T>
void im2col(const ConvShape& s, int64_t cin, const T* x, int64_t oy0, int64_t rows, T* col) {
    const int64_t Wo = s.Wo(), K2 = s.KH * s.KW;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < cin * K2; ++row) {
        int64_t ci = row / K2, ky = (row % K2) / s.KW, kx = row % s.KW;
        const T* xp = x + ci * s.H * s.W;
        T* out = col + row * rows * Wo;
        int64_t off = kx - s.pad;
        int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, s.W - off);
        for (int64_t r = 0; r < rows; ++r) {
            int64_t iy = oy0 + r + ky - s.pad;
            T* o = out + r * Wo;
            if (iy < 0 || iy >= s.H || ox0 >= ox1) {
                std::fill(o, o + Wo, T(0));
                continue;
            }
            const T* xr = xp + iy * s.W + off;
            std::fill(o, o + ox0, T(0));
            for (int64_t ox = ox0; ox < ox1; ++ox) o[ox] = xr[ox];
            std::fill(o + std::max(ox0, ox1), o + Wo, T(0));
        }
    }
}

// dx (cin, H, W) += col2im(dcol) for the output rows [oy0, oy0+rows) that dcol holds; one thread
// per input channel so writes never collide.
template <class T>
void col2im_add(const ConvShape& s, int64_t cin, const T* dcol, int64_t oy0, int64_t rows, T* dx) {
    const int64_t Wo = s.Wo(), K2 = s.KH * s.KW;
#pragma omp parallel for schedule(static)
    for (int64_t ci = 0; ci < cin; ++ci) {
        T* dxp = dx + ci * s.H * s.W;
        for (int64_t k = 0; k < K2; ++k) {
            int64_t ky = k / s.KW, kx = k % s.KW, off = kx - s.pad;
            int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, s.W - off);
            const T* src = dcol + (ci * K2 + k) * rows * Wo;
            for (int64_t r = 0; r < rows; ++r) {
                int64_t iy = oy0 + r + ky - s.pad;
                if (iy < 0 || iy >= s.H) continue;
                T* d = dxp + iy * s.W + off;
                const T* g = src + r * Wo;
                for (int64_t ox = ox0; ox < ox1; ++ox) d[ox] += g[ox];
            }
        }
    }
}

bool is_depthwise(const ConvShape& s) { return s.groups == s.Cin && s.groups == s.Cout; }
bool is_pointwise(const ConvShape& s) { return s.KH == 1 && s.KW == 1 && s.pad == 0; }
// Which GPU library the product stands for under the precision policy: cuBLAS for a plain 1x1
// convolution, cuDNN for the rest (kernels/cuda/conv2d.cu).
GemmKind gemm_kind(const ConvShape& s) { return is_pointwise(s) && s.groups == 1 ? GemmKind::Product : GemmKind::Conv; }

}  // namespace

int64_t set_conv_col_tile_bytes(int64_t bytes) {
    return std::exchange(g_col_tile_bytes, std::max<int64_t>(1, bytes));
}

// Images go to threads whole when the batch can keep every thread busy (training: many small
// PD sub-images); a single image instead parallelises inside im2col and the GEMM. (Two explicit
// paths: an `omp parallel if(false)` region would make the inner regions nested, and libgomp
// gives nested regions fresh, slow thread teams.)
template <class T>
void conv2d_forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
    if (is_depthwise(s)) return depthwise_forward(s, x, w, b, y);
    const int64_t cin = s.Cin / s.groups, cout = s.Cout / s.groups;
    const int64_t HoWo = s.Ho() * s.Wo(), Kc = cin * s.KH * s.KW;
    const bool pw = is_pointwise(s);
    const GemmKind kind = gemm_kind(s);
    const int64_t Wo = s.Wo(), rows = tile_rows(s, Kc, sizeof(T));
    auto image = [&](int64_t n) {
        for (int64_t g = 0; g < s.groups; ++g) {
            const T* src = x + (n * s.Cin + g * cin) * s.H * s.W;
            const T* wg = w + g * cout * Kc;
            T* yg = y + (n * s.Cout + g * cout) * HoWo;
            if (pw) {
                gemm<T>(false, false, cout, HoWo, Kc, T(1), wg, Kc, src, HoWo, T(0), yg, HoWo, kind);
                continue;
            }
            T* col = scratch<T>(0, Kc * rows * Wo);
            for (int64_t oy0 = 0; oy0 < s.Ho(); oy0 += rows) {
                const int64_t r = std::min(rows, s.Ho() - oy0), N = r * Wo;
                im2col(s, cin, src, oy0, r, col);
                gemm<T>(false, false, cout, N, Kc, T(1), wg, Kc, col, N, T(0), yg + oy0 * Wo, HoWo, kind);
            }
        }
        if (b)
            for (int64_t c = 0; c < s.Cout; ++c) {
                T* yc = y + (n * s.Cout + c) * HoWo;
                for (int64_t i = 0; i < HoWo; ++i) yc[i] += b[c];
            }
    };
    if (s.B >= omp_get_max_threads()) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < s.B; ++n) image(n);
    } else {
        for (int64_t n = 0; n < s.B; ++n) image(n);
    }
}

// dX per image is independent; dW and db sum over images: per-thread partials, added in thread
// order afterwards (deterministic for a given thread count).
template <class T>
void conv2d_backward(const ConvShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
    if (is_depthwise(s)) return depthwise_backward(s, x, w, dy, dx, dw, db);
    const int64_t cin = s.Cin / s.groups, cout = s.Cout / s.groups;
    const int64_t HoWo = s.Ho() * s.Wo(), Kc = cin * s.KH * s.KW;
    const bool pw = is_pointwise(s);
    const GemmKind kind = gemm_kind(s);
    const int64_t Wo = s.Wo(), rows = tile_rows(s, Kc, sizeof(T));
    // One image's contributions: dx written in place, dw/db added into dw_t/db_t. Row tiles go in
    // order, so the sums stay deterministic.
    auto image = [&](int64_t n, T* dw_t, T* db_t) {
        for (int64_t g = 0; g < s.groups; ++g) {
            const T* xg = x + (n * s.Cin + g * cin) * s.H * s.W;
            const T* wg = w + g * cout * Kc;
            const T* dyg = dy + (n * s.Cout + g * cout) * HoWo;
            T* dxg = dx ? dx + (n * s.Cin + g * cin) * s.H * s.W : nullptr;
            if (pw) {
                if (dw_t) gemm<T>(false, true, cout, Kc, HoWo, T(1), dyg, HoWo, xg, HoWo, T(1), dw_t + g * cout * Kc, Kc, kind);
                if (dxg) gemm<T>(true, false, Kc, HoWo, cout, T(1), wg, Kc, dyg, HoWo, T(1), dxg, HoWo, kind);
                continue;
            }
            T* col = scratch<T>(0, Kc * rows * Wo);
            T* dcol = scratch<T>(1, Kc * rows * Wo);
            for (int64_t oy0 = 0; oy0 < s.Ho(); oy0 += rows) {
                const int64_t r = std::min(rows, s.Ho() - oy0), N = r * Wo;
                const T* dyt = dyg + oy0 * Wo;
                if (dw_t) {
                    im2col(s, cin, xg, oy0, r, col);
                    gemm<T>(false, true, cout, Kc, N, T(1), dyt, HoWo, col, N, T(1), dw_t + g * cout * Kc, Kc, kind);
                }
                if (dxg) {
                    gemm<T>(true, false, Kc, N, cout, T(1), wg, Kc, dyt, HoWo, T(0), dcol, N, kind);
                    col2im_add(s, cin, dcol, oy0, r, dxg);
                }
            }
        }
        if (db_t)
            for (int64_t c = 0; c < s.Cout; ++c) {
                const T* g = dy + (n * s.Cout + c) * HoWo;
                T acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int64_t i = 0; i < HoWo; ++i) acc += g[i];
                db_t[c] += acc;
            }
    };
    const int nt = omp_get_max_threads();
    if (s.B < nt) {
        for (int64_t n = 0; n < s.B; ++n) image(n, dw, db);
        return;
    }
    // dW and db sum over images: per-thread partials, added in thread order afterwards
    // (deterministic for a given thread count).
    const int64_t wsize = s.Cout * Kc;
    std::vector<std::vector<T>> part(nt);
#pragma omp parallel
    {
        std::vector<T>& p = part[omp_get_thread_num()];
        p.assign(dw || db ? (size_t)(wsize + s.Cout) : 0, T(0));
#pragma omp for schedule(static)
        for (int64_t n = 0; n < s.B; ++n) image(n, dw ? p.data() : nullptr, db ? p.data() + wsize : nullptr);
    }
    for (const auto& p : part) {
        if (p.empty()) continue;
        if (dw) for (int64_t i = 0; i < wsize; ++i) dw[i] += p[i];
        if (db) for (int64_t c = 0; c < s.Cout; ++c) db[c] += p[wsize + c];
    }
}

template void conv2d_forward<float>(const ConvShape&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const ConvShape&, const double*, const double*, const double*, double*);
template void conv2d_backward<float>(const ConvShape&, const float*, const float*, const float*, float*,
                                     float*, float*);
template void conv2d_backward<double>(const ConvShape&, const double*, const double*, const double*,
                                      double*, double*, double*);

}  // namespace ams::cpu
