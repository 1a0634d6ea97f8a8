// Channel LayerNorm at each pixel of (B, C, HW). Statistics run channel-outer / pixel-inner over a
// block of pixels so the inner loops are contiguous and vectorise.
#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

#include "kernels/cpu/cpu.h"

namespace ams::cpu {

namespace {
constexpr int64_t kBlock = 256;  // pixels per work item

// mu, rstd for pixels [p0, p0+n) of one image.
template <class T>
void stats(const T* x, int64_t C, int64_t HW, int64_t p0, int64_t n, double eps, T* mu, T* rstd) {
    std::fill(mu, mu + n, T(0));
    std::fill(rstd, rstd + n, T(0));
    for (int64_t c = 0; c < C; ++c) {
        const T* xc = x + c * HW + p0;
        for (int64_t i = 0; i < n; ++i) mu[i] += xc[i];
    }
    for (int64_t i = 0; i < n; ++i) mu[i] /= T(C);
    for (int64_t c = 0; c < C; ++c) {
        const T* xc = x + c * HW + p0;
        for (int64_t i = 0; i < n; ++i) {
            T d = xc[i] - mu[i];
            rstd[i] += d * d;
        }
    }
    for (int64_t i = 0; i < n; ++i) rstd[i] = T(1) / std::sqrt(rstd[i] / T(C) + T(eps));
}
}  // namespace

template <class T>
void layernorm_forward(const T* x, const T* w, const T* b, T* y, int64_t B, int64_t C, int64_t HW,
                       bool with_bias, double eps) {
    const int64_t nblk = (HW + kBlock - 1) / kBlock;
#pragma omp parallel
    {
        std::vector<T> mu(kBlock), rstd(kBlock);
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < B; ++n)
            for (int64_t blk = 0; blk < nblk; ++blk) {
                int64_t p0 = blk * kBlock, cnt = std::min(kBlock, HW - p0);
                const T* xb = x + n * C * HW;
                T* yb = y + n * C * HW;
                stats(xb, C, HW, p0, cnt, eps, mu.data(), rstd.data());
                for (int64_t c = 0; c < C; ++c) {
                    const T* xc = xb + c * HW + p0;
                    T* yc = yb + c * HW + p0;
                    if (with_bias)
                        for (int64_t i = 0; i < cnt; ++i) yc[i] = (xc[i] - mu[i]) * rstd[i] * w[c] + (b ? b[c] : T(0));
                    else
                        for (int64_t i = 0; i < cnt; ++i) yc[i] = xc[i] * rstd[i] * w[c];
                }
            }
    }
}

// WithBias: xhat = (x-mu)*rstd, dxhat = dy*w, dx = rstd*(dxhat - mean(dxhat) - xhat*mean(dxhat*xhat)).
// BiasFree: y = x*rstd*w, dz = dy*w, dx = rstd*dz - rstd^3*(x-mu)*mean(dz*x).
template <class T>
void layernorm_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int64_t B,
                        int64_t C, int64_t HW, bool with_bias, double eps) {
    const int64_t nblk = (HW + kBlock - 1) / kBlock;
    // Per-thread partial sums of dw/db, added in thread order afterwards: deterministic results.
    std::vector<std::vector<T>> part(omp_get_max_threads(), std::vector<T>(2 * C, T(0)));
#pragma omp parallel
    {
        std::vector<T> mu(kBlock), rstd(kBlock), s1(kBlock), s2(kBlock);
        T* dw_loc = part[omp_get_thread_num()].data();
        T* db_loc = dw_loc + C;
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < B; ++n)
            for (int64_t blk = 0; blk < nblk; ++blk) {
                int64_t p0 = blk * kBlock, cnt = std::min(kBlock, HW - p0);
                const T* xb = x + n * C * HW;
                const T* gb = dy + n * C * HW;
                stats(xb, C, HW, p0, cnt, eps, mu.data(), rstd.data());
                std::fill(s1.begin(), s1.end(), T(0));
                std::fill(s2.begin(), s2.end(), T(0));
                for (int64_t c = 0; c < C; ++c) {
                    const T* xc = xb + c * HW + p0;
                    const T* gc = gb + c * HW + p0;
                    T dwc = 0, dbc = 0;
#pragma omp simd reduction(+ : dwc, dbc)
                    for (int64_t i = 0; i < cnt; ++i) {
                        T dz = gc[i] * w[c];
                        if (with_bias) {
                            T xhat = (xc[i] - mu[i]) * rstd[i];
                            s1[i] += dz;
                            s2[i] += dz * xhat;
                            dwc += gc[i] * xhat;
                        } else {
                            s2[i] += dz * xc[i];
                            dwc += gc[i] * xc[i] * rstd[i];
                        }
                        dbc += gc[i];
                    }
                    dw_loc[c] += dwc;
                    db_loc[c] += dbc;
                }
                if (!dx) continue;
                T* db_ = dx + n * C * HW;
                for (int64_t c = 0; c < C; ++c) {
                    const T* xc = xb + c * HW + p0;
                    const T* gc = gb + c * HW + p0;
                    T* dc = db_ + c * HW + p0;
                    for (int64_t i = 0; i < cnt; ++i) {
                        T dz = gc[i] * w[c];
                        if (with_bias) {
                            T xhat = (xc[i] - mu[i]) * rstd[i];
                            dc[i] += rstd[i] * (dz - s1[i] / T(C) - xhat * s2[i] / T(C));
                        } else {
                            T r = rstd[i];
                            dc[i] += r * dz - r * r * r * (xc[i] - mu[i]) * s2[i] / T(C);
                        }
                    }
                }
            }
    }
    for (const auto& p : part)
        for (int64_t c = 0; c < C; ++c) {
            if (dw) dw[c] += p[c];
            if (db && with_bias) db[c] += p[C + c];
        }
}

#define AMS_INST(T)                                                                                    \
    template void layernorm_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t,   \
                                       bool, double);                                                  \
    template void layernorm_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t,   \
                                        int64_t, bool, double);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
