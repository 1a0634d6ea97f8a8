// amsnet bench: end-to-end throughput of the denoiser (forward at a given size, a training step)
// on the CPU or the GPU. Per-kernel GPU figures come with the CUDA benchmark suite.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "models/amsnet.h"
#include "models/restormer.h"
#include "train/trainer.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/common.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace ams::cli {

namespace {

void sync(Device d) {
#ifdef AMS_HAVE_CUDA
    if (d == Device::CUDA) cuda::synchronize();
#else
    (void)d;
#endif
}

// Median seconds of `repeat` runs after `warmup` runs.
template <class F>
double time_median(Device dev, int warmup, int repeat, F&& f) {
    for (int i = 0; i < warmup; ++i) f();
    sync(dev);
    std::vector<double> t;
    for (int i = 0; i < repeat; ++i) {
        Stopwatch sw;
        f();
        sync(dev);
        t.push_back(sw.seconds());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    Args a("bench", "[--what forward|train-step] [options]",
           "Times a Restormer (default: the SPEC configuration; random weights): a forward pass on a\n"
           "SIZE x SIZE image (no autograd), or an AMSNet-B training step (crop, PD 5, batch).");
    a.option("what", "W", "forward or train-step", "forward");
    a.option("size", "N", "image side for forward", "256");
    a.option("batch", "B", "batch for train-step", "2");
    a.option("crop", "N", "crop for train-step", "160");
    a.option("pd", "S", "PD stride for train-step", "5");
    a.option("warmup", "N", "untimed runs first", "1");
    a.option("repeat", "N", "timed runs (the median is reported)", "3");
    a.option("preset", "P", "model: restormer (SPEC), small or tiny", "restormer");
    a.option("device", "D", "auto, cpu or cuda", "auto");
    if (!a.parse(argc, argv, 2)) return 0;
    Device dev = parse_device(a.get("device"));
    int warmup = (int)a.integer("warmup", 0), repeat = (int)a.integer("repeat", 1);
    std::string what = a.get("what");
    Restormer net(preset_config(a.get("preset")), dev);
    net.init(1);
    if (what == "forward") {
        int n = (int)a.integer("size", 8);
        Tensor x = Tensor::full({1, 3, n, n}, 0.5, DType::F32, dev);
        double t = time_median(dev, warmup, repeat, [&] {
            autograd::NoGradGuard ng;
            net.forward_any_size(x);
        });
        std::printf("restormer forward %dx%d on %s: %.3f s (median of %d)\n", n, n, device_name(dev), t, repeat);
    } else if (what == "train-step") {
        int b = (int)a.integer("batch", 1), crop = (int)a.integer("crop", 8), pd = (int)a.integer("pd", 1);
        Tensor x = Tensor::full({b, 3, crop, crop}, 0.5, DType::F32, dev);
        uint32_t step = 0;
        double t = time_median(dev, warmup, repeat, [&] {
            net.params().zero_grad();
            amsnet_train_loss(net, x, pd, 42, step++).backward();
        });
        std::printf("amsnet-B training step (batch %d, crop %d, pd %d) on %s: %.3f s, %.2f images/s\n", b, crop, pd,
                    device_name(dev), t, b / t);
    } else {
        AMS_FAIL("--what must be forward or train-step, got '", what, "'");
    }
    return 0;
}

}  // namespace ams::cli
