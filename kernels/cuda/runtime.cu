// CUDA runtime services: device probe, the engine stream, stream-ordered allocation with byte
// accounting, copies, fills, strided copies and launch checks.
#include "kernels/cuda/runtime.h"

#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "engine/device.h"
#include "engine/precision.h"
#include "engine/tensor.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/handles.h"

namespace ams::cuda {

namespace {


// Never destroyed: Storage destructors of static tensors may run after ordinary statics are gone.
struct Accounting {
    std::mutex mu;
    std::unordered_map<void*, size_t> sizes;
    size_t in_use = 0, peak = 0, limit = 0;  // limit: set_memory_limit's cap, 0 = none
};
Accounting& acct() {
    static Accounting* a = new Accounting;
    return *a;
}

// AMS_CUDA_POISON=1: fresh allocations are filled with 0xFF bytes (a NaN as float32), so a kernel
// that leaves part of its output unwritten fails the tests instead of passing on stale zeros.
bool poison() {
    static const bool on = env_flag("AMS_CUDA_POISON");
    return on;
}

__global__ void probe_kernel() {}

__global__ void fill_kernel(float* p, int64_t n, float v) {
    AMS_GRID_STRIDE(i, n) p[i] = v;
}

constexpr int kMaxDims = 6;
template <class I>
struct StridedLayout {
    int nd;
    I shape[kMaxDims], dst_stride[kMaxDims], src_stride[kMaxDims];
};

// One thread per element: unravel the row-major index over the shape, map through both strides.
// E: an unsigned integer of the element's size (the copy moves bits, whatever the dtype); I: the
// index type (common.cuh, with_index_type).
template <class E, class I>
__global__ void strided_copy_kernel(E* dst, const E* src, I n, StridedLayout<I> L) {
    AMS_GRID_STRIDE_AS(I, i, n) {
        I rem = i, so = 0, dof = 0;
        for (int d = L.nd - 1; d >= 0; --d) {
            I idx = rem % L.shape[d];
            rem /= L.shape[d];
            so += idx * L.src_stride[d];
            dof += idx * L.dst_stride[d];
        }
        dst[dof] = src[so];
    }
}

template <class E, class I>
void launch_strided_copy(const Tensor& dst, const Tensor& src) {
    StridedLayout<I> L{};
    L.nd = dst.ndim();
    for (int d = 0; d < L.nd; ++d) {
        L.shape[d] = (I)dst.shape()[d];
        L.dst_stride[d] = (I)dst.strides()[d];
        L.src_stride[d] = (I)src.strides()[d];
    }
    const int64_t n = dst.numel();
    strided_copy_kernel<E, I><<<grid_for(n), kThreads, 0, stream()>>>(static_cast<E*>(dst.raw_data()),
                                                                      static_cast<const E*>(src.raw_data()), (I)n, L);
}

// The largest element offset a view reaches from its first element, plus one (strides are >= 0).
int64_t extent(const Tensor& t) {
    int64_t e = 1;
    for (int d = 0; d < t.ndim(); ++d) e += (t.shape()[d] - 1) * t.strides()[d];
    return e;
}

}  // namespace

namespace {
// Why no device is usable ("" when one is), probed once.
const std::string& probe() {
    static const std::string reason = []() -> std::string {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess || n == 0) {
            cudaGetLastError();  // no driver / no device: clear the error, report why
            return e != cudaSuccess ? std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e) : "no CUDA device";
        }
        // A device this binary has no code for (other architecture) is not usable either.
        cudaFuncAttributes attr;
        e = cudaFuncGetAttributes(&attr, probe_kernel);
        if (e != cudaSuccess) {
            cudaGetLastError();
            return std::string("no code for this device in the binary (") + cudaGetErrorString(e) + ")";
        }
        return "";
    }();
    return reason;
}
}  // namespace

bool available() { return probe().empty(); }
std::string unavailable_reason() { return probe(); }

std::string device_description() {
    int dev = 0, drv = 0, rt = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    CUDA_CHECK(cudaDriverGetVersion(&drv));
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    // The precision policy is part of every figure's context.
    const char* math = precision_name(precision());
    return str(p.name, " (sm_", p.major, p.minor, ", ", p.totalGlobalMem >> 30, " GiB), driver ", drv / 1000, ".",
               (drv % 1000) / 10, ", runtime ", rt / 1000, ".", (rt % 1000) / 10, ", precision ", math);
}

namespace {
cudaMemPool_t default_pool() {
    int dev = 0;
    cudaMemPool_t pool;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
    return pool;
}

// Freed memory the pool keeps at a synchronisation; the rest goes back to the driver. 0: keep it
// all (the default threshold, 0 bytes, would make each training step re-map its activations).
void set_release_threshold(size_t bytes) {
    uint64_t threshold = bytes > 0 ? (uint64_t)bytes : std::numeric_limits<uint64_t>::max();
    CUDA_CHECK(cudaMemPoolSetAttribute(default_pool(), cudaMemPoolAttrReleaseThreshold, &threshold));
}
}  // namespace

cudaStream_t stream() {
    static cudaStream_t s = [] {
        cudaStream_t x;
        CUDA_CHECK(cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking));
        set_release_threshold(0);
        return x;
    }();
    return s;
}

void trim_pool() {
    CUDA_CHECK(cudaStreamSynchronize(stream()));
    CUDA_CHECK(cudaMemPoolTrimTo(default_pool(), 0));
}

namespace {
// try_alloc, with the reason in *why when it returns nullptr.
void* alloc_or_why(size_t bytes, std::string* why) {
    if (bytes == 0) bytes = 1;
    Accounting& a = acct();
    {
        // Reserved under the lock before the pool is asked, so two threads cannot both pass the cap.
        std::lock_guard<std::mutex> lock(a.mu);
        if (a.limit > 0 && a.in_use + bytes > a.limit) {
            if (why)
                *why = str("CUDA out of memory: ", allocating_text(bytes, a.in_use),
                           " would exceed its memory limit of ", size_text((double)a.limit), " (--max-memory)");
            return nullptr;
        }
        a.in_use += bytes;
    }
    void* p = nullptr;
    cudaError_t e = cudaMallocAsync(&p, bytes, stream());
    if (e == cudaErrorMemoryAllocation) {  // retry once after returning cached, fragmented blocks
        cudaGetLastError();
        try {
            trim_pool();  // throws when an earlier kernel's fault surfaces at its synchronisation
        } catch (...) {
            std::lock_guard<std::mutex> lock(a.mu);
            a.in_use -= bytes;  // the reservation, or memory_in_use and --max-memory drift
            throw;
        }
        e = cudaMallocAsync(&p, bytes, stream());
    }
    {
        std::lock_guard<std::mutex> lock(a.mu);
        if (e != cudaSuccess) {
            cudaGetLastError();
            a.in_use -= bytes;
            if (why)
                *why = str("CUDA out of memory: ", allocating_text(bytes, a.in_use), " (", cudaGetErrorString(e), ")");
            return nullptr;
        }
        a.sizes[p] = bytes;
        a.peak = std::max(a.peak, a.in_use);
    }
    if (poison()) CUDA_CHECK(cudaMemsetAsync(p, 0xFF, bytes, stream()));
    return p;
}
}  // namespace

void* try_alloc(size_t bytes) { return alloc_or_why(bytes, nullptr); }

void* alloc(size_t bytes) {
    std::string why;
    void* p = alloc_or_why(bytes, &why);
    if (!p) AMS_FAIL(why);
    return p;
}

void set_memory_limit(size_t bytes) {
    (void)stream();  // its first call sets the pool's threshold; this one must come after
    Accounting& a = acct();
    {
        std::lock_guard<std::mutex> lock(a.mu);
        a.limit = bytes;
    }
    // Under a limit the pool hands back what it holds beyond it at each synchronisation, so the
    // process's device memory stays near the limit too.
    set_release_threshold(bytes);
}

size_t memory_limit() {
    Accounting& a = acct();
    std::lock_guard<std::mutex> lock(a.mu);
    return a.limit;
}

void free(void* p) noexcept {
    if (!p) return;
    {
        Accounting& a = acct();
        std::lock_guard<std::mutex> lock(a.mu);
        auto it = a.sizes.find(p);
        if (it != a.sizes.end()) {
            a.in_use -= it->second;
            a.sizes.erase(it);
        }
    }
    // Stream-ordered: the block is reused only by work queued after this point. Errors (e.g. at
    // process exit, after the runtime unloaded) are dropped: free must not throw.
    if (cudaFreeAsync(p, stream()) != cudaSuccess) cudaGetLastError();
}

namespace {

// A host-to-device copy from pageable memory may make the host wait for the stream to drain (the
// driver stages it through its own pinned buffer), so uploading a training batch would stop the
// host from queueing the next step while the GPU still runs this one. Copies up to kMaxStaged go
// through a ring of pinned buffers instead: a host memcpy, then an asynchronous DMA. A buffer is
// written again only after the event recorded behind its last DMA has passed (kSlots uploads
// ago, normally long done). Never destroyed, like the pool's accounting.
class PinnedStaging {
public:
    static PinnedStaging& get() {
        static auto* s = new PinnedStaging;
        return *s;
    }
    // Queues dst <- src (bytes) on the engine stream; false when too large to stage.
    bool upload(void* dst, const void* src, size_t bytes) {
        if (bytes > kMaxStaged) return false;
        std::lock_guard<std::mutex> lock(mu_);
        Slot& s = slots_[next_];
        next_ = (next_ + 1) % kSlots;
        if (s.pending) CUDA_CHECK(cudaEventSynchronize(s.done));
        s.pending = false;
        if (s.capacity < bytes) {  // rare (sizes double): the implicit sync of these calls is fine
            if (s.host) CUDA_CHECK(cudaFreeHost(s.host));
            s.host = nullptr;
            s.capacity = 0;  // consistent even if the allocation below throws
            size_t cap = size_t(1) << 16;
            while (cap < bytes) cap *= 2;
            CUDA_CHECK(cudaMallocHost(&s.host, cap));
            s.capacity = cap;
        }
        if (!s.done) CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
        std::memcpy(s.host, src, bytes);
        CUDA_CHECK(cudaMemcpyAsync(dst, s.host, bytes, cudaMemcpyHostToDevice, stream()));
        CUDA_CHECK(cudaEventRecord(s.done, stream()));
        s.pending = true;
        return true;
    }

private:
    static constexpr size_t kMaxStaged = size_t(64) << 20;
    static constexpr int kSlots = 4;
    struct Slot {
        void* host = nullptr;
        size_t capacity = 0;
        cudaEvent_t done = nullptr;
        bool pending = false;
    };
    std::mutex mu_;
    Slot slots_[kSlots];
    int next_ = 0;
};

// Ordinary (pageable) host memory: neither device memory nor pinned or registered host memory.
bool pageable_host(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error of a failed query: treat as pageable
        return true;
    }
    return a.type == cudaMemoryTypeUnregistered;
}

}  // namespace

void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes) {
    if (bytes == 0) return;
    if (dst_on_device && !src_on_device && pageable_host(src) && PinnedStaging::get().upload(dst, src, bytes)) return;
    // cudaMemcpyDefault infers the direction (unified addressing).
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream()));
    // The host reads its copy right after we return. (Host-to-device from pageable memory returns
    // once the source was staged, so the caller may free or reuse it at once.)
    if (!dst_on_device) CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void memset0(void* p, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream()));
}

void fill(float* p, int64_t n, float value) {
    if (n <= 0) return;
    fill_kernel<<<grid_for(n), kThreads, 0, stream()>>>(p, n, value);
    AMS_CUDA_LAUNCH_CHECK("fill");
}

void strided_copy(const Tensor& dst, const Tensor& src) {
    AMS_CHECK(dst.shape() == src.shape(), "strided_copy: shapes ", shape_str(dst.shape()), " and ",
              shape_str(src.shape()));
    AMS_CHECK(dst.is_cuda() && src.is_cuda(), "strided_copy: both tensors must be on the GPU");
    AMS_CHECK(dst.dtype() == src.dtype(), "strided_copy: dtypes differ (", dtype_name(dst.dtype()), " vs ",
              dtype_name(src.dtype()), ")");
    const int nd = dst.ndim();
    AMS_CHECK(nd <= kMaxDims, "strided_copy: at most ", kMaxDims, " dimensions, got ", shape_str(dst.shape()));
    const int64_t n = dst.numel();
    if (n == 0) return;
    with_index_type(std::max({n, extent(dst), extent(src)}), [&](auto t) {
        using I = decltype(t);
        switch (dtype_size(dst.dtype())) {
            case 2: return launch_strided_copy<uint16_t, I>(dst, src);
            case 4: return launch_strided_copy<uint32_t, I>(dst, src);
            default: return launch_strided_copy<uint64_t, I>(dst, src);
        }
    });
    AMS_CUDA_LAUNCH_CHECK("strided_copy");
}

void synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream())); }

size_t memory_in_use() {
    Accounting& a = acct();
    std::lock_guard<std::mutex> lock(a.mu);
    return a.in_use;
}

size_t memory_peak() {
    Accounting& a = acct();
    std::lock_guard<std::mutex> lock(a.mu);
    return a.peak;
}

void reset_peak() {
    Accounting& a = acct();
    std::lock_guard<std::mutex> lock(a.mu);
    a.peak = a.in_use;
}

size_t memory_available(bool within_limit) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    uint64_t reserved = 0;
    CUDA_CHECK(cudaMemPoolGetAttribute(default_pool(), cudaMemPoolAttrReservedMemCurrent, &reserved));
    const size_t held = memory_in_use();
    const size_t room = free_b + (reserved > held ? (size_t)(reserved - held) : 0);
    return within_limit ? room_under_limit(room, held, memory_limit()) : room;
}

bool debug_sync() {
    static const bool on = env_flag("AMS_CUDA_SYNC");
    return on;
}

void check_launch(const char* what, const char* file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        detail::throw_error(what, file, line, str("CUDA kernel launch failed: ", cudaGetErrorString(e)));
    if (debug_sync()) {
        e = cudaStreamSynchronize(stream());
        if (e != cudaSuccess)
            detail::throw_error(what, file, line, str("CUDA error while running: ", cudaGetErrorString(e)));
    }
}

int64_t g_warp_row_max = 2048;

int64_t set_warp_row_max(int64_t n) { return std::exchange(g_warp_row_max, n); }

int64_t g_index32_max = int64_t{1} << 30;

int64_t set_index32_max(int64_t n) {
    // Above 2^30, i + a grid's stride (up to 2^28 threads) could overflow int32.
    AMS_CHECK(n >= 0 && n <= (int64_t{1} << 30), "set_index32_max: ", n, " is outside [0, 2^30]");
    return std::exchange(g_index32_max, n);
}

}  // namespace ams::cuda
