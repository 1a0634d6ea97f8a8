// The CUDA execution model on the host: a launch runs its blocks one after another; a block's
// threads are fibers (ucontext) switched only at __syncthreads and warp shuffles, so blocks and
// warps keep their CUDA semantics (barriers, lane exchange) while everything stays deterministic.
// CUDA_EMU_ORDER=reverse runs the blocks, and each block's threads between barriers, in reverse
// order: a kernel that reads what another thread wrote without a barrier between, or whose blocks
// write one element, gives different results in the two orders. Violations CUDA leaves undefined (a barrier not reached by every thread of the block,
// a full-warp shuffle in a partial warp, a bad launch configuration) fail the launch with a message.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(8) uint2 {
    unsigned int x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Shared memory: a block's threads all see one copy, and blocks run one at a time.
#define __shared__ static

struct cuda_emu_stream;

namespace cuda_emu {

struct ThreadCtx {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};
extern ThreadCtx* g_thread;  // the emulated thread now running

void syncthreads();
// Deposits this lane's 8 bytes and returns those of lane `src` of its warp (its own when src is
// outside the warp); every lane of the warp must take part (mask 0xffffffff).
uint64_t warp_exchange(unsigned mask, uint64_t bits, int src);
int lane_id();  // the running thread's lane: its linear index in the block, mod 32

void launch_impl(dim3 grid, dim3 block, size_t smem, std::function<void()> body);

// A launch's configuration, as between <<< and >>>.
struct Config {
    dim3 grid, block;
    size_t smem = 0;
    cuda_emu_stream* stream = nullptr;
};

// The kernel's arguments are copied once here (CUDA evaluates them once per launch); `call`
// passes them to the kernel in every emulated thread.
template <class Call, class... Args>
void launch(const Config& c, Call&& call, Args... args) {
    launch_impl(c.grid, c.block, c.smem, [&] { call(args...); });
}

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::g_thread->thread_idx)
#define blockIdx (::cuda_emu::g_thread->block_idx)
#define blockDim (::cuda_emu::g_thread->block_dim)
#define gridDim (::cuda_emu::g_thread->grid_dim)

inline void __syncthreads() { ::cuda_emu::syncthreads(); }

template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    const int lane = ::cuda_emu::lane_id(), seg = lane / width * width;
    // A source past the lane's width segment: the lane keeps its own value.
    const int src = lane + (int)delta < seg + width ? lane + (int)delta : lane;
    bits = ::cuda_emu::warp_exchange(mask, bits, src);
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    const int lane = ::cuda_emu::lane_id(), src = lane ^ lane_mask;
    // Earlier width groups may be read; a later one gives the lane its own value.
    bits = ::cuda_emu::warp_exchange(mask, bits, src >= (lane / width + 1) * width ? lane : src);
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned int u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
