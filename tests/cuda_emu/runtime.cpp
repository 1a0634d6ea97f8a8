// The CUDA runtime calls the engine makes, emulated on the host: device memory is heap memory
// (tracked, so copies and library calls can check that a device pointer is one), everything runs
// at once in call order, events read the host clock.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "cuda_emu/state.h"
#include "cuda_runtime.h"

struct cuda_emu_stream {};
struct cuda_emu_event {
    std::chrono::steady_clock::time_point t;
    bool recorded = false;
};
struct cuda_emu_pool {};

namespace cuda_emu {
namespace {

constexpr size_t kDeviceBytes = size_t(16) << 30;  // the emulated device's memory

struct Memory {
    std::map<uintptr_t, size_t> device, pinned;  // start -> bytes
    size_t in_use = 0;
};
Memory& mem() {
    static Memory* m = new Memory;
    return *m;
}
cudaError_t g_error = cudaSuccess;       // sticky until cudaGetLastError
cudaError_t g_text_error = cudaSuccess;  // the error g_error_text explains (kept after the reset)
std::string g_error_text;

bool in(const std::map<uintptr_t, size_t>& m, const void* p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

cudaError_t fail(cudaError_t e, const std::string& what) {
    set_error(e, what);
    return e;
}

cudaError_t device_alloc(void** p, size_t bytes) {
    if (!p) return fail(cudaErrorInvalidValue, "cudaMalloc: null result pointer");
    Memory& m = mem();
    if (bytes > kDeviceBytes - m.in_use) return fail(cudaErrorMemoryAllocation, "out of emulated device memory");
    void* q = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
    if (!q) return fail(cudaErrorMemoryAllocation, "host allocation failed");
    m.device[(uintptr_t)q] = bytes;
    m.in_use += bytes;
    *p = q;
    return cudaSuccess;
}

cudaError_t device_free(void* p) {
    if (!p) return cudaSuccess;
    Memory& m = mem();
    auto it = m.device.find((uintptr_t)p);
    if (it == m.device.end()) return fail(cudaErrorInvalidDevicePointer, "cudaFree of a pointer cudaMalloc did not return");
    m.in_use -= it->second;
    m.device.erase(it);
    std::free(p);
    return cudaSuccess;
}

}  // namespace

std::recursive_mutex& big_lock() {
    static auto* m = new std::recursive_mutex;
    return *m;
}

void set_error(cudaError_t e, const std::string& what) {
    g_error = g_text_error = e;
    g_error_text = what;
    if (std::getenv("CUDA_EMU_VERBOSE")) std::fprintf(stderr, "cuda_emu: error %d: %s\n", (int)e, what.c_str());
}

bool is_device_range(const void* p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lock(big_lock());
    return in(mem().device, p, bytes);
}

}  // namespace cuda_emu

using namespace cuda_emu;
#define EMU_LOCK std::lock_guard<std::recursive_mutex> emu_lock_(big_lock())

const char* cudaGetErrorString(cudaError_t e) {
    // The message of the error just reported, when there is one: it says what the emulator caught.
    if (e == g_text_error && !g_error_text.empty()) return g_error_text.c_str();
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevicePointer: return "invalid device pointer";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError() {
    EMU_LOCK;
    cudaError_t e = g_error;
    g_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* dev) {
    *dev = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
    std::memset(p, 0, sizeof *p);
    std::snprintf(p->name, sizeof p->name, "CUDA emulator on the host (tests/cuda_emu, not a GPU)");
    p->totalGlobalMem = kDeviceBytes;
    p->major = 8;
    p->minor = 6;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
    switch (a) {
        case cudaDevAttrL2CacheSize: *v = 1 << 20; return cudaSuccess;
        case cudaDevAttrMultiProcessorCount: *v = 1; return cudaSuccess;
        case cudaDevAttrComputeCapabilityMajor: *v = 8; return cudaSuccess;
        default: return fail(cudaErrorInvalidValue, "attribute not emulated");
    }
}
cudaError_t cudaDriverGetVersion(int* v) {
    *v = 0;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
    *v = 0;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
    *s = new cuda_emu_stream;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = new cuda_emu_event;
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    e->t = std::chrono::steady_clock::now();
    e->recorded = true;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a->recorded || !b->recorded) return fail(cudaErrorInvalidValue, "cudaEventElapsedTime: event not recorded");
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
    EMU_LOCK;
    return device_alloc(p, bytes);
}
cudaError_t cudaFree(void* p) {
    EMU_LOCK;
    return device_free(p);
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
cudaError_t cudaMallocHost(void** p, size_t bytes) {
    EMU_LOCK;
    *p = std::malloc(std::max<size_t>(bytes, 1));
    mem().pinned[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
    EMU_LOCK;
    mem().pinned.erase((uintptr_t)p);
    std::free(p);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
    EMU_LOCK;
    *total_b = kDeviceBytes;
    *free_b = kDeviceBytes - mem().in_use;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int) {
    static cuda_emu_pool p;
    *pool = &p;
    return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t, cudaMemPoolAttr a, void* v) {
    EMU_LOCK;
    if (a == cudaMemPoolAttrReservedMemCurrent) *(uint64_t*)v = mem().in_use;  // the pool caches nothing
    return cudaSuccess;
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return cudaSuccess; }
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
    EMU_LOCK;
    std::memset(a, 0, sizeof *a);
    a->type = in(mem().device, p, 1)   ? cudaMemoryTypeDevice
              : in(mem().pinned, p, 1) ? cudaMemoryTypeHost
                                       : cudaMemoryTypeUnregistered;
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    EMU_LOCK;
    if (bytes == 0) return cudaSuccess;
    const bool dst_dev = in(mem().device, dst, bytes), src_dev = in(mem().device, src, bytes);
    if ((!dst_dev && in(mem().device, dst, 1)) || (!src_dev && in(mem().device, src, 1)))
        return fail(cudaErrorInvalidValue, "cudaMemcpyAsync: a device range runs past the end of its allocation");
    // A stated direction must match the pointers (a device range must lie in one allocation).
    const bool ok = kind == cudaMemcpyDefault ||
                    (kind == cudaMemcpyHostToDevice && dst_dev && !src_dev) ||
                    (kind == cudaMemcpyDeviceToHost && !dst_dev && src_dev) ||
                    (kind == cudaMemcpyDeviceToDevice && dst_dev && src_dev) || kind == cudaMemcpyHostToHost;
    if (!ok) return fail(cudaErrorInvalidValue, "cudaMemcpyAsync: the pointers do not match the copy kind");
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
    EMU_LOCK;
    if (bytes == 0) return cudaSuccess;
    if (!in(mem().device, p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemsetAsync: not a device range");
    std::memset(p, value, bytes);
    return cudaSuccess;
}
