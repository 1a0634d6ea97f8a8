// Losses: masked L1 (AMSNet training), plain L1 and isotropic total variation (fine-tuning).
// Forward sums in double through a deterministic reduction; backward accumulates g * dL/dx.
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace ams::cpu {

namespace {
template <class T>
T sign(T v) { return T((v > 0) - (v < 0)); }  // sign(0) = 0, as PyTorch's L1 gradient
}  // namespace

template <class T>
double masked_l1_forward(const T* pred, const T* target, const T* mask, int64_t B, int64_t C, int64_t N,
                         double* hidden_count) {
    double hidden = deterministic_sum(B * N, [&](int64_t i) { return (double)mask[i]; });
    double s = deterministic_sum(B * C * N, [&](int64_t i) {
        int64_t b = i / (C * N), p = i % N;
        return (double)mask[b * N + p] * std::fabs((double)pred[i] - (double)target[i]);
    });
    if (hidden_count) *hidden_count = hidden;
    return hidden > 0 ? s / (hidden * C) : 0.0;
}

template <class T>
void masked_l1_backward(const T* pred, const T* target, const T* mask, T* dpred, int64_t B, int64_t C,
                        int64_t N, double hidden, double g) {
    if (hidden <= 0) return;  // no hidden pixel: the loss is the constant 0
    const T scale = T(g / (hidden * C));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B * C * N; ++i) {
        int64_t b = i / (C * N), p = i % N;
        dpred[i] += scale * mask[b * N + p] * sign(pred[i] - target[i]);
    }
}

template <class T>
double l1_forward(const T* a, const T* b, int64_t n) {
    return deterministic_sum(n, [&](int64_t i) { return std::fabs((double)a[i] - (double)b[i]); }) / n;
}

template <class T>
void l1_backward(const T* a, const T* b, T* da, T* db, int64_t n, double g) {
    const T scale = T(g / n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        T s = scale * sign(a[i] - b[i]);
        if (da) da[i] += s;
        if (db) db[i] -= s;
    }
}

template <class T>
double tv_forward(const T* x, int64_t BC, int64_t H, int64_t W) {
    const int64_t h = H - 1, w = W - 1;
    if (h <= 0 || w <= 0 || BC == 0) return 0.0;  // no cell: the loss is 0 (as the CUDA path)
    return deterministic_sum(BC * h * w, [&](int64_t k) {
        int64_t p = k / (h * w), i = (k / w) % h, j = k % w;
        const T* r = x + (p * H + i) * W + j;
        double dy = (double)r[W] - r[0], dx = (double)r[1] - r[0];
        return std::sqrt(dy * dy + dx * dx + kTvEps);
    }) / (double)(BC * h * w);
}

template <class T>
void tv_backward(const T* x, T* dx, int64_t BC, int64_t H, int64_t W, double g) {
    const int64_t h = H - 1, w = W - 1;
    if (h <= 0 || w <= 0) return;
    const double scale = g / (double)(BC * h * w);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < BC; ++p)  // planes are independent; within one, go in order
        for (int64_t i = 0; i < h; ++i)
            for (int64_t j = 0; j < w; ++j) {
                const T* r = x + (p * H + i) * W + j;
                T* d = dx + (p * H + i) * W + j;
                double ddy = (double)r[W] - r[0], ddx = (double)r[1] - r[0];
                double inv = scale / std::sqrt(ddy * ddy + ddx * ddx + kTvEps);
                d[W] += T(ddy * inv);
                d[1] += T(ddx * inv);
                d[0] -= T((ddy + ddx) * inv);
            }
}

#define AMS_INST(T)                                                                                   \
    template double masked_l1_forward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t,    \
                                         double*);                                                    \
    template void masked_l1_backward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, \
                                        double, double);                                              \
    template double l1_forward<T>(const T*, const T*, int64_t);                                       \
    template void l1_backward<T>(const T*, const T*, T*, T*, int64_t, double);                        \
    template double tv_forward<T>(const T*, int64_t, int64_t, int64_t);                               \
    template void tv_backward<T>(const T*, T*, int64_t, int64_t, int64_t, double);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
