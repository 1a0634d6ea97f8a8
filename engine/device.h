// Memory on either device. CPU memory is 64-byte aligned; CUDA memory comes from the stream-ordered
// pool in kernels/cuda/runtime.cu. Every call on a CUDA pointer throws when the build or the machine
// has no GPU.
#pragma once
#include <algorithm>
#include <cstddef>
#include <string>

#include "engine/dtype.h"

namespace ams {

// NAME=1 (or true, yes, on) in the environment: the AMS_* switches (AMS_BF16, AMS_CUDA_SYNC, ...);
// 0, false, no, off or unset is off, and any other value is off with a note on stderr.
bool env_flag(const char* name);

void* device_alloc(Device d, size_t bytes);
void device_free(Device d, void* p) noexcept;
void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void device_memset0(Device d, void* p, size_t bytes);

// Engine memory accounting per device: bytes held by live tensors, their high-water mark since
// start or the last reset, and how much more the engine could allocate now (free device memory
// plus what the engine's own cache holds; on the host the kernel's MemAvailable, or less inside a
// container with a memory limit; within_limit: at most what set_memory_limit leaves).
size_t memory_in_use(Device d);
size_t memory_peak(Device d);
void reset_memory_peak(Device d);
size_t memory_available(Device d, bool within_limit = true);

// "16.2 GiB", "94 MiB" below a GiB, "12 KiB" below a MiB: memory sizes in messages.
std::string size_text(double bytes);
// "allocating 4 MiB with 7 MiB already held by the engine": the middle of an out-of-memory message,
// the same on every device.
std::string allocating_text(size_t bytes, size_t held);

// A hard cap on the engine's memory on d (bytes, 0 = none; --max-memory sets it on the GPU): an
// allocation that would take memory_in_use(d) past it fails as out of memory, memory_available(d)
// counts only the room under it, and the host cache / the GPU pool keep no more than it. An 80 GB
// GPU then behaves as a 24 GB one for everything the engine allocates (not the CUDA context, nor
// cuBLAS's and cuDNN's own handles).
void set_memory_limit(Device d, size_t bytes);
size_t memory_limit(Device d);
// `room` (what could be allocated) bounded by what a limit leaves when `held` is in use (0: none).
inline size_t room_under_limit(size_t room, size_t held, size_t limit) {
    return limit == 0 ? room : std::min(room, limit > held ? limit - held : 0);
}

// Sets a limit for a scope and puts the previous one back. Probes that measure what a step or a
// tile needs run with none: they must see the need in full, to report or plan around it.
class ScopedMemoryLimit {
public:
    ScopedMemoryLimit(Device d, size_t bytes) : d_(d), prev_(memory_limit(d)) { set_memory_limit(d, bytes); }
    ~ScopedMemoryLimit() { set_memory_limit(d_, prev_); }
    ScopedMemoryLimit(const ScopedMemoryLimit&) = delete;
    ScopedMemoryLimit& operator=(const ScopedMemoryLimit&) = delete;

private:
    Device d_;
    size_t prev_;
};

// The smallest memory limit on this process's cgroup and its parents less what each uses, file
// cache it can drop not counted as used (as `docker stats`): cgroup v2 (memory.max), else v1
// (memory/memory.limit_in_bytes); SIZE_MAX without a limit. root: the cgroup mount, self: the
// process's cgroup list (tests give others).
size_t cgroup_memory_room(const std::string& root = "/sys/fs/cgroup", const std::string& self = "/proc/self/cgroup");

// "AMD EPYC 7B13, 2 threads" / "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB), driver 13.0, runtime 13.0"
std::string device_description(Device d);

bool cuda_available();        // built with CUDA and a usable GPU is present
bool cuda_built();            // built with CUDA at all
Device parse_device(const std::string& name);  // "cpu", "cuda", "auto" (GPU when there is one)

}  // namespace ams
