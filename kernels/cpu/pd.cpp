// Pixel-downsampling (SPEC layout): sub-image (i, j) of image b becomes batch entry b*s*s + i*s + j.
#include "kernels/cpu/cpu.h"

namespace ams::cpu {

// x (B, C, H, W) -> y (B*s*s, C, H/s, W/s)
template <class T>
void pd_down(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, int s, bool acc) {
    const int64_t h = H / s, w = W / s;
#pragma omp parallel for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int i = 0; i < s; ++i)
            for (int j = 0; j < s; ++j)
                for (int64_t c = 0; c < C; ++c) {
                    T* yp = y + (((b * s + i) * s + j) * C + c) * h * w;
                    const T* xp = x + (b * C + c) * H * W + i * W + j;
                    for (int64_t yy = 0; yy < h; ++yy)
                        for (int64_t xx = 0; xx < w; ++xx) {
                            T v = xp[yy * s * W + xx * s];
                            if (acc) yp[yy * w + xx] += v; else yp[yy * w + xx] = v;
                        }
                }
}

// x (B*s*s, C, h, w) -> y (B, C, h*s, w*s); B here is the number of full images.
template <class T>
void pd_up(const T* x, T* y, int64_t B, int64_t C, int64_t h, int64_t w, int s, bool acc) {
    const int64_t H = h * s, W = w * s;
#pragma omp parallel for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int i = 0; i < s; ++i)
            for (int j = 0; j < s; ++j)
                for (int64_t c = 0; c < C; ++c) {
                    const T* xp = x + (((b * s + i) * s + j) * C + c) * h * w;
                    T* yp = y + (b * C + c) * H * W + i * W + j;
                    for (int64_t yy = 0; yy < h; ++yy)
                        for (int64_t xx = 0; xx < w; ++xx) {
                            T v = xp[yy * w + xx];
                            if (acc) yp[yy * s * W + xx * s] += v; else yp[yy * s * W + xx * s] = v;
                        }
                }
}

#define AMS_INST(T)                                                                          \
    template void pd_down<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int, bool); \
    template void pd_up<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int, bool);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
