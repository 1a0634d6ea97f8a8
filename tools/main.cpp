// amsnet: one binary for every stage of AMSNet self-supervised denoising.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "ams_version.h"  // generated at build time (tools/version.cmake)
#include "engine/check.h"
#include "engine/device.h"
#include "tools/commands.h"

namespace {

const char* kUsage =
    "usage: amsnet <command> [options]    (amsnet <command> --help for its options)\n"
    "\n"
    "AMSNet (ECCV 2024) self-supervised real-image denoising on a hand-written CUDA/CPU engine.\n"
    "\n"
    "commands:\n"
    "  denoise    denoise an image or a folder (AMSNet k-branch scheme, optional R^3, or plain)\n"
    "  train      train AMSNet-B from noisy images only (masked L1 on pixel-downsampled crops)\n"
    "  finetune   fine-tune to AMSNet-P with the smoothness prior\n"
    "  eval       PSNR / SSIM of denoised images against clean references (or denoise and score)\n"
    "  bench      kernel and end-to-end throughput\n"
    "  info       configuration, parameter count and training metadata of a weights file\n"
    "\n"
    "amsnet --version prints the version, the source revision and whether the CUDA backend is built.\n";

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    std::string cmd = argv[1];
    if (cmd == "--version" || cmd == "version") {
        std::printf("amsnet %s (%s), CUDA backend %s\n", AMS_VERSION, AMS_GIT_REVISION,
                    ams::cuda_built() ? "built in" : "not built");
        return 0;
    }
    try {
        using namespace ams::cli;
        if (cmd == "train") return cmd_train(argc, argv);
        if (cmd == "finetune") return cmd_finetune(argc, argv);
        if (cmd == "denoise") return cmd_denoise(argc, argv);
        if (cmd == "eval") return cmd_eval(argc, argv);
        if (cmd == "bench") return cmd_bench(argc, argv);
        if (cmd == "info") return cmd_info(argc, argv);
        std::fprintf(stderr, "amsnet: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
        return 2;
    } catch (const ams::Error& e) {
        // AMS_DEBUG=1 adds the failed check's expression and source location.
        std::fprintf(stderr, "amsnet %s: error: %s\n", cmd.c_str(),
                     ams::env_flag("AMS_DEBUG") ? e.what() : e.message().c_str());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "amsnet %s: error: out of memory\n", cmd.c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "amsnet %s: error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
}
