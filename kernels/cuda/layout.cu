// Layout ops on the GPU: pixel (un)shuffle, pixel-downsampling (plain and fused with AMSNet's
// masks), reflect pad, crop, channel concat.
// Index maps are those of kernels/cpu/pixel_shuffle.cpp, pd.cpp, pad.cpp and elementwise.cpp. One
// thread per element of the side that is written; the permutations are bijections and the pad
// backward gathers, so no two threads ever write the same element (no atomics, deterministic).
#include "engine/rng.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

__device__ inline void put(float* y, int64_t i, float v, bool acc) {
    if (acc) y[i] += v;
    else y[i] = v;
}

// y (B, C*r*r, h, w)[b, c*r*r + i*r + j, yy, xx] = x (B, C, H, W)[b, c, yy*r + i, xx*r + j]
__global__ void pixel_unshuffle_kernel(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r,
                                       bool acc) {
    const int64_t h = H / r, w = W / r, Cr = C * r * r, n = B * Cr * h * w;
    AMS_GRID_STRIDE(idx, n) {
        int64_t xx = idx % w, t = idx / w;
        int64_t yy = t % h;
        t /= h;
        int64_t cc = t % Cr, b = t / Cr;
        int64_t c = cc / (r * r), i = (cc / r) % r, j = cc % r;
        put(y, idx, x[((b * C + c) * H + yy * r + i) * W + xx * r + j], acc);
    }
}

// y (B, C/(r*r), H*r, W*r)[b, c, yy*r + i, xx*r + j] = x (B, C, H, W)[b, c*r*r + i*r + j, yy, xx]
__global__ void pixel_shuffle_kernel(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r,
                                     bool acc) {
    const int64_t Co = C / (r * r), Ho = H * r, Wo = W * r, n = B * Co * Ho * Wo;
    AMS_GRID_STRIDE(idx, n) {
        int64_t X = idx % Wo, t = idx / Wo;
        int64_t Y = t % Ho;
        t /= Ho;
        int64_t c = t % Co, b = t / Co;
        int64_t i = Y % r, yy = Y / r, j = X % r, xx = X / r;
        put(y, idx, x[(((b * Co + c) * r * r + i * r + j) * H + yy) * W + xx], acc);
    }
}

// y (B*s*s, C, h, w)[(b*s + i)*s + j, c, yy, xx] = x (B, C, H, W)[b, c, yy*s + i, xx*s + j]
__global__ void pd_down_kernel(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int s,
                               bool acc) {
    const int64_t h = H / s, w = W / s, n = B * s * s * C * h * w;
    AMS_GRID_STRIDE(idx, n) {
        int64_t xx = idx % w, t = idx / w;
        int64_t yy = t % h;
        t /= h;
        int64_t c = t % C, bb = t / C;  // bb = (b*s + i)*s + j
        int64_t j = bb % s, i = (bb / s) % s, b = bb / (s * s);
        put(y, idx, x[((b * C + c) * H + yy * s + i) * W + xx * s + j], acc);
    }
}

// y (B, C, h*s, w*s)[b, c, yy*s + i, xx*s + j] = x (B*s*s, C, h, w)[(b*s + i)*s + j, c, yy, xx]
__global__ void pd_up_kernel(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s, bool acc) {
    const int64_t H = h * s, W = w * s, n = B * C * H * W;
    AMS_GRID_STRIDE(idx, n) {
        int64_t X = idx % W, t = idx / W;
        int64_t Y = t % H;
        t /= H;
        int64_t c = t % C, b = t / C;
        int64_t i = Y % s, yy = Y / s, j = X % s, xx = X / s;
        put(y, idx, x[((((b * s + i) * s + j) * C + c) * h + yy) * w + xx], acc);
    }
}

// Fused mask + PD (kernels/cpu/pd.cpp pd_down_masked / pd_up_masked): one thread per sub-image
// pixel p of (B*s*s, h, w), which draws rule.hidden(p) once and moves its C channels.
__global__ void pd_down_masked_kernel(const float* x, float* y, float* flags, int64_t B, int64_t C, int64_t H,
                                      int64_t W, int s, rng::MaskRule rule, bool keep_hidden, bool acc) {
    const int64_t h = H / s, w = W / s, n = B * s * s * h * w;
    AMS_GRID_STRIDE(p, n) {
        const int64_t xx = p % w, yy = (p / w) % h, nb = p / (w * h);
        const int64_t j = nb % s, i = (nb / s) % s, b = nb / (s * s);
        const bool hid = rule.hidden(p), keep = hid == keep_hidden;
        if (flags) flags[p] = hid ? 1.f : 0.f;
        if (acc && !keep) continue;
        for (int64_t c = 0; c < C; ++c) {
            const int64_t o = ((nb * C + c) * h + yy) * w + xx;
            const float v = keep ? x[((b * C + c) * H + yy * s + i) * W + xx * s + j] : 0.f;
            put(y, o, v, acc);
        }
    }
}

__global__ void pd_up_masked_kernel(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s,
                                    rng::MaskRule rule, bool keep_hidden, bool acc) {
    const int64_t H = h * s, W = w * s, n = B * s * s * h * w;
    AMS_GRID_STRIDE(p, n) {
        if (rule.hidden(p) != keep_hidden) continue;
        const int64_t xx = p % w, yy = (p / w) % h, nb = p / (w * h);
        const int64_t j = nb % s, i = (nb / s) % s, b = nb / (s * s);
        for (int64_t c = 0; c < C; ++c)
            put(y, ((b * C + c) * H + yy * s + i) * W + xx * s + j, x[((nb * C + c) * h + yy) * w + xx], acc);
    }
}

// PyTorch 'reflect' (edge not repeated), as kernels/cpu/pad.cpp.
__device__ inline int64_t reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

// Calls f(o) for every padded coordinate o in [0, lo + n + hi) with reflect(o - lo, n) == i.
// reflect() folds with period P = 2(n-1): p reflects onto i exactly when p = i or p = -i mod P.
template <class F>
__device__ void for_each_source(int64_t i, int64_t n, int64_t lo, int64_t hi, F f) {
    if (n == 1) {
        for (int64_t o = 0; o < lo + 1 + hi; ++o) f(o);
        return;
    }
    const int64_t P = 2 * (n - 1), pmin = -lo, pmax = n - 1 + hi;
    for (int branch = 0; branch < 2; ++branch) {
        int64_t r = branch == 0 ? i : (P - i) % P;
        if (branch == 1 && r == i) break;  // i = 0 or n-1: both residues coincide
        // smallest p >= pmin with p = r (mod P); r - pmin >= 0 since pmin <= 0 <= r
        for (int64_t p = r - ((r - pmin) / P) * P; p <= pmax; p += P) f(p + lo);
    }
}

struct PadGeo {
    int64_t BC, H, W, top, bottom, left, right, Ho, Wo;
};
PadGeo pad_geo(const PadShape& s) { return PadGeo{s.BC, s.H, s.W, s.top, s.bottom, s.left, s.right, s.Ho(), s.Wo()}; }

__global__ void reflect_pad_forward_kernel(PadGeo g, const float* x, float* y) {
    const int64_t n = g.BC * g.Ho * g.Wo;
    AMS_GRID_STRIDE(idx, n) {
        int64_t ox = idx % g.Wo, t = idx / g.Wo;
        int64_t oy = t % g.Ho, p = t / g.Ho;
        y[idx] = x[(p * g.H + reflect(oy - g.top, g.H)) * g.W + reflect(ox - g.left, g.W)];
    }
}

// One thread per INPUT element, gathering all padded positions that reflect onto it.
__global__ void reflect_pad_backward_kernel(PadGeo g, const float* dy, float* dx) {
    const int64_t n = g.BC * g.H * g.W;
    AMS_GRID_STRIDE(idx, n) {
        int64_t ix = idx % g.W, t = idx / g.W;
        int64_t iy = t % g.H, p = t / g.H;
        const float* gp = dy + p * g.Ho * g.Wo;
        float acc = 0.f;
        for_each_source(iy, g.H, g.top, g.bottom, [&](int64_t oy) {
            for_each_source(ix, g.W, g.left, g.right, [&](int64_t ox) { acc += gp[oy * g.Wo + ox]; });
        });
        dx[idx] += acc;
    }
}

__global__ void crop_forward_kernel(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int64_t top,
                                    int64_t left, int64_t h, int64_t w) {
    const int64_t n = BC * h * w;
    AMS_GRID_STRIDE(idx, n) {
        int64_t xx = idx % w, t = idx / w;
        int64_t yy = t % h, p = t / h;
        y[idx] = x[(p * H + top + yy) * W + left + xx];
    }
}

__global__ void crop_backward_kernel(const float* dy, float* dx, int64_t BC, int64_t H, int64_t W, int64_t top,
                                     int64_t left, int64_t h, int64_t w) {
    const int64_t n = BC * h * w;
    AMS_GRID_STRIDE(idx, n) {
        int64_t xx = idx % w, t = idx / w;
        int64_t yy = t % h, p = t / h;
        dx[(p * H + top + yy) * W + left + xx] += dy[idx];
    }
}

__global__ void concat_forward_kernel(const float* a, const float* b, float* y, int64_t B, int64_t Ca, int64_t Cb,
                                      int64_t N) {
    const int64_t per = (Ca + Cb) * N, n = B * per;
    AMS_GRID_STRIDE(idx, n) {
        int64_t bi = idx / per, k = idx - bi * per;
        y[idx] = k < Ca * N ? a[bi * Ca * N + k] : b[bi * Cb * N + k - Ca * N];
    }
}

__global__ void concat_backward_kernel(const float* dy, float* da, float* db, int64_t B, int64_t Ca, int64_t Cb,
                                       int64_t N) {
    const int64_t per = (Ca + Cb) * N, n = B * per;
    AMS_GRID_STRIDE(idx, n) {
        int64_t bi = idx / per, k = idx - bi * per;
        if (k < Ca * N) {
            if (da) da[bi * Ca * N + k] += dy[idx];
        } else if (db) {
            db[bi * Cb * N + k - Ca * N] += dy[idx];
        }
    }
}

__global__ void dihedral_kernel(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int k, bool accumulate) {
    const bool fh = k & 1, fv = k & 2, tr = k & 4;
    const int64_t Ho = tr ? W : H, Wo = tr ? H : W;
    AMS_GRID_STRIDE(idx, BC * Ho * Wo) {
        int64_t j = idx % Wo, t = idx / Wo;
        int64_t i = t % Ho, p = t / Ho;
        const int64_t a = tr ? j : i, b = tr ? i : j;
        const float v = x[(p * H + (fv ? H - 1 - a : a)) * W + (fh ? W - 1 - b : b)];
        y[idx] = accumulate ? y[idx] + v : v;
    }
}

}  // namespace

void pixel_unshuffle(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate) {
    const int64_t n = B * C * H * W;
    if (n == 0) return;
    pixel_unshuffle_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, B, C, H, W, r, accumulate);
    AMS_CUDA_LAUNCH_CHECK("pixel_unshuffle");
}

void pixel_shuffle(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate) {
    const int64_t n = B * C * H * W;
    if (n == 0) return;
    pixel_shuffle_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, B, C, H, W, r, accumulate);
    AMS_CUDA_LAUNCH_CHECK("pixel_shuffle");
}

void pd_down(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int s, bool accumulate) {
    const int64_t n = B * C * H * W;
    if (n == 0) return;
    pd_down_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, B, C, H, W, s, accumulate);
    AMS_CUDA_LAUNCH_CHECK("pd_down");
}

void pd_up(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s, bool accumulate) {
    const int64_t n = B * C * h * w * s * s;
    if (n == 0) return;
    pd_up_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, B, C, h, w, s, accumulate);
    AMS_CUDA_LAUNCH_CHECK("pd_up");
}

void pd_down_masked(const float* x, float* y, float* flags, int64_t B, int64_t C, int64_t H, int64_t W, int s,
                    const rng::MaskRule& rule, bool keep_hidden, bool accumulate) {
    const int64_t n = B * s * s * (H / s) * (W / s);
    if (n == 0) return;
    pd_down_masked_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, flags, B, C, H, W, s, rule, keep_hidden,
                                                                   accumulate);
    AMS_CUDA_LAUNCH_CHECK("pd_down_masked");
}

void pd_up_masked(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s,
                  const rng::MaskRule& rule, bool keep_hidden, bool accumulate) {
    const int64_t n = B * s * s * h * w;
    if (n == 0) return;
    pd_up_masked_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, B, C, h, w, s, rule, keep_hidden, accumulate);
    AMS_CUDA_LAUNCH_CHECK("pd_up_masked");
}

void reflect_pad_forward(const PadShape& s, const float* x, float* y) {
    PadGeo g = pad_geo(s);
    const int64_t n = g.BC * g.Ho * g.Wo;
    if (n == 0) return;
    reflect_pad_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(g, x, y);
    AMS_CUDA_LAUNCH_CHECK("reflect_pad forward");
}

void reflect_pad_backward(const PadShape& s, const float* dy, float* dx) {
    if (!dx) return;
    PadGeo g = pad_geo(s);
    const int64_t n = g.BC * g.H * g.W;
    if (n == 0) return;
    reflect_pad_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(g, dy, dx);
    AMS_CUDA_LAUNCH_CHECK("reflect_pad backward");
}

void crop_forward(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left, int64_t h,
                  int64_t w) {
    const int64_t n = BC * h * w;
    if (n == 0) return;
    crop_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, BC, H, W, top, left, h, w);
    AMS_CUDA_LAUNCH_CHECK("crop forward");
}

void crop_backward(const float* dy, float* dx, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left,
                   int64_t h, int64_t w) {
    const int64_t n = BC * h * w;
    if (!dx || n == 0) return;
    crop_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dy, dx, BC, H, W, top, left, h, w);
    AMS_CUDA_LAUNCH_CHECK("crop backward");
}

void dihedral(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int k, bool accumulate) {
    const int64_t n = BC * H * W;
    if (n == 0) return;
    dihedral_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, BC, H, W, k, accumulate);
    AMS_CUDA_LAUNCH_CHECK("dihedral");
}

void concat_forward(const float* a, const float* b, float* y, int64_t B, int64_t Ca, int64_t Cb, int64_t N) {
    const int64_t n = B * (Ca + Cb) * N;
    if (n == 0) return;
    concat_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(a, b, y, B, Ca, Cb, N);
    AMS_CUDA_LAUNCH_CHECK("concat forward");
}

void concat_backward(const float* dy, float* da, float* db, int64_t B, int64_t Ca, int64_t Cb, int64_t N) {
    const int64_t n = B * (Ca + Cb) * N;
    if ((!da && !db) || n == 0) return;
    if (da && da == db) {
        // concat(x, x): both halves add into one buffer. In one launch two threads would add into
        // the same element at once (a lost update); two launches run one after the other.
        concat_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dy, da, nullptr, B, Ca, Cb, N);
        AMS_CUDA_LAUNCH_CHECK("concat backward");
        da = nullptr;
    }
    concat_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dy, da, db, B, Ca, Cb, N);
    AMS_CUDA_LAUNCH_CHECK("concat backward");
}

}  // namespace ams::cuda
