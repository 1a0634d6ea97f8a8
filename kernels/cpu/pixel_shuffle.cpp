// Pixel (un)shuffle: pure permutations; each one's backward is the other one, accumulating.
#include "kernels/cpu/cpu.h"

namespace ams::cpu {

// x (B, C, H, W) -> y (B, C*r*r, H/r, W/r)
template <class T>
void pixel_unshuffle(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool acc) {
    const int64_t h = H / r, w = W / r;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c)
            for (int i = 0; i < r; ++i)
                for (int j = 0; j < r; ++j) {
                    T* yp = y + ((b * C + c) * r * r + i * r + j) * h * w;
                    const T* xp = x + (b * C + c) * H * W + i * W + j;
                    for (int64_t yy = 0; yy < h; ++yy)
                        for (int64_t xx = 0; xx < w; ++xx) {
                            T v = xp[yy * r * W + xx * r];
                            if (acc) yp[yy * w + xx] += v; else yp[yy * w + xx] = v;
                        }
                }
}

// x (B, C, H, W) -> y (B, C/(r*r), H*r, W*r)
template <class T>
void pixel_shuffle(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool acc) {
    const int64_t Co = C / (r * r), Ho = H * r, Wo = W * r;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < Co; ++c)
            for (int i = 0; i < r; ++i)
                for (int j = 0; j < r; ++j) {
                    const T* xp = x + ((b * Co + c) * r * r + i * r + j) * H * W;
                    T* yp = y + (b * Co + c) * Ho * Wo + i * Wo + j;
                    for (int64_t yy = 0; yy < H; ++yy)
                        for (int64_t xx = 0; xx < W; ++xx) {
                            T v = xp[yy * W + xx];
                            if (acc) yp[yy * r * Wo + xx * r] += v; else yp[yy * r * Wo + xx * r] = v;
                        }
                }
}

#define AMS_INST(T)                                                                                  \
    template void pixel_unshuffle<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int, bool); \
    template void pixel_shuffle<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int, bool);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
