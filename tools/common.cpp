#include "tools/common.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "engine/device.h"
#include "engine/image_io.h"
#include "engine/precision.h"
#include "tools/args.h"

namespace fs = std::filesystem;

namespace ams::cli {

bool is_directory(const std::string& path) {
    std::error_code ec;
    return fs::is_directory(path, ec);
}

void make_directory(const std::string& path) {
    std::error_code ec;
    AMS_CHECK(!fs::exists(path, ec) || fs::is_directory(path, ec), "'", path, "' is a file, not a folder");
    fs::create_directories(path, ec);
    AMS_CHECK(!ec && fs::is_directory(path), "cannot create folder '", path, "': ", ec.message());
}

void check_writable_folder(const std::string& path) {
    const fs::path probe = fs::path(path.empty() ? "." : path) / (".amsnet-write-test-" + std::to_string(getpid()));
    errno = 0;
    std::ofstream f(probe);
    const bool ok = (bool)f;
    const int err = errno;
    f.close();
    std::error_code ec;
    fs::remove(probe, ec);
    AMS_CHECK(ok, "cannot write in folder '", path.empty() ? "." : path, "': ", err ? std::strerror(err) : "unknown error");
}

int parse_recompute(const std::string& value) {
    if (value == "auto") return -1;
    if (value == "off") return 0;
    if (value == "on") return 1;
    AMS_FAIL("--recompute must be auto, on or off, got '", value, "'");
}

void add_precision_option(Args& a) {
    a.option("precision", "P",
             "fp32, tf32 or bf16: math of the matrix products and convolutions (tf32: TF32 tensor cores; bf16: "
             "bfloat16 operands in the 1x1 convolutions and attention, TF32 in the dense convolutions; float32 "
             "accumulation; in training the activations kept for backward are stored in bfloat16). On the CPU the "
             "operands are rounded the same way, to measure the effect on quality (slower, not faster). Default: "
             "fp32, or AMS_TF32=1 / AMS_BF16=1 from the environment");
}

void apply_precision(const Args& a, Device dev) {
    if (a.given("precision")) set_precision(parse_precision(a.get("precision"), "--precision"));
    const Precision p = precision();
    if (p == Precision::FP32) return;
    std::fprintf(stderr, "amsnet: precision %s%s\n", precision_name(p),
                 dev == Device::CPU ? " (emulated on the CPU: operands rounded as on a GPU; slower than fp32)" : "");
}

void apply_memory_limit(double max_memory, Device dev) {
    if (max_memory > 0 && dev == Device::CUDA) set_memory_limit(dev, (size_t)max_memory);
}

}  // namespace ams::cli
