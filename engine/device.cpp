#include "engine/device.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/check.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace ams {

bool cuda_built() {
#ifdef AMS_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

bool cuda_available() {
#ifdef AMS_HAVE_CUDA
    return cuda::available();
#else
    return false;
#endif
}

Device parse_device(const std::string& name) {
    if (name == "cpu") return Device::CPU;
    if (name == "cuda" || name == "gpu") {
        AMS_CHECK(cuda_built(), "--device cuda: this build of amsnet has no CUDA support");
        AMS_CHECK(cuda_available(), "--device cuda: no usable CUDA GPU found on this machine");
        return Device::CUDA;
    }
    if (name == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
    AMS_FAIL("--device: unknown device '", name, "' (expected auto, cpu or cuda)");
}

void* device_alloc(Device d, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (d == Device::CPU) {
        size_t rounded = (bytes + 63) / 64 * 64;
        void* p = std::aligned_alloc(64, rounded);
        if (!p) AMS_FAIL("out of host memory allocating ", bytes, " bytes");
        return p;
    }
#ifdef AMS_HAVE_CUDA
    return cuda::alloc(bytes);
#else
    AMS_FAIL("CUDA tensor requested but this build has no CUDA support");
#endif
}

void device_free(Device d, void* p) noexcept {
    if (!p) return;
    if (d == Device::CPU) {
        std::free(p);
        return;
    }
#ifdef AMS_HAVE_CUDA
    cuda::free(p);
#endif
}

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
    if (bytes == 0) return;
    if (dst_dev == Device::CPU && src_dev == Device::CPU) {
        std::memcpy(dst, src, bytes);
        return;
    }
#ifdef AMS_HAVE_CUDA
    cuda::copy(dst, dst_dev == Device::CUDA, src, src_dev == Device::CUDA, bytes);
#else
    AMS_FAIL("CUDA copy requested but this build has no CUDA support");
#endif
}

void device_memset0(Device d, void* p, size_t bytes) {
    if (bytes == 0) return;
    if (d == Device::CPU) {
        std::memset(p, 0, bytes);
        return;
    }
#ifdef AMS_HAVE_CUDA
    cuda::memset0(p, bytes);
#else
    AMS_FAIL("CUDA memset requested but this build has no CUDA support");
#endif
}

}  // namespace ams
