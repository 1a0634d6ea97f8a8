// conv2d (stride 1) on the CPU: 1x1 as one GEMM per image and group, depthwise as direct loops,
// everything else as im2col + GEMM. Backward: dW = dY col^T, dX = col2im(W^T dY).
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu.h"

namespace ams::cpu {

namespace {

// col (cin*KH*KW, Ho*Wo) from one image-group x (cin, H, W), zero outside the image.
template <class T>
void im2col(const ConvShape& s, int64_t cin, const T* x, T* col) {
    const int64_t Ho = s.Ho(), Wo = s.Wo(), K2 = s.KH * s.KW;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < cin * K2; ++row) {
        int64_t ci = row / K2, ky = (row % K2) / s.KW, kx = row % s.KW;
        const T* xp = x + ci * s.H * s.W;
        T* out = col + row * Ho * Wo;
        int64_t off = kx - s.pad;
        int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, s.W - off);
        for (int64_t oy = 0; oy < Ho; ++oy) {
            int64_t iy = oy + ky - s.pad;
            T* o = out + oy * Wo;
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

// dx (cin, H, W) += col2im(dcol); one thread per input channel so writes never collide.
template <class T>
void col2im_add(const ConvShape& s, int64_t cin, const T* dcol, T* dx) {
    const int64_t Ho = s.Ho(), Wo = s.Wo(), K2 = s.KH * s.KW;
#pragma omp parallel for schedule(static)
    for (int64_t ci = 0; ci < cin; ++ci) {
        T* dxp = dx + ci * s.H * s.W;
        for (int64_t k = 0; k < K2; ++k) {
            int64_t ky = k / s.KW, kx = k % s.KW, off = kx - s.pad;
            int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, s.W - off);
            const T* src = dcol + (ci * K2 + k) * Ho * Wo;
            for (int64_t oy = 0; oy < Ho; ++oy) {
                int64_t iy = oy + ky - s.pad;
                if (iy < 0 || iy >= s.H) continue;
                T* d = dxp + iy * s.W + off;
                const T* g = src + oy * Wo;
                for (int64_t ox = ox0; ox < ox1; ++ox) d[ox] += g[ox];
            }
        }
    }
}

// Depthwise (one input and one output channel per group), any kernel size.
template <class T>
void depthwise_forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
    const int64_t Ho = s.Ho(), Wo = s.Wo(), C = s.Cin;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < s.B; ++n) {
        for (int64_t c = 0; c < C; ++c) {
            const T* xp = x + (n * C + c) * s.H * s.W;
            const T* wp = w + c * s.KH * s.KW;
            T* yp = y + (n * C + c) * Ho * Wo;
            T bias = b ? b[c] : T(0);
            for (int64_t oy = 0; oy < Ho; ++oy) {
                T* yr = yp + oy * Wo;
                std::fill(yr, yr + Wo, bias);
                for (int64_t ky = 0; ky < s.KH; ++ky) {
                    int64_t iy = oy + ky - s.pad;
                    if (iy < 0 || iy >= s.H) continue;
                    for (int64_t kx = 0; kx < s.KW; ++kx) {
                        T wv = wp[ky * s.KW + kx];
                        int64_t off = kx - s.pad;
                        int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, s.W - off);
                        const T* xr = xp + iy * s.W + off;
                        for (int64_t ox = ox0; ox < ox1; ++ox) yr[ox] += wv * xr[ox];
                    }
                }
            }
        }
    }
}

template <class T>
void depthwise_backward(const ConvShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
    const int64_t Ho = s.Ho(), Wo = s.Wo(), C = s.Cin;
    // Parallel over channels only: dw[c] and db[c] sum over the batch.
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
        const T* wp = w + c * s.KH * s.KW;
        for (int64_t n = 0; n < s.B; ++n) {
            const T* xp = x + (n * C + c) * s.H * s.W;
            const T* gp = dy + (n * C + c) * Ho * Wo;
            T* dxp = dx ? dx + (n * C + c) * s.H * s.W : nullptr;
            if (db) {
                T acc = 0;
                for (int64_t i = 0; i < Ho * Wo; ++i) acc += gp[i];
                db[c] += acc;
            }
            for (int64_t oy = 0; oy < Ho; ++oy) {
                const T* gr = gp + oy * Wo;
                for (int64_t ky = 0; ky < s.KH; ++ky) {
                    int64_t iy = oy + ky - s.pad;
                    if (iy < 0 || iy >= s.H) continue;
                    for (int64_t kx = 0; kx < s.KW; ++kx) {
                        int64_t off = kx - s.pad;
                        int64_t ox0 = std::max<int64_t>(0, -off), ox1 = std::min<int64_t>(Wo, s.W - off);
                        if (dw) {
                            const T* xr = xp + iy * s.W + off;
                            T acc = 0;
                            for (int64_t ox = ox0; ox < ox1; ++ox) acc += gr[ox] * xr[ox];
                            dw[c * s.KH * s.KW + ky * s.KW + kx] += acc;
                        }
                        if (dxp) {
                            T wv = wp[ky * s.KW + kx];
                            T* dr = dxp + iy * s.W + off;
                            for (int64_t ox = ox0; ox < ox1; ++ox) dr[ox] += wv * gr[ox];
                        }
                    }
                }
            }
        }
    }
}

bool is_depthwise(const ConvShape& s) { return s.groups == s.Cin && s.groups == s.Cout; }
bool is_pointwise(const ConvShape& s) { return s.KH == 1 && s.KW == 1 && s.pad == 0; }

}  // namespace

template <class T>
void conv2d_forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
    if (is_depthwise(s)) return depthwise_forward(s, x, w, b, y);
    const int64_t cin = s.Cin / s.groups, cout = s.Cout / s.groups;
    const int64_t HoWo = s.Ho() * s.Wo(), Kc = cin * s.KH * s.KW;
    std::vector<T> col(is_pointwise(s) ? 0 : (size_t)(Kc * HoWo));
    for (int64_t n = 0; n < s.B; ++n) {
        for (int64_t g = 0; g < s.groups; ++g) {
            const T* xg = x + (n * s.Cin + g * cin) * s.H * s.W;
            const T* wg = w + g * cout * Kc;
            T* yg = y + (n * s.Cout + g * cout) * HoWo;
            const T* src = xg;
            if (!is_pointwise(s)) {
                im2col(s, cin, xg, col.data());
                src = col.data();
            }
            gemm<T>(false, false, cout, HoWo, Kc, T(1), wg, Kc, src, HoWo, T(0), yg, HoWo);
        }
        if (b) {
#pragma omp parallel for schedule(static)
            for (int64_t c = 0; c < s.Cout; ++c) {
                T* yc = y + (n * s.Cout + c) * HoWo;
                for (int64_t i = 0; i < HoWo; ++i) yc[i] += b[c];
            }
        }
    }
}

template <class T>
void conv2d_backward(const ConvShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
    if (is_depthwise(s)) return depthwise_backward(s, x, w, dy, dx, dw, db);
    const int64_t cin = s.Cin / s.groups, cout = s.Cout / s.groups;
    const int64_t HoWo = s.Ho() * s.Wo(), Kc = cin * s.KH * s.KW;
    const bool pw = is_pointwise(s);
    std::vector<T> col(pw || !dw ? 0 : (size_t)(Kc * HoWo)), dcol(pw || !dx ? 0 : (size_t)(Kc * HoWo));
    for (int64_t n = 0; n < s.B; ++n) {
        for (int64_t g = 0; g < s.groups; ++g) {
            const T* xg = x + (n * s.Cin + g * cin) * s.H * s.W;
            const T* wg = w + g * cout * Kc;
            const T* dyg = dy + (n * s.Cout + g * cout) * HoWo;
            if (dw) {
                const T* src = xg;
                if (!pw) {
                    im2col(s, cin, xg, col.data());
                    src = col.data();
                }
                gemm<T>(false, true, cout, Kc, HoWo, T(1), dyg, HoWo, src, HoWo, T(1), dw + g * cout * Kc, Kc);
            }
            if (dx) {
                T* dxg = dx + (n * s.Cin + g * cin) * s.H * s.W;
                if (pw) {
                    gemm<T>(true, false, Kc, HoWo, cout, T(1), wg, Kc, dyg, HoWo, T(1), dxg, HoWo);
                } else {
                    gemm<T>(true, false, Kc, HoWo, cout, T(1), wg, Kc, dyg, HoWo, T(0), dcol.data(), HoWo);
                    col2im_add(s, cin, dcol.data(), dxg);
                }
            }
        }
        if (db) {
            for (int64_t c = 0; c < s.Cout; ++c) {
                const T* g = dy + (n * s.Cout + c) * HoWo;
                T acc = 0;
                for (int64_t i = 0; i < HoWo; ++i) acc += g[i];
                db[c] += acc;
            }
        }
    }
}

template void conv2d_forward<float>(const ConvShape&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const ConvShape&, const double*, const double*, const double*, double*);
template void conv2d_backward<float>(const ConvShape&, const float*, const float*, const float*, float*,
                                     float*, float*);
template void conv2d_backward<double>(const ConvShape&, const double*, const double*, const double*,
                                      double*, double*, double*);

}  // namespace ams::cpu
