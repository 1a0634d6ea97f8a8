// Reflect padding (PyTorch 'reflect': the edge pixel is not repeated) and cropping on (BC, H, W).
#include "kernels/cpu/cpu.h"

namespace ams::cpu {

namespace {
inline int64_t reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}
}  // namespace

template <class T>
void reflect_pad_forward(const PadShape& s, const T* x, T* y) {
    const int64_t Ho = s.Ho(), Wo = s.Wo();
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < s.BC; ++p)
        for (int64_t oy = 0; oy < Ho; ++oy) {
            const T* xr = x + (p * s.H + reflect(oy - s.top, s.H)) * s.W;
            T* yr = y + (p * Ho + oy) * Wo;
            for (int64_t ox = 0; ox < Wo; ++ox) yr[ox] = xr[reflect(ox - s.left, s.W)];
        }
}

template <class T>
void reflect_pad_backward(const PadShape& s, const T* dy, T* dx) {
    const int64_t Ho = s.Ho(), Wo = s.Wo();
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < s.BC; ++p)  // each plane is owned by one thread
        for (int64_t oy = 0; oy < Ho; ++oy) {
            T* dr = dx + (p * s.H + reflect(oy - s.top, s.H)) * s.W;
            const T* gr = dy + (p * Ho + oy) * Wo;
            for (int64_t ox = 0; ox < Wo; ++ox) dr[reflect(ox - s.left, s.W)] += gr[ox];
        }
}

template <class T>
void crop_forward(const T* x, T* y, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left,
                  int64_t h, int64_t w) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < BC; ++p)
        for (int64_t yy = 0; yy < h; ++yy) {
            const T* xr = x + (p * H + top + yy) * W + left;
            T* yr = y + (p * h + yy) * w;
            for (int64_t xx = 0; xx < w; ++xx) yr[xx] = xr[xx];
        }
}

template <class T>
void crop_backward(const T* dy, T* dx, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left,
                   int64_t h, int64_t w) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < BC; ++p)
        for (int64_t yy = 0; yy < h; ++yy) {
            T* dr = dx + (p * H + top + yy) * W + left;
            const T* gr = dy + (p * h + yy) * w;
            for (int64_t xx = 0; xx < w; ++xx) dr[xx] += gr[xx];
        }
}

#define AMS_INST(T)                                                                                 \
    template void reflect_pad_forward<T>(const PadShape&, const T*, T*);                           \
    template void reflect_pad_backward<T>(const PadShape&, const T*, T*);                          \
    template void crop_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                  int64_t);                                                         \
    template void crop_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                   int64_t);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
