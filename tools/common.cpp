#include "tools/common.h"

#include <algorithm>
#include <filesystem>

#include "engine/image_io.h"
#include "engine/npy.h"

namespace fs = std::filesystem;

namespace ams::cli {

bool is_directory(const std::string& path) {
    std::error_code ec;
    return fs::is_directory(path, ec);
}

void make_directory(const std::string& path) {
    std::error_code ec;
    fs::create_directories(path, ec);
    AMS_CHECK(!ec && fs::is_directory(path), "cannot create folder '", path, "': ", ec.message());
}

void save_result(const std::string& path, const Tensor& img, int bits) {
    std::string ext = fs::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".npy") {
        // (1, C, H, W) -> (H, W, C), the layout image tools expect.
        Tensor h = img.to(Device::CPU).to(DType::F32).contiguous();
        int64_t C = h.dim(-3), H = h.dim(-2), W = h.dim(-1);
        Tensor hwc = Tensor::empty({H, W, C});
        const float* s = h.data<float>();
        float* d = hwc.data<float>();
        for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < H * W; ++i) d[i * C + c] = s[c * H * W + i];
        save_npy(path, hwc);
        return;
    }
    save_image(path, img, bits);
}

int parse_recompute(const std::string& value) {
    if (value == "auto") return -1;
    if (value == "off") return 0;
    if (value == "on") return 1;
    AMS_FAIL("--recompute must be auto, on or off, got '", value, "'");
}

}  // namespace ams::cli
