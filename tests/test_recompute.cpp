// The ops that recompute an intermediate in backward (engine/ops_recompute.cpp) against the
// separate ops they stand for (which the PyTorch fixtures and finite differences check): the same
// output and every gradient bit for bit, on odd shapes, with and without biases; their gradients
// against finite differences in double precision; and a Restormer training step with recompute()
// on: the same loss and gradients as without, at a lower memory peak.
#include <functional>

#include "engine/device.h"
#include "helpers.h"
#include "models/amsnet.h"
#include "models/restormer.h"

using namespace ams;

namespace {

using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

struct Pair {
    const char* name;
    Fn fused, separate;
    std::vector<Shape> shapes;  // inputs in call order; an empty shape = an undefined tensor (no bias)
};

// (B, C, H, W) = (2, 6, 5, 7); attention with 2 heads of 2 channels (qkv: 3 x 4); the gate on 4
// channels (x: 8). Odd sizes, so no kernel can assume a multiple of anything.
std::vector<Pair> pairs(bool with_bias) {
    auto bias = [&](int64_t n) { return with_bias ? Shape{n} : Shape{}; };
    return {
        {"norm_conv1x1",
         [=](const Inputs& in) { return ops::norm_conv1x1(in[0], in[1], in[2], with_bias, in[3], in[4]); },
         [=](const Inputs& in) { return ops::conv2d(ops::layer_norm(in[0], in[1], in[2], with_bias), in[3], in[4], 0); },
         {{2, 6, 5, 7}, {6}, bias(6), {10, 6, 1, 1}, bias(10)}},
        {"dwconv_attention",
         [](const Inputs& in) { return ops::dwconv_attention(in[0], in[1], in[2], in[3], 2); },
         [](const Inputs& in) { return ops::attention(ops::conv2d(in[0], in[1], in[2], 1, 12), in[3], 2); },
         {{2, 12, 5, 7}, {12, 1, 3, 3}, bias(12), {2, 1, 1}}},
        {"gate_conv1x1",
         [](const Inputs& in) { return ops::gate_conv1x1(in[0], in[1], in[2], in[3], in[4]); },
         [](const Inputs& in) { return ops::conv2d(ops::dwconv_gate(in[0], in[1], in[2]), in[3], in[4], 0); },
         {{2, 8, 5, 7}, {8, 1, 3, 3}, bias(8), {5, 4, 1, 1}, bias(5)}},
    };
}

Inputs fresh_inputs(const Pair& p, uint64_t seed, DType dt) {
    Inputs in;
    for (const Shape& s : p.shapes)
        in.push_back(s.empty() ? Tensor() : test::random_tensor(s, seed++, dt, 0.3, 0.5));
    if (std::string(p.name) == "dwconv_attention") in[3] = test::random_tensor(p.shapes[3], seed, dt, 1.0, 0.2);
    return in;
}

// The output and each defined input's gradient of sum(f(in) * R), as doubles.
std::vector<std::vector<double>> run(const Fn& f, const Inputs& in_, const Tensor& R) {
    Inputs in;
    for (const Tensor& t : in_) {
        Tensor c = t.defined() ? t.clone() : Tensor();
        if (c.defined()) c.requires_grad_(true);
        in.push_back(c);
    }
    Tensor out = f(in);
    std::vector<std::vector<double>> r{out.to_double()};
    ops::dot(out, R.to(out.dtype())).backward();
    for (const Tensor& t : in)
        if (t.defined()) r.push_back(t.grad().to_double());
    return r;
}

}  // namespace

TEST_CASE("recompute ops equal the separate ops bit for bit: output and every gradient") {
    uint64_t seed = 300;
    for (DType dt : {DType::F32, DType::F64})
        for (bool with_bias : {true, false})
            for (const Pair& p : pairs(with_bias)) {
                INFO(p.name, (with_bias ? ", with biases" : ", no biases"), ", ", dtype_name(dt));
                Inputs in = fresh_inputs(p, seed += 10, dt);
                Tensor out = p.separate(in);
                Tensor R = test::random_tensor(out.shape(), seed + 5, DType::F64);
                auto fused = run(p.fused, in, R), separate = run(p.separate, in, R);
                REQUIRE(fused.size() == separate.size());
                for (size_t k = 0; k < fused.size(); ++k) {
                    INFO((k == 0 ? std::string("output") : str("gradient of input ", k - 1)));
                    CHECK(fused[k] == separate[k]);
                }
            }
}

TEST_CASE("recompute ops: gradients match finite differences in double precision") {
    uint64_t seed = 900;
    for (bool with_bias : {true, false})
        for (const Pair& p : pairs(with_bias)) {
            INFO(p.name, (with_bias ? ", with biases" : ", no biases"));
            Inputs all = fresh_inputs(p, seed += 10, DType::F64), defined;
            std::vector<int> where;  // position of each defined input in the call
            for (size_t i = 0; i < all.size(); ++i)
                if (all[i].defined()) {
                    where.push_back((int)i);
                    defined.push_back(all[i]);
                }
            test::gradcheck([&](const Inputs& in) {
                Inputs call(all.size());
                for (size_t k = 0; k < in.size(); ++k) call[where[k]] = in[k];
                return p.fused(call);
            }, defined, 1e-6);
        }
}

TEST_CASE("recompute ops refuse what they cannot take") {
    Tensor x = Tensor::zeros({1, 6, 4, 4});
    CHECK_THROWS_WITH(ops::norm_conv1x1(x, Tensor::full({6}, 1.0), Tensor(), false, Tensor::zeros({4, 6, 3, 3}), Tensor()),
                      doctest::Contains("1x1"));
    CHECK_THROWS_WITH(ops::norm_conv1x1(x, Tensor::full({5}, 1.0), Tensor(), false, Tensor::zeros({4, 6, 1, 1}), Tensor()),
                      doctest::Contains("LayerNorm parameters"));
    CHECK_THROWS_WITH(ops::dwconv_attention(x, Tensor::zeros({6, 1, 3, 3}), Tensor(), Tensor::full({4, 1, 1}, 1.0), 4),
                      doctest::Contains("divisible"));
    CHECK_THROWS_WITH(ops::gate_conv1x1(x, Tensor::zeros({6, 1, 3, 3}), Tensor(), Tensor::zeros({2, 6, 1, 1}), Tensor()),
                      doctest::Contains("gate's 3 channels"));
}

TEST_CASE("Restormer training with recompute(): the same loss and gradients, less memory") {
    for (bool with_bias : {false, true}) {
        INFO((with_bias ? "WithBias" : "BiasFree"));
        RestormerConfig cfg;
        cfg.dim = 8;
        cfg.num_blocks = {1, 1, 1, 2};
        cfg.num_refinement_blocks = 1;
        cfg.layernorm_with_bias = with_bias;
        cfg.bias = with_bias;
        Tensor x = test::random_tensor({2, 3, 40, 40}, 77, DType::F32, 0.5, 0.2);
        std::vector<double> loss, grads;
        size_t peak[2];
        for (bool recompute : {false, true}) {
            Restormer net(cfg, Device::CPU);
            net.init(5);
            net.set_recompute(recompute);
            const size_t base = memory_in_use(Device::CPU);
            reset_memory_peak(Device::CPU);
            Tensor l = amsnet_train_loss(net, x, 5, 42, 3);  // PD 5: 50 sub-images of 8 x 8
            peak[recompute] = memory_peak(Device::CPU) - base;
            loss.push_back(l.item());
            l.backward();
            std::vector<double> g = net.params().flat_grads().to_double();
            if (!recompute) grads = g;
            else CHECK(g == grads);
        }
        CHECK(loss[1] == loss[0]);
        // Saved per block, in channels per pixel: 19 without (x, LN, qkv, its depthwise output,
        // attention output, x2, LN, project_in output, gate output), 11.3 with.
        MESSAGE("peak after the forward: ", peak[0], " bytes without recompute, ", peak[1], " with");
        CHECK(peak[1] < 0.75 * peak[0]);
    }
}
