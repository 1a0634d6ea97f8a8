// The whole Restormer on the GPU against the CPU: a small configuration (dim 8, blocks {1,1,1,2},
// one refinement block, heads {1,2,4,8}) with both LayerNorm types, the same parameters on both
// devices. Forward (also at a size that is not a multiple of 8), then full training steps (the GPU
// with and without recompute(), the CPU without): loss, backward, AdamW; compare the loss, every
// parameter gradient (the flat gradient buffer and each parameter's slice of it), the moments and
// the parameters after the step, and the next loss.
#include <cstdio>
#include <cstdlib>
#include <random>

#include "engine/params.h"
#include "gpu/gpu_helpers.h"
#include "helpers.h"
#include "models/restormer.h"

using namespace ams;
using test::rel_l2;

namespace {

constexpr double kTol = 1e-4;       // outputs, losses, whole gradient buffers
constexpr double kParamTol = 1e-3;  // a single small parameter's gradient (few, partly cancelling terms)

uint64_t model_seed() {
    static const uint64_t seed = test::run_seed("GPU model tests");
    return seed;
}

RestormerConfig small_config(bool with_bias) {
    RestormerConfig cfg;
    cfg.dim = 8;
    cfg.num_blocks = {1, 1, 1, 2};
    cfg.num_refinement_blocks = 1;
    cfg.heads = {1, 2, 4, 8};
    cfg.layernorm_with_bias = with_bias;
    cfg.bias = with_bias;  // conv biases too, so their gradients are covered
    return cfg;
}

// A CPU model with random parameters and a GPU model holding the same values.
struct Models {
    Restormer cpu, gpu;
    Models(const RestormerConfig& cfg, uint64_t seed) : cpu(cfg, Device::CPU), gpu(cfg, Device::CUDA) {
        cpu.init(seed);
        gpu.params().flat_values().copy_(cpu.params().flat_values());
    }
};

void check_param_grads(ParamStore& pc, ParamStore& pg) {
    double whole = rel_l2(pg.flat_grads(), pc.flat_grads());
    INFO("whole gradient buffer: relative L2 error ", whole);
    CHECK(whole < kTol);
    double worst = 0;
    std::string worst_name;
    for (size_t i = 0; i < pc.entries().size(); ++i) {
        const std::string& name = pc.entries()[i].name;
        Tensor gc = pc[(int)i].grad(), gg = pg[(int)i].grad();
        REQUIRE(gc.defined());
        REQUIRE(gg.defined());
        double e = rel_l2(gg, gc);
        if (e > worst || std::isnan(e)) {
            worst = e;
            worst_name = name;
        }
        INFO("gradient of ", name, ": relative L2 error ", e);
        CHECK(e < kParamTol);
    }
    MESSAGE("worst parameter gradient: ", worst_name, " ", worst);
}

}  // namespace

TEST_CASE("GPU Restormer forward matches the CPU") {
    for (bool with_bias : {false, true}) {
        SUBCASE(with_bias ? "WithBias" : "BiasFree") {
            const uint64_t seed = model_seed() + (with_bias ? 1 : 0);
            Models m(small_config(with_bias), seed);
            autograd::NoGradGuard no_grad;
            Tensor x = test::random_tensor({2, 3, 16, 24}, seed + 10, DType::F32, 0.5, 0.25);
            Tensor yc = m.cpu.forward(x), yg = m.gpu.forward(x.to(Device::CUDA));
            REQUIRE(yg.is_cuda());
            REQUIRE(yg.shape() == yc.shape());
            double e = rel_l2(yg, yc);
            INFO("forward relative L2 error ", e);
            CHECK(e < kTol);
            // Any size: reflect pad to a multiple of 8, forward, crop.
            Tensor xo = test::random_tensor({1, 3, 13, 21}, seed + 11, DType::F32, 0.5, 0.25);
            Tensor zc = m.cpu.forward_any_size(xo), zg = m.gpu.forward_any_size(xo.to(Device::CUDA));
            REQUIRE(zg.shape() == zc.shape());
            double ez = rel_l2(zg, zc);
            INFO("forward_any_size relative L2 error ", ez);
            CHECK(ez < kTol);
        }
    }
}

TEST_CASE("GPU Restormer training step matches the CPU: loss, gradients, AdamW update") {
    for (bool with_bias : {false, true}) {
        for (bool masked : {true, false}) {
          for (bool recompute : {false, true}) {  // the separate ops, and recomputation (train/step_memory.h)
            std::string name = str(with_bias ? "WithBias" : "BiasFree", masked ? ", masked L1" : ", dot(out, R)",
                                   recompute ? ", recompute" : "");
            SUBCASE(name.c_str()) {
                const uint64_t seed = model_seed() + 100 + (with_bias ? 2 : 0) + (masked ? 1 : 0);
                Models m(small_config(with_bias), seed);
                m.gpu.set_recompute(recompute);
                Tensor x = test::random_tensor({2, 3, 16, 24}, seed + 10, DType::F32, 0.5, 0.25);
                Tensor target = test::random_tensor({2, 3, 16, 24}, seed + 11, DType::F32, 0.5, 0.25);
                Tensor mask = ops::random_mask({2, 1, 16, 24}, 0.5, seed, rng::make_stream(rng::kMask, 1), Device::CPU);
                Tensor R = test::random_tensor({2, 3, 16, 24}, seed + 12, DType::F32);
                Tensor xg = x.to(Device::CUDA), tg = target.to(Device::CUDA), mg = mask.to(Device::CUDA),
                       Rg = R.to(Device::CUDA);
                Tensor out_cpu;
                auto loss_of = [&](Restormer& net, const Tensor& in, const Tensor& t, const Tensor& mk, const Tensor& r) {
                    Tensor out = net.forward(in);
                    if (!out.is_cuda()) out_cpu = out;
                    return masked ? ops::masked_l1(out, t, mk) : ops::dot(out, r);
                };
                // dot(out, R) sums terms of both signs and can land near 0 (-0.029 in one run, where
                // its terms were of order 1): its error is taken relative to the size of its terms,
                // |out| |R| (the Cauchy-Schwarz bound), not to the sum itself.
                auto loss_scale = [&](const Tensor& lc) {
                    if (masked) return std::abs(lc.item());
                    double oo = 0, rr = 0;
                    for (double v : out_cpu.to_double()) oo += v * v;
                    for (double v : R.to_double()) rr += v * v;
                    return std::max(std::abs(lc.item()), std::sqrt(oo * rr));
                };
                AdamWConfig cfg;
                cfg.lr = 1e-3;
                cfg.weight_decay = 1e-2;
                AdamW oc(m.cpu.params(), cfg), og(m.gpu.params(), cfg);
                for (int step = 1; step <= 2; ++step) {
                    INFO("training step ", step);
                    m.cpu.params().zero_grad();
                    m.gpu.params().zero_grad();
                    // One device's forward and backward, then the other's: backward() empties
                    // the whole tape, so both graphs recorded first would leave the GPU's unrun.
                    Tensor lc = loss_of(m.cpu, x, target, mask, R);
                    lc.backward();
                    Tensor lg = loss_of(m.gpu, xg, tg, mg, Rg);
                    REQUIRE(lg.is_cuda());
                    double el = std::abs(lg.item() - lc.item()) / std::max(loss_scale(lc), 1e-30);
                    INFO("loss CPU ", lc.item(), " GPU ", lg.item(), " relative error ", el);
                    CHECK(el < kTol);
                    lg.backward();
                    check_param_grads(m.cpu.params(), m.gpu.params());
                    oc.step();
                    og.step();
                    CHECK(rel_l2(og.m(), oc.m()) < kTol);
                    CHECK(rel_l2(og.v(), oc.v()) < 2 * kTol);
                    CHECK(rel_l2(m.gpu.params().flat_values(), m.cpu.params().flat_values()) < kTol);
                    // Step 2 starts both devices from the CPU's state, so that it checks one step's
                    // computation. AdamW's first update is lr * sign(g) per weight: where a gradient
                    // is near zero, a last-bit difference flips the sign. The parameters then differ
                    // by 2 lr in places, and some step-2 gradients by over 1e-3 (seed
                    // 14933155675702279109 failed this way).
                    m.gpu.params().flat_values().copy_(m.cpu.params().flat_values());
                    og.m().copy_(oc.m());
                    og.v().copy_(oc.v());
                }
            }
          }
        }
    }
}
