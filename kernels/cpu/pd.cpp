// Pixel-downsampling (SPEC layout): sub-image (i, j) of image b becomes batch entry b*s*s + i*s + j.
// The masked variants fuse AMSNet's mask with it: one pass from the noisy batch to the masked
// denoiser input (and the hidden flags), and from the k branch outputs back to the full image.
#include <cstddef>
#include <vector>

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

namespace {
// Calls f(sub-image index nb, sub-row yy, keep flags of the row's w pixels) for every row of the
// (B*s*s, h, w) sub-images, rows in parallel; keep[x] = rule.hidden(p) == keep_hidden.
template <class F>
void for_each_masked_row(int64_t Bss, int64_t h, int64_t w, const rng::MaskRule& rule, bool keep_hidden, F&& f) {
#pragma omp parallel
    {
        std::vector<unsigned char> keep((size_t)w);
#pragma omp for collapse(2) schedule(static)
        for (int64_t nb = 0; nb < Bss; ++nb)
            for (int64_t yy = 0; yy < h; ++yy) {
                const int64_t p0 = (nb * h + yy) * w;
                for (int64_t xx = 0; xx < w; ++xx) keep[xx] = rule.hidden(p0 + xx) == keep_hidden;
                f(nb, yy, keep.data());
            }
    }
}
}  // namespace

template <class T>
void pd_down_masked(const T* x, T* y, T* flags, int64_t B, int64_t C, int64_t H, int64_t W, int s,
                    const rng::MaskRule& rule, bool keep_hidden, bool acc) {
    const int64_t h = H / s, w = W / s;
    for_each_masked_row(B * s * s, h, w, rule, keep_hidden, [&](int64_t nb, int64_t yy, const unsigned char* keep) {
        const int64_t b = nb / (s * s), i = (nb / s) % s, j = nb % s;
        if (flags) {
            T* fr = flags + (nb * h + yy) * w;
            for (int64_t xx = 0; xx < w; ++xx) fr[xx] = (keep[xx] != 0) == keep_hidden ? T(1) : T(0);
        }
        for (int64_t c = 0; c < C; ++c) {
            const T* xr = x + (b * C + c) * H * W + (yy * s + i) * W + j;
            T* yr = y + ((nb * C + c) * h + yy) * w;
            for (int64_t xx = 0; xx < w; ++xx) {
                if (acc) {
                    if (keep[xx]) yr[xx] += xr[xx * s];
                } else {
                    yr[xx] = keep[xx] ? xr[xx * s] : T(0);
                }
            }
        }
    });
}

template <class T>
void pd_up_masked(const T* x, T* y, int64_t B, int64_t C, int64_t h, int64_t w, int s, const rng::MaskRule& rule,
                  bool keep_hidden, bool acc) {
    const int64_t H = h * s, W = w * s;
    for_each_masked_row(B * s * s, h, w, rule, keep_hidden, [&](int64_t nb, int64_t yy, const unsigned char* keep) {
        const int64_t b = nb / (s * s), i = (nb / s) % s, j = nb % s;
        for (int64_t c = 0; c < C; ++c) {
            const T* xr = x + ((nb * C + c) * h + yy) * w;
            T* yr = y + (b * C + c) * H * W + (yy * s + i) * W + j;
            for (int64_t xx = 0; xx < w; ++xx) {
                if (!keep[xx]) continue;
                if (acc) yr[xx * s] += xr[xx];
                else yr[xx * s] = xr[xx];
            }
        }
    });
}

#define AMS_INST(T)                                                                          \
    template void pd_down<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int, bool); \
    template void pd_up<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int, bool);                 \
    template void pd_down_masked<T>(const T*, T*, T*, int64_t, int64_t, int64_t, int64_t, int, const rng::MaskRule&, \
                                    bool, bool);                                                         \
    template void pd_up_masked<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int, const rng::MaskRule&,  \
                                  bool, bool);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
