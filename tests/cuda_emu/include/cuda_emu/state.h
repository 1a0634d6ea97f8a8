// The emulator's shared state (not part of the emulated API): the sticky launch error and the
// device allocations.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>

#include "cuda_runtime.h"

namespace cuda_emu {

std::recursive_mutex& big_lock();  // one emulated device: calls from host threads take turns
void set_error(cudaError_t e, const std::string& what);  // what cudaGetLastError returns next

// Whether [p, p + bytes) lies inside one live device allocation (cudaMalloc / cudaMallocAsync).
bool is_device_range(const void* p, size_t bytes);

}  // namespace cuda_emu
