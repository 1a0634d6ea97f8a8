// CUDA runtime services for the engine: a stream-ordered memory pool on one stream per process,
// error checks that throw, memory statistics. Host-only header (no CUDA types leak out).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace ams {
class Tensor;
}

namespace ams::cuda {

bool available();  // a device is present and usable (cached)
std::string unavailable_reason();  // why not ("" when available), e.g. the CUDA error
std::string device_description();  // "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB), driver 13.0, runtime 13.0"

void* alloc(size_t bytes);  // from the stream-ordered pool (cudaMallocAsync on the engine stream)
void* try_alloc(size_t bytes);  // the same, but nullptr where alloc would throw out of memory
void trim_pool();  // waits for the stream, then returns the pool's unused blocks to the driver
void free(void* p) noexcept;
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes);
void memset0(void* p, size_t bytes);
void fill(float* p, int64_t n, float value);
void strided_copy(const Tensor& dst, const Tensor& src);  // same dtype (any), up to 6 dims
void synchronize();

size_t memory_in_use();  // bytes currently allocated by the engine on the GPU
size_t memory_peak();    // high-water mark since start or the last reset
void reset_peak();
size_t memory_available(bool within_limit = true);  // free device memory plus what the pool holds unused
// A cap on memory_in_use (0 = none): an allocation past it fails as out of memory.
void set_memory_limit(size_t bytes);
size_t memory_limit();

// Benchmarking (kernels/cuda/bench.cu): milliseconds of the work f() queues on the engine stream
// (CUDA events); overwrite twice the L2 size so the next run starts cold; device-to-device copy
// bandwidth in GB/s (bytes read + written); peak clocks as text.
double time_ms(const std::function<void()>& f);
void flush_l2();
double copy_bandwidth_gbs();
std::string clocks();

// AMS_CUDA_SYNC=1 in the environment: synchronise after every launch to localise faults.
bool debug_sync();
void check_launch(const char* what, const char* file, int line);  // throws on a launch error

}  // namespace ams::cuda

#define AMS_CUDA_LAUNCH_CHECK(what) ::ams::cuda::check_launch(what, __FILE__, __LINE__)
