#include "tools/bench_kernels.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/params.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "engine/timer.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace ams::cli {

namespace {

// Milliseconds of one run of f: CUDA events on the GPU (L2 flushed first), wall clock on the CPU.
double time_once(Device dev, const std::function<void()>& f) {
#ifdef AMS_HAVE_CUDA
    if (dev == Device::CUDA) {
        cuda::flush_l2();
        return cuda::time_ms(f);
    }
#endif
    (void)dev;
    Stopwatch sw;
    f();
    return sw.seconds() * 1e3;
}

Tensor rand_on(const Shape& s, Device dev, uint64_t seed) {
    std::vector<float> v((size_t)shape_numel(s));
    for (size_t i = 0; i < v.size(); ++i) v[i] = rng::draw_uniform(seed, rng::make_stream(rng::kTest, 1), i) - 0.5f;
    return Tensor::from_vector(v, s).to(dev);
}

double bytes_of(const std::vector<Tensor>& ts) {
    double b = 0;
    for (const Tensor& t : ts) b += (double)t.nbytes();
    return b;
}

struct Case {
    std::string op;
    std::vector<Tensor> inputs;                                  // leaves that get gradients
    std::function<Tensor(const std::vector<Tensor>&)> fn;         // the op
    double flops = 0;                                            // forward; backward counted as 2x
};

std::string shape_of(const Tensor& t) { return shape_str(t.shape()); }

}  // namespace

double median_ms(Device dev, int warmup, int repeat, const std::function<void()>& f,
                 const std::function<void()>& prepare) {
    for (int i = 0; i < warmup; ++i) {
        if (prepare) prepare();
        f();
    }
    std::vector<double> t;
    for (int i = 0; i < repeat; ++i) {
        if (prepare) prepare();
        t.push_back(time_once(dev, f));
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

double measure_copy_bandwidth(Device dev) {
#ifdef AMS_HAVE_CUDA
    if (dev == Device::CUDA) return cuda::copy_bandwidth_gbs();
#endif
    const size_t n = (size_t)256 << 20;
    std::vector<char> a(n, 1), b(n, 0);
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) {
        Stopwatch sw;
        std::memcpy(b.data(), a.data(), n);
        t.push_back(sw.seconds());
    }
    std::sort(t.begin(), t.end());
    return 2.0 * (double)n / t[t.size() / 2] / 1e9;
}

void bench_kernels(const RestormerConfig& cfg, Device dev, int warmup, int repeat,
                   const std::function<void(const KernelResult&)>& report) {
    // Each case forward alone, then backward alone: each run records a forward untimed and times its
    // backward (a difference of two medians went negative, reading 0 ms, on a busy machine).
    auto run_cases = [&](std::vector<Case>& cases, const char* setting) {
        for (Case& c : cases) {
            for (Tensor& t : c.inputs) t.requires_grad_(true);
            Tensor out;
            double fwd = median_ms(dev, warmup, repeat, [&] {
                autograd::NoGradGuard ng;
                out = c.fn(c.inputs);
            });
            const std::string shape = str(setting, " ", shape_of(c.inputs[0]));
            report({c.op, shape, "forward", fwd, bytes_of(c.inputs) + (double)out.nbytes(), c.flops});
            Tensor R_out = out.ndim() ? rand_on(out.shape(), dev, 99) : Tensor();
            Tensor seed;
            const double bwd = median_ms(dev, warmup, repeat, [&] { seed.backward(); }, [&] {
                Tensor y = c.fn(c.inputs);
                seed = R_out.defined() ? ops::dot(y, R_out) : y;  // seeds dy = R
            });
            // The backward reads dy and the saved inputs and writes every input's gradient.
            report({c.op, shape, "backward", bwd, (double)out.nbytes() + 2 * bytes_of(c.inputs), 2 * c.flops});
        }
    };
    struct Setting {
        const char* name;
        int64_t B, H, W;
        int level;  // 0 (full resolution) to 3 (the latent level: dim * 8 channels, 1/8 of the size)
    };
    // Training meets 50 PD sub-images of 32x32 (batch 2, crop 160, PD 5) at level 0 and 4x4 planes
    // with 8 times the channels at the latent level; inference, larger planes.
    for (Setting st : {Setting{"train", 50, 32, 32, 0}, Setting{"train latent", 50, 4, 4, 3},
                       Setting{"infer", 4, 128, 128, 0}}) {
        const int C = cfg.dim << st.level, heads = cfg.heads[st.level];
        const int hidden = (int)(C * cfg.ffn_expansion_factor);
        const int64_t B = st.B, H = st.H, W = st.W, N = H * W;
        uint64_t seed = 1;
        auto R = [&](const Shape& s) { return rand_on(s, dev, seed++); };
        Tensor mask = ops::random_mask({B, 1, H, W}, 0.5, 7, 8, dev);
        std::vector<Case> cases;
        cases.push_back({"conv1x1 (qkv)", {R({B, C, H, W}), R({3 * C, C, 1, 1})},
                         [](const auto& in) { return ops::conv2d(in[0], in[1], Tensor(), 0); },
                         2.0 * B * N * C * 3 * C});
        cases.push_back({"conv1x1 (ffn in)", {R({B, C, H, W}), R({2 * hidden, C, 1, 1})},
                         [](const auto& in) { return ops::conv2d(in[0], in[1], Tensor(), 0); },
                         2.0 * B * N * C * 2 * hidden});
        cases.push_back({"depthwise 3x3 (qkv)", {R({B, 3 * C, H, W}), R({3 * C, 1, 3, 3})},
                         [C](const auto& in) { return ops::conv2d(in[0], in[1], Tensor(), 1, 3 * C); },
                         2.0 * B * N * 3 * C * 9});
        cases.push_back({"conv3x3 (dense)", {R({B, C, H, W}), R({C, C, 3, 3})},
                         [](const auto& in) { return ops::conv2d(in[0], in[1], Tensor(), 1); },
                         2.0 * B * N * C * C * 9});
        Tensor temp = R({heads, 1, 1});
        cases.push_back({"attention (MDTA core)", {R({B, 3 * C, H, W})},
                         [temp, heads](const auto& in) { return ops::attention(in[0], temp, heads); },
                         // q k^T and attn v: 2 * 2 * (C/h)^2 * N per head
                         4.0 * B * N * C * C / heads});
        cases.push_back({"layer_norm (BiasFree)", {R({B, C, H, W})},
                         [w = R({C}), b = R({C})](const auto& in) { return ops::layer_norm(in[0], w, b, false); }});
        cases.push_back({"gelu_gate (GDFN)", {R({B, 2 * hidden, H, W})},
                         [](const auto& in) { return ops::gelu_gate(in[0]); }});
        cases.push_back({"dwconv_gate (GDFN fused)", {R({B, 2 * hidden, H, W}), R({2 * hidden, 1, 3, 3})},
                         [](const auto& in) { return ops::dwconv_gate(in[0], in[1], Tensor()); },
                         2.0 * B * N * 2 * hidden * 9});
        cases.push_back({"add", {R({B, C, H, W}), R({B, C, H, W})},
                         [](const auto& in) { return ops::add(in[0], in[1]); }});
        if (st.level > 0) {  // the AMSNet input and output ops only meet full-resolution images
            run_cases(cases, st.name);
            continue;
        }
        cases.push_back({"pixel_unshuffle 2", {R({B, C, H, W})},
                         [](const auto& in) { return ops::pixel_unshuffle(in[0], 2); }});
        cases.push_back({"mask_mul", {R({B, 3, H, W})},
                         [mask](const auto& in) { return ops::mask_mul(in[0], mask); }});
        cases.push_back({"masked_l1", {R({B, 3, H, W})},
                         [mask, t = R({B, 3, H, W})](const auto& in) { return ops::masked_l1(in[0], t, mask); }});
        cases.push_back({"tv_loss", {R({B, 3, H, W})}, [](const auto& in) { return ops::tv_loss(in[0]); }});
        const int s = std::string(st.name) == "train" ? 5 : 2;
        cases.push_back({str("pd_down ", s), {R({B / (s * s) > 0 ? B / (s * s) : 1, 3, H * s, W * s})},
                         [s](const auto& in) { return ops::pd_down(in[0], s); }});
        // AMSNet's fused input and output: the masked PD sub-images, and 2 branch outputs stitched back.
        const int64_t images = B / (s * s) > 0 ? B / (s * s) : 1;
        cases.push_back({str("masked_pd_down ", s), {R({images, 3, H * s, W * s})},
                         [s](const auto& in) { return ops::masked_pd_down(in[0], s, {7, 8, 0.5}); }});
        cases.push_back({str("pd_stitch ", s, ", 2 branches"), {R({images * s * s, 3, H, W}), R({images * s * s, 3, H, W})},
                         [s](const auto& in) { return ops::pd_stitch({in[0], in[1]}, s, {7, 8}); }});
        run_cases(cases, st.name);
    }
    // AdamW: one kernel over the flat parameter buffer of the model.
    {
        Restormer net(cfg, dev);
        net.init(1);
        AdamW adam(net.params(), AdamWConfig{});
        net.params().flat_grads().fill_(1e-3);
        double ms = median_ms(dev, warmup, repeat, [&] { adam.step(); });
        const double n = (double)net.params().total();
        // reads param, grad, m, v; writes param, m, v
        report({"adamw step", str(net.params().total(), " parameters"), "forward", ms, 7 * 4 * n, 0});
    }
}

}  // namespace ams::cli
