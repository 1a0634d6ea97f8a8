// Shared pieces of the CUDA kernels: launch geometry, a scratch buffer from the engine's pool, and
// deterministic reductions. Determinism matters (resume and CPU/GPU comparisons): no float atomics
// anywhere; every sum runs in an order fixed by the shape alone.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/check.h"
#include "kernels/cuda/handles.h"
#include "kernels/cuda/runtime.h"

namespace ams::cuda {

constexpr int kThreads = 256;  // every kernel here uses full warps (the reductions rely on it)

// Blocks for a grid-stride loop over n items (capped: the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)std::clamp<int64_t>(b, 1, 1 << 20);
}

__host__ __device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// Depthwise correlation of plane xp (H, W) with kernel wp (KH, KW), zero padding `pad`, stride 1,
// at output (oy, ox): bias first, then the taps row-major (the CPU reference's order). I: the
// index type (below).
template <class I>
__device__ inline float depthwise_at(const float* xp, const float* wp, float bias, I H, I W, I KH, I KW, I pad, I oy,
                                     I ox) {
    float acc = bias;
    for (I ky = 0; ky < KH; ++ky) {
        const I iy = oy + ky - pad;
        if (iy < 0 || iy >= H) continue;
        for (I kx = 0; kx < KW; ++kx) {
            const I ix = ox + kx - pad;
            if (ix >= 0 && ix < W) acc += wp[ky * KW + kx] * xp[iy * W + ix];
        }
    }
    return acc;
}

#define AMS_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// ---- index type. 64-bit division and modulo are long software sequences on the GPU (32-bit ones
// a few instructions), and the layout and stencil kernels do several per element. Those kernels
// are templates on their index type I: launched with int32_t when every offset they form is at
// most g_index32_max (2^30 by default, so that i + the grid's stride of at most 2^28 threads
// cannot overflow), else int64_t. `max_offset` is the largest element count of any buffer the
// kernel touches.
extern int64_t g_index32_max;  // set_index32_max (tests force the 64-bit path with 0)
template <class F>
void with_index_type(int64_t max_offset, F&& f) {
    if (max_offset <= g_index32_max) f(int32_t{});
    else f(int64_t{});
}
#define AMS_GRID_STRIDE_AS(I, i, n)                                                                  \
    for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < (I)(n); i += (I)(gridDim.x * blockDim.x))

// Scratch device memory for one launcher call, stream-ordered: freeing it right after queueing the
// kernels that use it is safe (the pool reuses it only after they ran).
class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t bytes) : p_(bytes ? alloc(bytes) : nullptr) {}
    ~DeviceBuffer() { free(p_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    template <class T>
    T* as() const { return static_cast<T*>(p_); }

private:
    void* p_;
};

// Sum over the warp, the result in lane 0 (a shuffle-down tree); all 32 lanes must call it.
template <class T>
__device__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Sum / maximum over the warp, the result in every lane; all 32 lanes must call it. Butterfly
// order, fixed by the lane numbers: deterministic.
template <class T>
__device__ T warp_allsum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_allmax(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block, result valid in thread 0. Every thread of the block must call it; blockDim.x
// a multiple of 32. Fixed tree order: deterministic.
template <class T>
__device__ T block_sum(T v) {
    __shared__ T warp_sums[32];
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = threadIdx.x < nwarps ? warp_sums[threadIdx.x] : T(0);
    if (warp == 0) v = warp_sum(v);
    __syncthreads();  // warp_sums may be reused by the next call
    return v;
}

// ---- split reduction: out_row = sum_{k < len} term(row, k) for each row < rows (finish(row, sum)).
// Rows of at most g_warp_row_max (2048) items: one warp each (below). Longer rows, in two stages.
// Stage 1: block (split, row) sums a fixed contiguous chunk of k into partial[row * nsplit + split].
// Stage 2: one thread per row adds its partials in split order and hands the sum to finish(row, s).
template <class Acc, class Term>
__global__ void split_reduce_kernel(Term term, int64_t rows, int64_t len, int nsplit, Acc* partial) {
    const int64_t chunk = (len + nsplit - 1) / nsplit;
    const int64_t begin = (int64_t)blockIdx.x * chunk, end = min64(len, begin + chunk);
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {  // uniform over the block
        Acc acc = 0;
        for (int64_t k = begin + threadIdx.x; k < end; k += blockDim.x) acc += (Acc)term(row, k);
        acc = block_sum(acc);
        if (threadIdx.x == 0) partial[row * nsplit + blockIdx.x] = acc;
    }
}

template <class Acc, class Finish>
__global__ void split_finish_kernel(const Acc* partial, int64_t rows, int nsplit, Finish finish) {
    AMS_GRID_STRIDE(row, rows) {
        Acc s = 0;
        for (int i = 0; i < nsplit; ++i) s += partial[row * nsplit + i];
        finish(row, s);
    }
}

// Short rows: one warp per row (lanes stride over k, then a shuffle tree), kThreads / 32 rows per
// block. No partials and no block barriers: a 256-thread block per row would leave most threads
// idle on rows of a few dozen items (the attention norms of training's deepest levels: 16 pixels).
// The row loop is uniform over each warp, so the full-mask shuffles see all 32 lanes.
template <class Acc, class Term, class Finish>
__global__ void warp_reduce_kernel(Term term, Finish finish, int64_t rows, int64_t len) {
    const int lane = threadIdx.x & 31;
    const int64_t per_block = blockDim.x >> 5, stride = (int64_t)gridDim.x * per_block;
    for (int64_t row = blockIdx.x * per_block + (threadIdx.x >> 5); row < rows; row += stride) {
        Acc acc = 0;
        for (int64_t k = lane; k < len; k += 32) acc += (Acc)term(row, k);
        acc = warp_sum(acc);
        if (lane == 0) finish(row, acc);
    }
}
extern int64_t g_warp_row_max;  // rows up to this long go to warp_reduce_kernel (set_warp_row_max)

// Splits per row: enough blocks to fill the GPU, each with at least ~2K items; depends only on the
// shape, so the summation order (hence the result bits) is the same every run.
inline int split_count(int64_t rows, int64_t len) {
    int64_t by_len = (len + 2047) / 2048;
    int64_t by_rows = (1024 + rows - 1) / std::max<int64_t>(rows, 1);
    return (int)std::clamp<int64_t>(std::min(by_len, by_rows), 1, 1024);
}

template <class Acc, class Term, class Finish>
void split_reduce(int64_t rows, int64_t len, Term term, Finish finish, const char* what) {
    if (rows <= 0) return;
    if (len <= g_warp_row_max) {
        warp_reduce_kernel<Acc><<<grid_for(rows * 32), kThreads, 0, stream()>>>(term, finish, rows, len);
        return check_launch(what, __FILE__, __LINE__);
    }
    const int nsplit = split_count(rows, len);
    DeviceBuffer partial((size_t)(rows * nsplit) * sizeof(Acc));
    dim3 grid((unsigned)nsplit, (unsigned)std::min<int64_t>(rows, 65535));
    split_reduce_kernel<Acc><<<grid, kThreads, 0, stream()>>>(term, rows, len, nsplit, partial.as<Acc>());
    check_launch(what, __FILE__, __LINE__);
    split_finish_kernel<Acc><<<grid_for(rows), kThreads, 0, stream()>>>(partial.as<Acc>(), rows, nsplit, finish);
    check_launch(what, __FILE__, __LINE__);
}

}  // namespace ams::cuda
