#include "engine/device.h"
#include "engine/precision.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unistd.h>
#include <new>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include "engine/check.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace ams {

bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    if (!v) return false;
    std::string s(v);
    for (char& c : s) c = (char)std::tolower((unsigned char)c);
    if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
    // Read before main or from a kernel's first call: a note, not an error, for a value that is
    // neither (AMS_BF16=bf16 must not run fp32 silently).
    if (!(s.empty() || s == "0" || s == "false" || s == "no" || s == "off"))
        std::fprintf(stderr, "amsnet: note: %s='%s' is neither 1 (on) nor 0 (off): taken as off\n", name, v);
    return false;
}

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

namespace {

size_t physical_memory() { return (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGE_SIZE); }

// Host memory cache: freed blocks are kept by rounded size and handed out again, so the same
// activation shapes in every layer and step do not pay page faults on fresh memory each time.
// Blocks above the cache limit go back to the system.
class HostCache {
public:
    static HostCache& get() {
        static HostCache* c = new HostCache;  // never destroyed: tensors may outlive static destruction
        return *c;
    }
    void* alloc(size_t bytes) {
        size_t rounded = round(bytes);
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (limit_ > 0 && in_use_ + rounded > limit_)
                AMS_FAIL("out of memory on the CPU: ", allocating_text(rounded, in_use_),
                         " would exceed its memory limit of ", size_text((double)limit_));
            auto it = free_.find(rounded);
            if (it != free_.end() && !it->second.empty()) {
                void* p = it->second.back();
                it->second.pop_back();
                cached_ -= rounded;
                sizes_[p] = rounded;
                account(rounded);
                return p;
            }
            // A miss: cached blocks of other sizes cannot serve it. Give them back before live
            // plus cached memory would outgrow the machine (large images change every size).
            if (cached_ > 0 && in_use_ + cached_ + rounded > total_limit()) release_locked();
        }
        void* p = std::aligned_alloc(64, rounded);
        if (!p) {
            trim();
            p = std::aligned_alloc(64, rounded);
        }
        if (!p) AMS_FAIL("out of host memory allocating ", bytes, " bytes");
        std::lock_guard<std::mutex> lock(mu_);
        sizes_[p] = rounded;
        account(rounded);
        return p;
    }
    void free(void* p) noexcept {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = sizes_.find(p);
        if (it == sizes_.end()) return;
        size_t rounded = it->second;
        sizes_.erase(it);
        in_use_ -= rounded;
        if (cached_ + rounded > kLimit) {
            std::free(p);
            return;
        }
        free_[rounded].push_back(p);
        cached_ += rounded;
    }
    void trim() noexcept {
        std::lock_guard<std::mutex> lock(mu_);
        release_locked();
    }

    size_t in_use() {
        std::lock_guard<std::mutex> lock(mu_);
        return in_use_;
    }
    size_t peak() {
        std::lock_guard<std::mutex> lock(mu_);
        return peak_;
    }
    void reset_peak() {
        std::lock_guard<std::mutex> lock(mu_);
        peak_ = in_use_;
    }
    size_t cached() {
        std::lock_guard<std::mutex> lock(mu_);
        return cached_;
    }
    // With a limit, live plus cached memory stays within it too: the process's footprint, not only
    // the live tensors, is what a user capping memory means.
    void set_limit(size_t bytes) {
        std::lock_guard<std::mutex> lock(mu_);
        limit_ = bytes;
        if (limit_ > 0 && in_use_ + cached_ > limit_) release_locked();
    }
    size_t limit() {
        std::lock_guard<std::mutex> lock(mu_);
        return limit_;
    }

private:
    void release_locked() noexcept {  // under mu_
        for (auto& [size, v] : free_)
            for (void* p : v) std::free(p);
        free_.clear();
        cached_ = 0;
    }
    void account(size_t rounded) {  // under mu_
        in_use_ += rounded;
        peak_ = std::max(peak_, in_use_);
    }
    // Up to half the machine's memory stays cached: a training step's activations are allocated
    // again every step, and fresh pages cost more than the arithmetic on small models.
    const size_t kLimit = physical_memory() / 2, kTotalLimit = physical_memory() / 4 * 3;
    size_t total_limit() const { return limit_ > 0 ? std::min(kTotalLimit, limit_) : kTotalLimit; }  // under mu_
    static size_t round(size_t b) { return b <= 4096 ? (b + 63) / 64 * 64 : (b + 4095) / 4096 * 4096; }
    std::mutex mu_;
    std::unordered_map<size_t, std::vector<void*>> free_;
    std::unordered_map<void*, size_t> sizes_;
    size_t cached_ = 0, in_use_ = 0, peak_ = 0, limit_ = 0;
};

// The first number in a file (SIZE_MAX when it says "max" or cannot be read).
size_t read_number(const std::string& path) {
    std::ifstream f(path);
    size_t v = 0;
    return f >> v ? v : SIZE_MAX;
}

// The value of `key` in a "key value" file such as memory.stat (0 when absent).
size_t read_stat(const std::string& path, const std::string& key) {
    std::ifstream f(path);
    std::string k;
    size_t v = 0;
    while (f >> k >> v)
        if (k == key) return v;
    return 0;
}

// MemAvailable from /proc/meminfo (the kernel's estimate of what can be allocated without
// swapping); the physical memory when it cannot be read; at most the container's room.
size_t host_available() {
    std::ifstream f("/proc/meminfo");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("MemAvailable:", 0) != 0) continue;
        std::istringstream in(line.substr(13));
        size_t kb = 0;
        if (in >> kb) return std::min(kb * 1024, cgroup_memory_room());
    }
    return std::min(physical_memory(), cgroup_memory_room());
}

}  // namespace

size_t cgroup_memory_room(const std::string& root, const std::string& self) {
    // This process's cgroup in each hierarchy, from /proc/self/cgroup: "0::/path" (v2) and
    // "N:...memory...:/path" (v1). Inside a cgroup namespace the path is "/" and root is the
    // container's own cgroup; without one, its own and every parent's limit apply.
    std::string v2 = "/", v1 = "/";
    {
        std::ifstream f(self);
        std::string line;
        while (std::getline(f, line)) {
            const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
            if (b == std::string::npos) continue;
            const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
            if (line.compare(0, a, "0") == 0 && controllers.empty()) v2 = path;
            std::istringstream c(controllers);
            for (std::string name; std::getline(c, name, ',');)
                if (name == "memory") v1 = path;
        }
    }
    struct Files {
        std::string dir, limit, usage, inactive;
    };
    size_t room = SIZE_MAX;
    for (const Files& f : {Files{root, "memory.max", "memory.current", "inactive_file"},
                           Files{root + "/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"}}) {
        // The cgroup and each parent up to the mount point; a missing directory is skipped (the
        // path may be the host's view of a namespaced mount).
        std::string path = f.dir == root ? v2 : v1;
        bool found = false;
        while (true) {
            const std::string dir = f.dir + (path == "/" ? "" : path);
            const size_t limit = read_number(dir + "/" + f.limit);
            const size_t usage = read_number(dir + "/" + f.usage);
            // No file, "max", or v1's "unlimited" (2^63 less a page): no limit here.
            if (limit != SIZE_MAX && limit < (SIZE_MAX >> 2) && usage != SIZE_MAX) {
                const size_t used = usage - std::min(usage, read_stat(dir + "/memory.stat", f.inactive));
                room = std::min(room, limit > used ? limit - used : 0);
                found = true;
            }
            if (path == "/" || path.empty()) break;
            const size_t cut = path.find_last_of('/');
            path = cut == 0 || cut == std::string::npos ? "/" : path.substr(0, cut);
        }
        if (found) break;  // v2 answered; v1 is only a fallback
    }
    return room;
}

std::string device_description(Device d) {
    if (d == Device::CUDA) {
#ifdef AMS_HAVE_CUDA
        return cuda::device_description();
#else
        return "CUDA (not built)";
#endif
    }
    std::ifstream f("/proc/cpuinfo");
    std::string line, model = "CPU";
    while (std::getline(f, line))
        if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
            model = line.substr(line.find(':') + 2);
            break;
        }
    // The precision policy is part of every figure's context (on the CPU an emulation: slower).
    return model + ", " + std::to_string(omp_get_max_threads()) + " threads, precision " + precision_name(precision()) +
           (precision() == Precision::FP32 ? "" : " (emulated)");
}

size_t memory_in_use(Device d) {
    if (d == Device::CPU) return HostCache::get().in_use();
#ifdef AMS_HAVE_CUDA
    return cuda::memory_in_use();
#else
    return 0;
#endif
}

size_t memory_peak(Device d) {
    if (d == Device::CPU) return HostCache::get().peak();
#ifdef AMS_HAVE_CUDA
    return cuda::memory_peak();
#else
    return 0;
#endif
}

void reset_memory_peak(Device d) {
    if (d == Device::CPU) return HostCache::get().reset_peak();
#ifdef AMS_HAVE_CUDA
    cuda::reset_peak();
#endif
}

size_t memory_available(Device d, bool within_limit) {
    if (d == Device::CPU) {
        HostCache& c = HostCache::get();
        const size_t room = host_available() + c.cached();
        return within_limit ? room_under_limit(room, c.in_use(), c.limit()) : room;
    }
#ifdef AMS_HAVE_CUDA
    return cuda::memory_available(within_limit);
#else
    return 0;
#endif
}

std::string size_text(double bytes) {
    char b[32];
    bytes = std::max(0.0, bytes);
    if (bytes >= (double)(1ull << 30)) std::snprintf(b, sizeof b, "%.1f GiB", bytes / (double)(1ull << 30));
    else if (bytes >= (double)(1ull << 20)) std::snprintf(b, sizeof b, "%.0f MiB", bytes / (double)(1ull << 20));
    else std::snprintf(b, sizeof b, "%.0f KiB", std::ceil(bytes / 1024));
    return b;
}

std::string allocating_text(size_t bytes, size_t held) {
    return "allocating " + size_text((double)bytes) + " with " + size_text((double)held) + " already held by the engine";
}

void set_memory_limit(Device d, size_t bytes) {
    if (d == Device::CPU) return HostCache::get().set_limit(bytes);
#ifdef AMS_HAVE_CUDA
    cuda::set_memory_limit(bytes);
#else
    AMS_FAIL("set_memory_limit: this build has no CUDA support");
#endif
}

size_t memory_limit(Device d) {
    if (d == Device::CPU) return HostCache::get().limit();
#ifdef AMS_HAVE_CUDA
    return cuda::memory_limit();
#else
    return 0;
#endif
}

void* device_alloc(Device d, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (d == Device::CPU) return HostCache::get().alloc(bytes);
#ifdef AMS_HAVE_CUDA
    return cuda::alloc(bytes);
#else
    AMS_FAIL("CUDA tensor requested but this build has no CUDA support");
#endif
}

void device_free(Device d, void* p) noexcept {
    if (!p) return;
    if (d == Device::CPU) {
        HostCache::get().free(p);
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
