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

template <class I>
__device__ inline void put(float* y, I i, float v, bool acc) {
    if (acc) y[i] += v;
    else y[i] = v;
}

// Every kernel below is a template on its index type I (common.cuh, with_index_type).

// y (B, C*r*r, h, w)[b, c*r*r + i*r + j, yy, xx] = x (B, C, H, W)[b, c, yy*r + i, xx*r + j]
template <class I>
__global__ void pixel_unshuffle_kernel(const float* x, float* y, I B, I C, I H, I W, I r, bool acc) {
    const I h = H / r, w = W / r, Cr = C * r * r, n = B * Cr * h * w;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I xx = idx % w, t = idx / w;
        I yy = t % h;
        t /= h;
        I cc = t % Cr, b = t / Cr;
        I c = cc / (r * r), i = (cc / r) % r, j = cc % r;
        put(y, idx, x[((b * C + c) * H + yy * r + i) * W + xx * r + j], acc);
    }
}

// y (B, C/(r*r), H*r, W*r)[b, c, yy*r + i, xx*r + j] = x (B, C, H, W)[b, c*r*r + i*r + j, yy, xx]
template <class I>
__global__ void pixel_shuffle_kernel(const float* x, float* y, I B, I C, I H, I W, I r, bool acc) {
    const I Co = C / (r * r), Ho = H * r, Wo = W * r, n = B * Co * Ho * Wo;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I X = idx % Wo, t = idx / Wo;
        I Y = t % Ho;
        t /= Ho;
        I c = t % Co, b = t / Co;
        I i = Y % r, yy = Y / r, j = X % r, xx = X / r;
        put(y, idx, x[(((b * Co + c) * r * r + i * r + j) * H + yy) * W + xx], acc);
    }
}

// y (B*s*s, C, h, w)[(b*s + i)*s + j, c, yy, xx] = x (B, C, H, W)[b, c, yy*s + i, xx*s + j]
template <class I>
__global__ void pd_down_kernel(const float* x, float* y, I B, I C, I H, I W, I s, bool acc) {
    const I h = H / s, w = W / s, n = B * s * s * C * h * w;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I xx = idx % w, t = idx / w;
        I yy = t % h;
        t /= h;
        I c = t % C, bb = t / C;  // bb = (b*s + i)*s + j
        I j = bb % s, i = (bb / s) % s, b = bb / (s * s);
        put(y, idx, x[((b * C + c) * H + yy * s + i) * W + xx * s + j], acc);
    }
}

// y (B, C, h*s, w*s)[b, c, yy*s + i, xx*s + j] = x (B*s*s, C, h, w)[(b*s + i)*s + j, c, yy, xx]
template <class I>
__global__ void pd_up_kernel(const float* x, float* y, I B, I C, I h, I w, I s, bool acc) {
    const I H = h * s, W = w * s, n = B * C * H * W;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I X = idx % W, t = idx / W;
        I Y = t % H;
        t /= H;
        I c = t % C, b = t / C;
        I i = Y % s, yy = Y / s, j = X % s, xx = X / s;
        put(y, idx, x[((((b * s + i) * s + j) * C + c) * h + yy) * w + xx], acc);
    }
}

// Fused mask + PD (kernels/cpu/pd.cpp pd_down_masked / pd_up_masked): one thread per sub-image
// pixel p of (B*s*s, h, w), which draws rule.hidden(p) once and moves its C channels.
template <class I>
__global__ void pd_down_masked_kernel(const float* x, float* y, float* flags, I B, I C, I H, I W, I s,
                                      rng::MaskRule rule, bool keep_hidden, bool acc) {
    const I h = H / s, w = W / s, n = B * s * s * h * w;
    AMS_GRID_STRIDE_AS(I, p, n) {
        const I xx = p % w, yy = (p / w) % h, nb = p / (w * h);
        const I j = nb % s, i = (nb / s) % s, b = nb / (s * s);
        const bool hid = rule.hidden((int64_t)p), keep = hid == keep_hidden;
        if (flags) flags[p] = hid ? 1.f : 0.f;
        if (acc && !keep) continue;
        for (I c = 0; c < C; ++c) {
            const I o = ((nb * C + c) * h + yy) * w + xx;
            const float v = keep ? x[((b * C + c) * H + yy * s + i) * W + xx * s + j] : 0.f;
            put(y, o, v, acc);
        }
    }
}

template <class I>
__global__ void pd_up_masked_kernel(const float* x, float* y, I B, I C, I h, I w, I s, rng::MaskRule rule,
                                    bool keep_hidden, bool acc) {
    const I H = h * s, W = w * s, n = B * s * s * h * w;
    AMS_GRID_STRIDE_AS(I, p, n) {
        if (rule.hidden((int64_t)p) != keep_hidden) continue;
        const I xx = p % w, yy = (p / w) % h, nb = p / (w * h);
        const I j = nb % s, i = (nb / s) % s, b = nb / (s * s);
        for (I c = 0; c < C; ++c)
            put(y, ((b * C + c) * H + yy * s + i) * W + xx * s + j, x[((nb * C + c) * h + yy) * w + xx], acc);
    }
}

// PyTorch 'reflect' (edge not repeated), as kernels/cpu/pad.cpp.
template <class I>
__device__ inline I reflect(I i, I n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

// Calls f(o) for every padded coordinate o in [0, lo + n + hi) with reflect(o - lo, n) == i.
// reflect() folds with period P = 2(n-1): p reflects onto i exactly when p = i or p = -i mod P.
template <class I, class F>
__device__ void for_each_source(I i, I n, I lo, I hi, F f) {
    if (n == 1) {
        for (I o = 0; o < lo + 1 + hi; ++o) f(o);
        return;
    }
    const I P = 2 * (n - 1), pmin = -lo, pmax = n - 1 + hi;
    for (int branch = 0; branch < 2; ++branch) {
        I r = branch == 0 ? i : (P - i) % P;
        if (branch == 1 && r == i) break;  // i = 0 or n-1: both residues coincide
        // smallest p >= pmin with p = r (mod P); r - pmin >= 0 since pmin <= 0 <= r
        for (I p = r - ((r - pmin) / P) * P; p <= pmax; p += P) f(p + lo);
    }
}

template <class I>
struct PadGeo {
    I BC, H, W, top, bottom, left, right, Ho, Wo;
};
template <class I>
PadGeo<I> pad_geo(const PadShape& s) {
    return PadGeo<I>{(I)s.BC, (I)s.H, (I)s.W, (I)s.top, (I)s.bottom, (I)s.left, (I)s.right, (I)s.Ho(), (I)s.Wo()};
}

template <class I>
__global__ void reflect_pad_forward_kernel(PadGeo<I> g, const float* x, float* y) {
    const I n = g.BC * g.Ho * g.Wo;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I ox = idx % g.Wo, t = idx / g.Wo;
        I oy = t % g.Ho, p = t / g.Ho;
        y[idx] = x[(p * g.H + reflect<I>(oy - g.top, g.H)) * g.W + reflect<I>(ox - g.left, g.W)];
    }
}

// One thread per INPUT element, gathering all padded positions that reflect onto it.
template <class I>
__global__ void reflect_pad_backward_kernel(PadGeo<I> g, const float* dy, float* dx) {
    const I n = g.BC * g.H * g.W;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I ix = idx % g.W, t = idx / g.W;
        I iy = t % g.H, p = t / g.H;
        const float* gp = dy + p * g.Ho * g.Wo;
        float acc = 0.f;
        for_each_source<I>(iy, g.H, g.top, g.bottom, [&](I oy) {
            for_each_source<I>(ix, g.W, g.left, g.right, [&](I ox) { acc += gp[oy * g.Wo + ox]; });
        });
        dx[idx] += acc;
    }
}

template <class I>
__global__ void crop_forward_kernel(const float* x, float* y, I BC, I H, I W, I top, I left, I h, I w) {
    const I n = BC * h * w;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I xx = idx % w, t = idx / w;
        I yy = t % h, p = t / h;
        y[idx] = x[(p * H + top + yy) * W + left + xx];
    }
}

template <class I>
__global__ void crop_backward_kernel(const float* dy, float* dx, I BC, I H, I W, I top, I left, I h, I w) {
    const I n = BC * h * w;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I xx = idx % w, t = idx / w;
        I yy = t % h, p = t / h;
        dx[(p * H + top + yy) * W + left + xx] += dy[idx];
    }
}

template <class I>
__global__ void concat_forward_kernel(const float* a, const float* b, float* y, I B, I Ca, I Cb, I N) {
    const I per = (Ca + Cb) * N, n = B * per;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I bi = idx / per, k = idx - bi * per;
        y[idx] = k < Ca * N ? a[bi * Ca * N + k] : b[bi * Cb * N + k - Ca * N];
    }
}

template <class I>
__global__ void concat_backward_kernel(const float* dy, float* da, float* db, I B, I Ca, I Cb, I N) {
    const I per = (Ca + Cb) * N, n = B * per;
    AMS_GRID_STRIDE_AS(I, idx, n) {
        I bi = idx / per, k = idx - bi * per;
        if (k < Ca * N) {
            if (da) da[bi * Ca * N + k] += dy[idx];
        } else if (db) {
            db[bi * Cb * N + k - Ca * N] += dy[idx];
        }
    }
}

// The 8 flips / transposes of each (H, W) plane: y[p, i, j] = x[p, a, b] with (a, b) = (j, i)
// when transposing, each then mirrored by the flips. Flips alone keep rows in rows: one thread per
// element, both sides coalesced.
template <class I>
__global__ void flip_kernel(const float* x, float* y, I BC, I H, I W, bool fh, bool fv, bool accumulate) {
    AMS_GRID_STRIDE_AS(I, idx, BC * H * W) {
        I j = idx % W, t = idx / W;
        I i = t % H, p = t / H;
        const float v = x[(p * H + (fv ? H - 1 - i : i)) * W + (fh ? W - 1 - j : j)];
        y[idx] = accumulate ? y[idx] + v : v;
    }
}

// A transpose through shared memory, so that both the reads of x's rows and the writes of y's rows
// are coalesced (reading x down its columns moved 32 bytes per 4 used). A block moves the kTile x
// kTile tile of x at (r0, c0) into y (W, H) at (c0, r0); the padded row
// (kTile + 1) keeps the column reads free of bank conflicts. Flips mirror the source coordinates.
// Block (tile column, tile row, plane), rows and planes looping past the grid's limits.
constexpr int kTile = 32, kTileRows = 8;  // 32 x 8 threads, each moving 4 elements

template <class I>
__global__ void transpose_kernel(const float* x, float* y, I BC, I H, I W, bool fh, bool fv, bool accumulate) {
    __shared__ float tile[kTile][kTile + 1];
    const I tiles_h = (H + kTile - 1) / kTile;
    // Planes and tile rows loop past the grid's y and z limits; the loops are uniform over the block.
    for (I p = blockIdx.z; p < BC; p += gridDim.z)
        for (I ty = blockIdx.y; ty < tiles_h; ty += gridDim.y) {
            const I r0 = ty * kTile, c0 = (I)blockIdx.x * kTile;
            const float* xp = x + p * H * W;
            float* yp = y + p * H * W;
            for (int k = threadIdx.y; k < kTile; k += kTileRows) {
                const I a = r0 + k, b = c0 + (I)threadIdx.x;
                if (a < H && b < W) tile[k][threadIdx.x] = xp[(fv ? H - 1 - a : a) * W + (fh ? W - 1 - b : b)];
            }
            __syncthreads();
            // y (W, H)[b, a] = tile[a - r0][b - c0]: y's rows are x's columns.
            for (int k = threadIdx.y; k < kTile; k += kTileRows) {
                const I b = c0 + k, a = r0 + (I)threadIdx.x;
                if (a < H && b < W) {
                    const float v = tile[threadIdx.x][k];
                    float& o = yp[b * H + a];
                    o = accumulate ? o + v : v;
                }
            }
            __syncthreads();  // the tile is refilled by the next iteration
        }
}

}  // namespace

// Launches kernel<I> over n threads, I the index type for offsets up to max_offset.
#define AMS_LAYOUT_LAUNCH(kernel, n, max_offset, what, ...)                              \
    with_index_type(max_offset, [&](auto t_) {                                          \
        using I = decltype(t_);                                                          \
        kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(__VA_ARGS__);                  \
    });                                                                                  \
    AMS_CUDA_LAUNCH_CHECK(what)

void pixel_unshuffle(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate) {
    const int64_t n = B * C * H * W;
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(pixel_unshuffle_kernel, n, n, "pixel_unshuffle", x, y, (I)B, (I)C, (I)H, (I)W, (I)r, accumulate);
}

void pixel_shuffle(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate) {
    const int64_t n = B * C * H * W;
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(pixel_shuffle_kernel, n, n, "pixel_shuffle", x, y, (I)B, (I)C, (I)H, (I)W, (I)r, accumulate);
}

void pd_down(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int s, bool accumulate) {
    const int64_t n = B * C * H * W;
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(pd_down_kernel, n, n, "pd_down", x, y, (I)B, (I)C, (I)H, (I)W, (I)s, accumulate);
}

void pd_up(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s, bool accumulate) {
    const int64_t n = B * C * h * w * s * s;
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(pd_up_kernel, n, n, "pd_up", x, y, (I)B, (I)C, (I)h, (I)w, (I)s, accumulate);
}

void pd_down_masked(const float* x, float* y, float* flags, int64_t B, int64_t C, int64_t H, int64_t W, int s,
                    const rng::MaskRule& rule, bool keep_hidden, bool accumulate) {
    const int64_t n = B * s * s * (H / s) * (W / s);
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(pd_down_masked_kernel, n, B * C * H * W, "pd_down_masked", x, y, flags, (I)B, (I)C, (I)H, (I)W,
                      (I)s, rule, keep_hidden, accumulate);
}

void pd_up_masked(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s,
                  const rng::MaskRule& rule, bool keep_hidden, bool accumulate) {
    const int64_t n = B * s * s * h * w;
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(pd_up_masked_kernel, n, n * C, "pd_up_masked", x, y, (I)B, (I)C, (I)h, (I)w, (I)s, rule,
                      keep_hidden, accumulate);
}

void reflect_pad_forward(const PadShape& s, const float* x, float* y) {
    const int64_t n = s.BC * s.Ho() * s.Wo();
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(reflect_pad_forward_kernel, n, n, "reflect_pad forward", pad_geo<I>(s), x, y);
}

void reflect_pad_backward(const PadShape& s, const float* dy, float* dx) {
    const int64_t n = s.BC * s.H * s.W;
    if (!dx || n == 0) return;
    AMS_LAYOUT_LAUNCH(reflect_pad_backward_kernel, n, std::max(n, s.BC * s.Ho() * s.Wo()), "reflect_pad backward",
                      pad_geo<I>(s), dy, dx);
}

void crop_forward(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left, int64_t h,
                  int64_t w) {
    const int64_t n = BC * h * w;
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(crop_forward_kernel, n, BC * H * W, "crop forward", x, y, (I)BC, (I)H, (I)W, (I)top, (I)left,
                      (I)h, (I)w);
}

void crop_backward(const float* dy, float* dx, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left,
                   int64_t h, int64_t w) {
    const int64_t n = BC * h * w;
    if (!dx || n == 0) return;
    AMS_LAYOUT_LAUNCH(crop_backward_kernel, n, BC * H * W, "crop backward", dy, dx, (I)BC, (I)H, (I)W, (I)top,
                      (I)left, (I)h, (I)w);
}

void dihedral(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int k, bool accumulate) {
    const int64_t n = BC * H * W;
    if (n == 0) return;
    const bool fh = k & 1, fv = k & 2;
    if (!(k & 4)) {
        AMS_LAYOUT_LAUNCH(flip_kernel, n, n, "dihedral", x, y, (I)BC, (I)H, (I)W, fh, fv, accumulate);
        return;
    }
    const int64_t tiles_w = (W + kTile - 1) / kTile, tiles_h = (H + kTile - 1) / kTile;
    const dim3 grid((unsigned)tiles_w, (unsigned)std::min<int64_t>(tiles_h, 65535),
                    (unsigned)std::min<int64_t>(BC, 65535));
    with_index_type(n, [&](auto t_) {
        using I = decltype(t_);
        transpose_kernel<I><<<grid, dim3(kTile, kTileRows), 0, stream()>>>(x, y, (I)BC, (I)H, (I)W, fh, fv, accumulate);
    });
    AMS_CUDA_LAUNCH_CHECK("dihedral (transpose)");
}

void concat_forward(const float* a, const float* b, float* y, int64_t B, int64_t Ca, int64_t Cb, int64_t N) {
    const int64_t n = B * (Ca + Cb) * N;
    if (n == 0) return;
    AMS_LAYOUT_LAUNCH(concat_forward_kernel, n, n, "concat forward", a, b, y, (I)B, (I)Ca, (I)Cb, (I)N);
}

void concat_backward(const float* dy, float* da, float* db, int64_t B, int64_t Ca, int64_t Cb, int64_t N) {
    const int64_t n = B * (Ca + Cb) * N;
    if ((!da && !db) || n == 0) return;
    if (da && da == db) {
        // concat(x, x): both halves add into one buffer. In one launch two threads would add into
        // the same element at once (a lost update); two launches run one after the other.
        AMS_LAYOUT_LAUNCH(concat_backward_kernel, n, n, "concat backward", dy, da, nullptr, (I)B, (I)Ca, (I)Cb, (I)N);
        da = nullptr;
    }
    AMS_LAYOUT_LAUNCH(concat_backward_kernel, n, n, "concat backward", dy, da, db, (I)B, (I)Ca, (I)Cb, (I)N);
}

}  // namespace ams::cuda
