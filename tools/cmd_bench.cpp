// amsnet bench: end-to-end throughput and peak memory of the denoiser on the CPU or the GPU: a
// Restormer forward, an AMSNet-B training step, AMSNet inference (with R^3, tiled when it does not
// fit), the whole suite of the performance issue, or every op on its own (tools/bench_kernels.cpp).
// Median of timed runs after warm-up; a table, or --json.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/json.h"
#include "engine/precision.h"
#include "models/amsnet.h"
#include "models/restormer.h"
#include "train/step_memory.h"
#include "train/trainer.h"
#include "tools/args.h"
#include "tools/bench_kernels.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/denoise_options.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace ams::cli {

namespace {

struct Result {
    std::string key;   // stable id shared with tools/bench_reference.py (train_b2, infer_256, ...)
    std::string ref_key;  // the reference's row for the same work (key, less a variant suffix)
    std::string name;
    double seconds = 0, items = 1;  // median seconds per run; images (or steps) per run
    std::string unit;               // "images/s", "steps/s"
    size_t peak = 0;                // bytes, engine high-water mark during the timed runs
    std::string error;              // why it did not run (a training step that does not fit)
    bool recompute = false;         // training steps: recomputation on
};

// Median seconds of `repeat` runs after `warmup` runs (timed as median_ms times), and the peak
// memory of the timed runs.
Result measure(Device dev, int warmup, int repeat, const std::function<void()>& f) {
    for (int i = 0; i < warmup; ++i) f();
    reset_memory_peak(dev);
    Result r;
    r.seconds = median_ms(dev, 0, repeat, f) * 1e-3;
    r.peak = memory_peak(dev);
    return r;
}

// "256" or "3840x2160" (width x height).
std::pair<int, int> parse_size(const std::string& s) {
    int w = 0, h = 0;
    char x = 0, extra = 0;
    int n = std::sscanf(s.c_str(), "%d%c%d%c", &w, &x, &h, &extra);
    if (n == 1) h = w;
    AMS_CHECK((n == 1 || (n == 3 && (x == 'x' || x == 'X'))) && w >= 8 && h >= 8,
              "--size: expected N or WxH (at least 8), got '", s, "'");
    return {w, h};
}

// A figure in at most 9 characters with 3 significant digits (1.23e-05 on a CPU, 41.2 on a GPU).
std::string number_text(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return b;
}

// `--what kernels`: the per-op table (or JSON) with bandwidth against the measured copy bandwidth.
int bench_kernel_table(const RestormerConfig& cfg, Device dev, int warmup, int repeat, const std::string& device,
                       bool json_out) {
    const double copy = measure_copy_bandwidth(dev);
    json::Value rows = json::Value::array();
    if (!json_out) {
        std::printf("copy bandwidth (measured, read + write): %.1f GB/s\n", copy);
        if (dev == Device::CPU)
            std::printf("CPU: medians of wall-clock times, no cache flush (inputs that fit in cache can exceed the "
                        "copy bandwidth); the fused GDFN op is the GPU's: CPU training runs its parts\n");
        std::printf("%-24s %-28s %-9s %10s %10s %7s %9s\n", "op", "input", "pass", "ms", "GB/s", "% copy", "TFLOP/s");
    }
    bench_kernels(cfg, dev, warmup, repeat, [&](const KernelResult& r) {
        const double gbs = r.ms > 0 ? r.bytes / (r.ms * 1e-3) / 1e9 : 0;
        const double tflops = r.ms > 0 ? r.flops / (r.ms * 1e-3) / 1e12 : 0;
        if (!json_out) {
            std::printf("%-24s %-28s %-9s %10.4f %10.1f %6.1f%% %9s\n", r.op.c_str(), r.shape.c_str(), r.pass.c_str(),
                        r.ms, gbs, 100 * gbs / copy, r.flops > 0 ? number_text(tflops).c_str() : "-");
            std::fflush(stdout);
        }
        json::Value e = json::Value::object();
        e["op"] = r.op;
        e["input"] = r.shape;
        e["pass"] = r.pass;
        e["ms"] = r.ms;
        e["bytes"] = r.bytes;
        e["flops"] = r.flops;
        e["gb_per_s"] = gbs;
        e["fraction_of_copy_bandwidth"] = gbs / copy;
        e["tflop_per_s"] = tflops;
        rows.push_back(e);
    });
    if (json_out) {
        json::Value out = json::Value::object();
        out["device"] = device;
        out["backend"] = device_name(dev);
        out["timing"] = dev == Device::CUDA ? "median of CUDA-event times, L2 flushed before each run"
                                            : "median of wall-clock times";
        out["model"] = cfg.summary();
        out["copy_bandwidth_gb_per_s"] = copy;
        out["precision"] = precision_name(precision());
        out["kernels"] = rows;
        out["warmup"] = warmup;
        out["repeat"] = repeat;
        std::printf("%s\n", json::dump(out).c_str());
    }
    return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    Args a("bench", "[--what forward|train-step|infer|suite|kernels] [options]",
           "Times the denoiser (default: SPEC's Restormer configuration, random weights) and reports the\n"
           "engine's peak memory: a Restormer forward on a SIZE image (no autograd); an AMSNet-B training\n"
           "step (crop, PD 5 unless --pd, batch); AMSNet inference of a SIZE image with the denoise options\n"
           "(PD 2, 2 branches unless given, --r3, tiled when it does not fit --max-memory); or `suite`:\n"
           "training steps at crop 160, PD 5, batch 2 and 8 (batch 8 with and without --recompute),\n"
           "and inference of 256x256 (also with R^3 x8),\n"
           "1024x1024 and 3840x2160; or `kernels`: every op forward and backward at the model's training and\n"
           "inference shapes, with bytes, FLOPs, GB/s against the device's measured copy bandwidth and\n"
           "TFLOP/s (GPU: CUDA events, L2 flushed before each run). A training step that would not fit the\n"
           "free memory (or --max-memory) is not run: the suite reports why and goes on.");
    a.option("what", "W", "forward, train-step, infer, suite or kernels", "forward");
    a.option("size", "N|WxH", "image size for forward and infer", "256");
    a.option("batch", "B", "batch for train-step", "2");
    a.option("crop", "N", "crop for train-step", "160");
    a.option("warmup", "N", "untimed runs first", "1");
    a.option("repeat", "N", "timed runs (the median is reported)", "3");
    a.option("preset", "P", "model: restormer (SPEC), small or tiny", "restormer");
    a.option("device", "D", "auto, cpu or cuda", "auto");
    add_precision_option(a);
    a.option("recompute", "R", "training steps: auto, on or off (amsnet train --help; auto: only when a step would "
             "not fit otherwise)", "auto");
    a.flag("json", "print the results as JSON on stdout");
    add_denoise_options(a);
    if (!a.parse(argc, argv, 2)) return 0;
    Device dev = parse_device(a.get("device"));
    apply_precision(a, dev);
    int warmup = (int)a.integer("warmup", 0), repeat = (int)a.integer("repeat", 1);
    std::string what = a.get("what");
    AMS_CHECK(what == "forward" || what == "train-step" || what == "infer" || what == "suite" || what == "kernels",
              "--what must be forward, train-step, infer, suite or kernels, got '", what, "'");
    // An option the measurement does not use is an error, not silently ignored. The inference
    // options serve infer and suite, but --pd is also the training step's and --max-memory any's.
    std::vector<const char*> inference;
    for (const char* o : kDenoiseOptions)
        if (std::string(o) != "pd" && std::string(o) != "max-memory") inference.push_back(o);
    const std::vector<std::pair<std::vector<const char*>, std::vector<const char*>>> applies = {
        {{"size"}, {"forward", "infer"}},
        {{"batch", "crop"}, {"train-step"}},
        {{"recompute"}, {"train-step", "suite"}},
        {{"pd"}, {"train-step", "infer", "suite"}},
        {inference, {"infer", "suite"}}};
    for (const auto& [options, whats] : applies)
        for (const char* o : options) {
            if (!a.given(o) || std::find(whats.begin(), whats.end(), what) != whats.end()) continue;
            std::string with;
            for (const char* w : whats) with += std::string(with.empty() ? "" : " or ") + w;
            AMS_FAIL("--", o, " applies to --what ", with, "; it does nothing with --what ", what);
        }
    // Every option is checked before the model is built.
    DenoiseOptions opts = read_denoise_options(a, {});
    apply_memory_limit(opts.max_memory, dev);
    const int train_pd = a.given("pd") ? (int)a.integer("pd", 1, kMaxPd) : 5;
    const int batch = (int)a.integer("batch", 1), crop = (int)a.integer("crop", 8);
    const auto [size_w, size_h] = parse_size(a.get("size"));
    const int recompute = parse_recompute(a.get("recompute"));
    Restormer net(preset_config(a.get("preset")), dev);
    net.init(1);
    const bool json_out = a.on("json");
    std::string device = device_description(dev);
#ifdef AMS_HAVE_CUDA
    if (dev == Device::CUDA) device += ", " + cuda::clocks();
#endif
    const char* recompute_text = recompute < 0 ? "auto" : recompute ? "on" : "off";
    if (!json_out)
        std::printf("amsnet bench: %s on %s (training: recompute %s)\n", net.config().summary().c_str(), device.c_str(),
                    recompute_text);
    if (what == "kernels") return bench_kernel_table(net.config(), dev, warmup, repeat, device, json_out);

    std::vector<Result> results;
    auto report = [&](Result r) {
        if (!json_out) {
            if (!r.error.empty())
                std::printf("%-58s not run: %s\n", r.name.c_str(), r.error.c_str());
            else
                std::printf("%-58s %9.4f s  %9.2f %-9s peak %8.1f MiB\n", r.name.c_str(), r.seconds,
                            r.items / r.seconds, r.unit.c_str(), (double)r.peak / (1 << 20));
            std::fflush(stdout);
        }
        results.push_back(std::move(r));
    };
    // In the suite, a row that cannot run (a training step that does not fit; out of memory under
    // --max-memory on the GPU) is reported with its error and the suite goes on; run alone, the
    // error is the command's.
    auto guarded = [&](Result& r, const std::function<void()>& run) {
        try {
            run();
            return true;
        } catch (const Error& e) {
            if (what != "suite") throw;
            autograd::clear_tape();  // a failed step's nodes and saved tensors
            net.params().zero_grad();
            r.error = e.message();
            report(r);
            return false;
        }
    };
    auto forward = [&](int w, int h) {
        Tensor x = Tensor::full({1, 3, h, w}, 0.5, DType::F32, dev);
        Result r = measure(dev, warmup, repeat, [&] {
            autograd::NoGradGuard ng;
            net.forward_any_size(x);
        });
        r.key = str("forward_", w, "x", h);
        r.name = str("restormer forward ", w, "x", h);
        r.unit = "images/s";
        report(r);
    };
    // A training step with recomputation `rc` (-1: chosen as training chooses it, by memory); the
    // variant row of the suite (the other setting) gets its own key. Returns the setting used, or -1
    // when the step did not fit.
    auto train_step = [&](int batch, int crop, int pd, int rc, bool variant) {
        Result r;
        r.ref_key = str("train_b", batch, crop == 160 && pd == 5 ? "" : str("_c", crop, "_pd", pd));
        r.key = r.ref_key + (variant ? (rc == 1 ? "_recompute_on" : "_recompute_off") : "");
        r.items = batch;
        r.unit = "images/s";
        // A whole step as training runs it (and as a PyTorch step is timed): loss, backward, AdamW.
        AdamW adam(net.params(), AdamWConfig{});
        auto name = [&](const char* setting) {
            return str("amsnet-B training step (batch ", batch, ", crop ", crop, ", pd ", pd, setting, ")");
        };
        r.name = name(rc == 1 ? ", recompute on" : rc == 0 ? ", recompute off" : "");
        bool on = false;
        // A step that cannot fit is reported, not run (train/step_memory.h); the suite goes on.
        if (!guarded(r, [&] {
                on = fit_step_memory(net, rc, batch, crop, StepMemoryRoom::on(dev, opts.max_memory, 0),
                                     [&](const Tensor& images) { return amsnet_train_loss(net, images, pd, 42, 0); })
                         .recompute;
            }))
            return -1;
        r.name = name(on ? ", recompute on" : "");
        Result m;
        const bool ran = guarded(r, [&] {
            Tensor x = Tensor::full({batch, 3, crop, crop}, 0.5, DType::F32, dev);
            uint32_t step = 0;
            m = measure(dev, warmup, repeat, [&] {
                net.params().zero_grad();
                amsnet_train_loss(net, x, pd, 42, step++).backward();
                adam.step();
            });
        });
        if (!ran) return -1;
        r.seconds = m.seconds;
        r.peak = m.peak;
        r.recompute = on;
        report(r);
        return on ? 1 : 0;
    };
    auto infer = [&](int w, int h, const DenoiseOptions& o) {
        // A smooth ramp with mild texture, not a constant: nothing in the path may shortcut it.
        std::vector<float> v((size_t)3 * w * h);
        for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f + 0.5f * (float)((i * 2654435761u) % 1000) / 1000.f;
        Result r;
        r.key = str("infer_", w == h ? str(w) : str(w, "x", h), o.r3 > 0 ? "_r3" : "");
        r.name = str("amsnet inference ", w, "x", h, " ", o.summary());
        r.unit = "images/s";
        const bool ran = guarded(r, [&] {
            Tensor x = Tensor::from_vector(v, {1, 3, h, w}).to(dev);
            const Result m = measure(dev, warmup, repeat, [&] { denoise_image(net, x, o); });
            TileGrid g = plan_denoise(net, x, o);
            const size_t tiles = g.rows.size() * g.cols.size();
            if (tiles > 1) r.name += str(", ", tiles, " tiles");
            r.seconds = m.seconds;
            r.peak = m.peak;
        });
        if (ran) report(r);
    };

    if (what == "forward") {
        forward(size_w, size_h);
    } else if (what == "train-step") {
        train_step(batch, crop, train_pd, recompute, false);
    } else if (what == "infer") {
        infer(size_w, size_h, opts);
    } else {
        train_step(2, 160, 5, recompute, false);
        // Batch 8 with both settings of recomputation: the time it costs and the memory it saves.
        const int used = train_step(8, 160, 5, recompute, false);
        if (used >= 0) train_step(8, 160, 5, 1 - used, true);
        DenoiseOptions o = opts;
        infer(256, 256, o);
        o.r3 = 8;
        infer(256, 256, o);
        o.r3 = opts.r3;
        infer(1024, 1024, o);
        infer(3840, 2160, o);
    }

    if (json_out) {
        json::Value out = json::Value::object();
        out["device"] = device;
        out["backend"] = device_name(dev);
        out["timing"] = "median of wall-clock times over --repeat runs, random weights";
        out["model"] = net.config().summary();
        json::Value arr = json::Value::array();
        for (const Result& r : results) {
            json::Value e = json::Value::object();
            e["key"] = r.key;
            e["ref_key"] = r.ref_key.empty() ? r.key : r.ref_key;
            e["name"] = r.name;
            if (!r.error.empty()) {
                e["error"] = r.error;
                arr.push_back(e);
                continue;
            }
            e["seconds"] = r.seconds;
            if (r.key.rfind("train", 0) == 0) e["recompute"] = r.recompute;
            e["throughput"] = r.items / r.seconds;
            e["unit"] = r.unit;
            e["peak_memory_bytes"] = (double)r.peak;
            arr.push_back(e);
        }
        out["results"] = arr;
        out["recompute"] = recompute_text;  // what was asked; each training row says what it used
        out["precision"] = precision_name(precision());
        out["warmup"] = warmup;
        out["repeat"] = repeat;
        std::printf("%s\n", json::dump(out).c_str());
    }
    return 0;
}

}  // namespace ams::cli
