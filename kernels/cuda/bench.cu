// Measurement services for `amsnet bench` on the GPU: CUDA-event timing on the engine stream, an
// L2 flush between timed runs, the device's own copy bandwidth (the yardstick for memory-bound
// kernels) and its clocks.
#include <algorithm>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace ams::cuda {

namespace {
// Owners that release on every path, a throwing timed function included.
struct Event {
    cudaEvent_t e{};
    Event() { CUDA_CHECK(cudaEventCreate(&e)); }
    ~Event() { cudaEventDestroy(e); }
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
};
// cudaMalloc, outside the pool (not engine memory). The pool keeps what it once held: when the
// device is full, the pool's unused blocks go back to the driver and the allocation is retried once.
void* raw_alloc(size_t bytes, const char* what) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        trim_pool();
        e = cudaMalloc(&p, bytes);
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        AMS_FAIL("bench: cannot allocate ", bytes >> 20, " MiB for ", what, " (", cudaGetErrorString(e), ")");
    }
    return p;
}

struct RawBuffer {
    void* p = nullptr;
    explicit RawBuffer(size_t bytes) : p(raw_alloc(bytes, "the copy-bandwidth measurement")) {}
    ~RawBuffer() { cudaFree(p); }
    RawBuffer(const RawBuffer&) = delete;
    RawBuffer& operator=(const RawBuffer&) = delete;
};
}  // namespace

double time_ms(const std::function<void()>& f) {
    Event start, stop;
    CUDA_CHECK(cudaEventRecord(start.e, stream()));
    f();
    CUDA_CHECK(cudaEventRecord(stop.e, stream()));
    CUDA_CHECK(cudaEventSynchronize(stop.e));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start.e, stop.e));
    return ms;
}

void flush_l2() {
    static void* buf = nullptr;
    static size_t bytes = 0;
    if (!buf) {
        int dev = 0, l2 = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
        bytes = std::max<size_t>(2 * (size_t)l2, 1 << 20);
        buf = raw_alloc(bytes, "the L2 flush");
    }
    CUDA_CHECK(cudaMemsetAsync(buf, 0x5A, bytes, stream()));
}

double copy_bandwidth_gbs() {
    const size_t bytes = (size_t)512 << 20;
    RawBuffer a(bytes), b(bytes);
    CUDA_CHECK(cudaMemsetAsync(a.p, 1, bytes, stream()));
    std::vector<double> ms;
    for (int i = 0; i < 7; ++i)
        ms.push_back(
            time_ms([&] { CUDA_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, stream())); }));
    std::sort(ms.begin(), ms.end());
    return 2.0 * (double)bytes / (ms[ms.size() / 2] * 1e-3) / 1e9;  // read + write
}

std::string clocks() {
    int dev = 0, sm = 0, mem = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (cudaDeviceGetAttribute(&sm, cudaDevAttrClockRate, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&mem, cudaDevAttrMemoryClockRate, dev) != cudaSuccess) {
        cudaGetLastError();
        return "clocks not readable";
    }
    return str("SM clock ", sm / 1000, " MHz, memory clock ", mem / 1000, " MHz (peak)");
}

}  // namespace ams::cuda
