// Every op of engine/ops.h on the GPU against the CPU reference, on fresh random inputs (a new seed
// each run, printed; AMS_TEST_SEED=<n> replays one) and odd shapes: forward outputs and the
// gradients of every input of sum(out * R), relative L2 error below 1e-4 in float32 (NaN never
// passes; fresh GPU memory is NaN-poisoned by tests/gpu/main.cpp). Each case also runs with only
// the first / only the last input requiring grad (backward kernels get nullptr for the others) and
// with gradient buffers pre-filled (backward must accumulate, not overwrite).
#include <algorithm>
#include <cfloat>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "engine/device.h"
#include "engine/params.h"
#include "engine/precision.h"
#include "gpu/gpu_helpers.h"
#include "helpers.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/handles.h"
#include "kernels/cuda/runtime.h"

using namespace ams;
using test::rel_l2;

namespace {

// float32; with AMS_TF32=1 (the gpu_test_gpu_ops_tf32 run), TF32's 10-bit mantissa in the
// matrix products (unit roundoff 2^-11) allows ~1e-2: attention's temperature gradient, a sum with
// cancellation, reached 7.5e-3 in the emulator; with AMS_BF16=1 (gpu_test_gpu_ops_bf16),
// bfloat16's 8-bit one (2^-8) ~4e-2. The CPU reference rounds the same operands under the same
// policy (engine/precision.h), but the tolerances still allow a full rounding error: how the tensor
// cores convert float32 (to nearest or towards zero) is the hardware's, not documented.
const double kTol = cuda::bf16_enabled() ? 4e-2 : cuda::tf32_enabled() ? 1.5e-2 : 1e-4;

uint64_t base_seed() {
    static const uint64_t seed = test::run_seed("GPU op tests");
    return seed;
}

using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

struct Arg {
    Shape shape;
    double mean = 0, scale = 1;
};

struct Case {
    std::string name;
    std::vector<Arg> diff;    // differentiable inputs (random), in call order
    std::vector<Tensor> data;  // CPU F32 inputs appended after them, no gradient (masks, targets)
    Fn run;
};

// Depthwise 1x1 weights (channels, 1, 1, 1): ones, with zeros at channel 0 (q's first row) and at
// channel c (k's first row) of a qkv tensor with c channels per part.
Tensor zero_qk_rows(int64_t channels, int64_t c) {
    std::vector<float> w((size_t)channels, 1.0f);
    w[0] = w[(size_t)c] = 0.0f;
    return Tensor::from_vector(w, {channels, 1, 1, 1});
}

Tensor cpu_mask(const Shape& s, double p, uint64_t seed) {
    return ops::random_mask(s, p, seed, rng::make_stream(rng::kTest, 77), Device::CPU);
}

std::vector<Case> cases() {
    auto conv = [](int pad, int groups) {
        return [pad, groups](const Inputs& in) { return ops::conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), pad, groups); };
    };
    const Shape x{2, 6, 7, 13};
    const Arg w_ln{{6}, 1.0, 0.2};
    std::vector<Case> c = {
        // conv2d: depthwise (custom kernels), 1x1 (cuBLAS), dense and grouped (cuDNN)
        {"conv depthwise 3x3", {{x}, {{6, 1, 3, 3}}}, {}, conv(1, 6)},
        {"conv depthwise 3x3 bias", {{x}, {{6, 1, 3, 3}}, {{6}}}, {}, conv(1, 6)},
        {"conv depthwise 5x5 bias", {{x}, {{6, 1, 5, 5}}, {{6}}}, {}, conv(2, 6)},
        {"conv depthwise 3x3 no pad", {{x}, {{6, 1, 3, 3}}, {{6}}}, {}, conv(0, 6)},
        {"conv depthwise 3x5 bias", {{x}, {{6, 1, 3, 5}}, {{6}}}, {}, conv(1, 6)},
        {"conv dense 3x3 bias", {{x}, {{12, 6, 3, 3}}, {{12}}}, {}, conv(1, 1)},
        {"conv dense 3x3 no pad", {{x}, {{5, 6, 3, 3}}}, {}, conv(0, 1)},
        {"conv dense 5x5 bias", {{x}, {{4, 6, 5, 5}}, {{4}}}, {}, conv(2, 1)},
        {"conv dense 1x3", {{x}, {{4, 6, 1, 3}}}, {}, conv(1, 1)},
        {"conv 1x1", {{x}, {{12, 6, 1, 1}}}, {}, conv(0, 1)},
        {"conv 1x1 bias", {{x}, {{5, 6, 1, 1}}, {{5}}}, {}, conv(0, 1)},
        {"conv 1x1 batch 5", {{{5, 6, 7, 13}}, {{5, 6, 1, 1}}}, {}, conv(0, 1)},
        {"conv 1x1 batch 1", {{{1, 6, 7, 13}}, {{5, 6, 1, 1}}}, {}, conv(0, 1)},
        // Planes of 6 pixels, 12 -> 16 channels: the filter gradient copies dY and X channels first
        // and reduces over all 7 images in one GEMM (a dW slice per image would be larger).
        {"conv 1x1 small planes bias", {{{7, 12, 2, 3}}, {{16, 12, 1, 1}}, {{16}}}, {}, conv(0, 1)},
        {"conv grouped 3x3 bias", {{x}, {{12, 3, 3, 3}}, {{12}}}, {}, conv(1, 2)},
        {"conv grouped 1x1 bias", {{x}, {{9, 2, 1, 1}}, {{9}}}, {}, conv(0, 3)},
        // permutations
        {"pixel_unshuffle 2", {{{2, 6, 14, 26}}}, {}, [](const Inputs& in) { return ops::pixel_unshuffle(in[0], 2); }},
        {"pixel_unshuffle 3", {{{2, 3, 21, 39}}}, {}, [](const Inputs& in) { return ops::pixel_unshuffle(in[0], 3); }},
        {"pixel_shuffle 2", {{{2, 12, 7, 13}}}, {}, [](const Inputs& in) { return ops::pixel_shuffle(in[0], 2); }},
        {"pixel_shuffle 3", {{{1, 18, 5, 7}}}, {}, [](const Inputs& in) { return ops::pixel_shuffle(in[0], 3); }},
        {"pd_down 2", {{{2, 6, 14, 26}}}, {}, [](const Inputs& in) { return ops::pd_down(in[0], 2); }},
        {"pd_down 3", {{{1, 5, 21, 12}}}, {}, [](const Inputs& in) { return ops::pd_down(in[0], 3); }},
        {"pd_up 2", {{{8, 6, 7, 13}}}, {}, [](const Inputs& in) { return ops::pd_up(in[0], 2); }},
        {"pd_up 3", {{{9, 2, 5, 7}}}, {}, [](const Inputs& in) { return ops::pd_up(in[0], 3); }},
        // fused mask + PD (masks drawn in the kernels), Bernoulli and branch masks, tile windows
        {"masked_pd_down 2 Bernoulli", {{{2, 3, 14, 26}}}, {}, [](const Inputs& in) { return ops::masked_pd_down(in[0], 2, {5, 6, 0.4}); }},
        {"masked_pd_down 3 branch, window", {{{1, 3, 21, 12}}}, {},
         [](const Inputs& in) { return ops::masked_pd_down(in[0], 3, {5, 6, 0, 3, 1, {13, 9, 2, 3}}); }},
        {"masked_pd_down 1 branch", {{{2, 3, 7, 13}}}, {}, [](const Inputs& in) { return ops::masked_pd_down(in[0], 1, {5, 7, 0, 8, 5}); }},
        {"pd_stitch 2, 3 branches", {{{8, 3, 7, 13}}, {{8, 3, 7, 13}}, {{8, 3, 7, 13}}}, {},
         [](const Inputs& in) { return ops::pd_stitch({in[0], in[1], in[2]}, 2, {5, 6}); }},
        {"pd_stitch 3, 2 branches, window", {{{9, 3, 5, 7}}, {{9, 3, 5, 7}}}, {},
         [](const Inputs& in) { return ops::pd_stitch({in[0], in[1]}, 3, {5, 6, 0, 0, 0, {11, 8, 4, 1}}); }},
        // Restormer blocks
        {"layer_norm BiasFree", {{x, 0.3}, w_ln}, {}, [](const Inputs& in) { return ops::layer_norm(in[0], in[1], Tensor(), false); }},
        // 21 channels over the kernel's 8 channel groups (uneven), 45 pixels (a partial tile).
        {"layer_norm WithBias 21 channels", {{{3, 21, 3, 5}, 0.3}, {{21}, 1.0, 0.2}, {{21}}}, {},
         [](const Inputs& in) { return ops::layer_norm(in[0], in[1], in[2], true); }},
        {"layer_norm BiasFree 21 channels", {{{3, 21, 3, 5}, 0.3}, {{21}, 1.0, 0.2}}, {},
         [](const Inputs& in) { return ops::layer_norm(in[0], in[1], Tensor(), false); }},
        {"layer_norm WithBias", {{x, 0.3}, w_ln, {{6}}}, {}, [](const Inputs& in) { return ops::layer_norm(in[0], in[1], in[2], true); }},
        {"attention 1 head", {{{2, 18, 7, 13}}, {{1, 1, 1}, 1.0, 0.2}}, {}, [](const Inputs& in) { return ops::attention(in[0], in[1], 1); }},
        {"attention 3 heads", {{{2, 36, 7, 13}}, {{3, 1, 1}, 1.0, 0.2}}, {}, [](const Inputs& in) { return ops::attention(in[0], in[1], 3); }},
        // 70 channels per head: each row's lanes loop three times, the last partly; more rows than warps.
        {"attention 70 channels per head", {{{2, 210, 5, 7}}, {{1, 1, 1}, 1.0, 0.2}}, {}, [](const Inputs& in) { return ops::attention(in[0], in[1], 1); }},
        // A zero q row and a zero k row take the clamp in the L2 normalisation (channels 0 and C of
        // qkv zeroed by a fixed depthwise 1x1 conv).
        {"attention zero q and k rows", {{{2, 18, 7, 13}}, {{3, 1, 1}, 1.0, 0.2}}, {zero_qk_rows(18, 6)},
         [](const Inputs& in) { return ops::attention(ops::conv2d(in[0], in[2], Tensor(), 0, 18), in[1], 3); }},
        {"gelu_gate", {{{2, 12, 7, 13}}}, {}, [](const Inputs& in) { return ops::gelu_gate(in[0]); }},
        {"gelu_gate vectorised", {{{2, 12, 8, 16}}}, {}, [](const Inputs& in) { return ops::gelu_gate(in[0]); }},
        {"dwconv_gate bias", {{{2, 10, 7, 13}}, {{10, 1, 3, 3}}, {{10}}}, {},
         [](const Inputs& in) { return ops::dwconv_gate(in[0], in[1], in[2]); }},
        {"dwconv_gate one column", {{{2, 6, 9, 1}}, {{6, 1, 3, 3}}}, {}, [](const Inputs& in) { return ops::dwconv_gate(in[0], in[1], Tensor()); }},
        // element-wise and layout
        {"add", {{x}, {x}}, {}, [](const Inputs& in) { return ops::add(in[0], in[1]); }},
        {"add odd length", {{{1, 1, 3, 7}}, {{1, 1, 3, 7}}}, {}, [](const Inputs& in) { return ops::add(in[0], in[1]); }},
        {"scale", {{x}}, {}, [](const Inputs& in) { return ops::scale(in[0], -0.7); }},
        {"concat", {{x}, {{2, 4, 7, 13}}}, {}, [](const Inputs& in) { return ops::concat(in[0], in[1]); }},
        {"concat of a tensor with itself", {{x}}, {}, [](const Inputs& in) { return ops::concat(in[0], in[0]); }},
        {"reflect_pad", {{x}}, {}, [](const Inputs& in) { return ops::reflect_pad(in[0], 1, 2, 3, 4); }},
        {"reflect_pad wide", {{x}}, {}, [](const Inputs& in) { return ops::reflect_pad(in[0], 6, 5, 12, 11); }},
        {"reflect_pad bottom right", {{x}}, {}, [](const Inputs& in) { return ops::reflect_pad(in[0], 0, 1, 0, 3); }},
        {"crop", {{x}}, {}, [](const Inputs& in) { return ops::crop(in[0], 1, 2, 5, 9); }},
        {"reshape", {{x}}, {}, [](const Inputs& in) { return ops::reshape(in[0], {2, 3, 14, 13}); }},
        {"dihedral 3 (both flips)", {{x}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 3); }},
        {"dihedral 5 (flip W, transpose)", {{x}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 5); }},
        {"dihedral 6 (flip H, transpose)", {{x}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 6); }},
        {"dihedral 1 (flip W)", {{x}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 1); }},
        {"dihedral 2 (flip H)", {{x}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 2); }},
        {"dihedral 4 (transpose)", {{x}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 4); }},
        {"dihedral 7 (both flips, transpose)", {{x}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 7); }},
        // Transposes move 32x32 tiles: several tiles per plane, partial at both edges.
        {"dihedral 4 (transpose) over tiles", {{{1, 2, 70, 33}}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 4); }},
        {"dihedral 6 (flip H, transpose) over tiles", {{{2, 3, 45, 70}}}, {}, [](const Inputs& in) { return ops::dihedral(in[0], 6); }},
        {"mask_mul", {{x}}, {cpu_mask({2, 1, 7, 13}, 0.4, 11)}, [](const Inputs& in) { return ops::mask_mul(in[0], in[1]); }},
        // scalar results
        {"dot", {{x}, {x}}, {}, [](const Inputs& in) { return ops::dot(in[0], in[1]); }},
        {"masked_l1", {{x}}, {test::random_tensor(x, 5, DType::F32), cpu_mask({2, 1, 7, 13}, 0.3, 12)},
         [](const Inputs& in) { return ops::masked_l1(in[0], in[1], in[2]); }},
        {"masked_l1 empty mask", {{x}}, {test::random_tensor(x, 6, DType::F32), Tensor::zeros({2, 1, 7, 13})},
         [](const Inputs& in) { return ops::masked_l1(in[0], in[1], in[2]); }},
        {"l1_loss", {{x}, {x}}, {}, [](const Inputs& in) { return ops::l1_loss(in[0], in[1]); }},
        {"tv_loss", {{x}}, {}, [](const Inputs& in) { return ops::tv_loss(in[0]); }},
        {"tv_loss one row", {{{2, 3, 1, 13}}}, {}, [](const Inputs& in) { return ops::tv_loss(in[0]); }},
        {"tv_loss one column", {{{2, 3, 13, 1}}}, {}, [](const Inputs& in) { return ops::tv_loss(in[0]); }},
        // chains (intermediate gradients flow between GPU kernels)
        {"chain conv-ln-attention", {{{1, 4, 9, 11}}, {{12, 4, 1, 1}}, {{12, 1, 3, 3}}, {{4}, 1.0, 0.2}, {{2, 1, 1}, 1.0, 0.2}},
         {},
         [](const Inputs& in) {
             Tensor y = ops::conv2d(in[0], in[1], Tensor(), 0, 1);
             y = ops::conv2d(y, in[2], Tensor(), 1, 12);
             Tensor a = ops::attention(y, in[4], 2);
             return ops::gelu_gate(ops::concat(ops::layer_norm(a, in[3], Tensor(), false), a));
         }},
        // The training ops that recompute their middle tensor in backward (engine/ops_recompute.cpp).
        {"chain recompute norm_conv1x1 WithBias", {{x, 0.3}, w_ln, {{6}}, {{5, 6, 1, 1}}, {{5}}}, {},
         [](const Inputs& in) { return ops::norm_conv1x1(in[0], in[1], in[2], true, in[3], in[4]); }},
        {"chain recompute norm_conv1x1 BiasFree", {{x, 0.3}, w_ln, {{12, 6, 1, 1}}}, {},
         [](const Inputs& in) { return ops::norm_conv1x1(in[0], in[1], Tensor(), false, in[2], Tensor()); }},
        {"chain recompute dwconv_attention", {{{2, 18, 7, 13}}, {{18, 1, 3, 3}}, {{18}}, {{3, 1, 1}, 1.0, 0.2}}, {},
         [](const Inputs& in) { return ops::dwconv_attention(in[0], in[1], in[2], in[3], 3); }},
        {"chain recompute gate_conv1x1", {{{2, 10, 7, 13}}, {{10, 1, 3, 3}}, {{10}}, {{4, 5, 1, 1}}, {{4}}}, {},
         [](const Inputs& in) { return ops::gate_conv1x1(in[0], in[1], in[2], in[3], in[4]); }},
    };
    // Larger inputs: the reductions split over several blocks (2K+ items per row).
    const Shape X{2, 4, 48, 80};
    std::vector<Case> big = {
        {"big conv depthwise 3x3 bias", {{X}, {{4, 1, 3, 3}}, {{4}}}, {}, conv(1, 4)},
        {"big dwconv_gate", {{X}, {{4, 1, 3, 3}}, {{4}}}, {}, [](const Inputs& in) { return ops::dwconv_gate(in[0], in[1], in[2]); }},
        {"big conv 1x1 bias", {{X}, {{6, 4, 1, 1}}, {{6}}}, {}, conv(0, 1)},
        {"big conv dense 3x3 bias", {{X}, {{6, 4, 3, 3}}, {{6}}}, {}, conv(1, 1)},
        {"big layer_norm WithBias", {{X, 0.3}, {{4}, 1.0, 0.2}, {{4}}}, {}, [](const Inputs& in) { return ops::layer_norm(in[0], in[1], in[2], true); }},
        {"big layer_norm BiasFree", {{X, 0.3}, {{4}, 1.0, 0.2}}, {}, [](const Inputs& in) { return ops::layer_norm(in[0], in[1], Tensor(), false); }},
        {"big attention", {{{2, 24, 48, 80}}, {{2, 1, 1}, 1.0, 0.2}}, {}, [](const Inputs& in) { return ops::attention(in[0], in[1], 2); }},
        // Training's latent level: 100 sub-images x 768 q and k rows of 16 pixels = 76,800 rows
        // (a warp each; the test below runs it through the split path, whose grid stops at 65,535
        // rows in y, so its row loop must wrap).
        {"many rows attention", {{{100, 1152, 4, 4}}, {{8, 1, 1}, 1.0, 0.2}}, {}, [](const Inputs& in) { return ops::attention(in[0], in[1], 8); }},
        {"big dot", {{X}, {X}}, {}, [](const Inputs& in) { return ops::dot(in[0], in[1]); }},
        {"big masked_l1", {{X}}, {test::random_tensor(X, 7, DType::F32), cpu_mask({2, 1, 48, 80}, 0.3, 13)},
         [](const Inputs& in) { return ops::masked_l1(in[0], in[1], in[2]); }},
        {"big l1_loss", {{X}, {X}}, {}, [](const Inputs& in) { return ops::l1_loss(in[0], in[1]); }},
        {"big tv_loss", {{X}}, {}, [](const Inputs& in) { return ops::tv_loss(in[0]); }},
    };
    c.insert(c.end(), big.begin(), big.end());
    return c;
}

// Runs the case on both devices with the inputs in `grad_mask` requiring grad (gradient buffers
// pre-filled with 0.5 when `prefill`) and compares outputs and those inputs' gradients.
void compare(const Case& c, uint64_t seed, unsigned grad_mask, bool prefill) {
    autograd::clear_tape();  // nothing left over from a failed check before
    Inputs cpu_in, gpu_in;
    for (size_t k = 0; k < c.diff.size(); ++k) {
        const Arg& a = c.diff[k];
        Tensor t = test::random_tensor(a.shape, seed + k, DType::F32, a.mean, a.scale);
        Tensor tc = t.clone(), tg = t.to(Device::CUDA);
        if (grad_mask & (1u << k)) {
            tc.requires_grad_(true);
            tg.requires_grad_(true);
            if (prefill) {
                autograd::grad_buffer(tc).fill_(0.5);
                autograd::grad_buffer(tg).fill_(0.5);
            }
        }
        cpu_in.push_back(tc);
        gpu_in.push_back(tg);
    }
    for (const Tensor& d : c.data) {
        cpu_in.push_back(d);
        gpu_in.push_back(d.to(Device::CUDA));
    }
    // Each device's forward and backward in turn: backward() runs (and empties) the whole tape, so
    // a graph recorded before another one's backward would lose its nodes.
    Tensor oc = c.run(cpu_in);
    Tensor R = test::random_tensor(oc.shape(), seed + 1000, DType::F32);
    if (oc.requires_grad()) ops::dot(oc, R).backward();
    Tensor og = c.run(gpu_in);
    REQUIRE(og.is_cuda());
    REQUIRE(og.shape() == oc.shape());
    double e = rel_l2(og, oc);
    INFO("forward relative L2 error ", e);
    CHECK(e < kTol);
    REQUIRE(og.requires_grad() == oc.requires_grad());
    if (!oc.requires_grad()) return;
    ops::dot(og, R.to(Device::CUDA)).backward();
    for (size_t k = 0; k < c.diff.size(); ++k) {
        if (!(grad_mask & (1u << k))) continue;
        INFO("gradient of input ", k, " ", shape_str(cpu_in[k].shape()));
        REQUIRE(cpu_in[k].grad().defined());
        REQUIRE(gpu_in[k].grad().defined());
        REQUIRE(gpu_in[k].grad().is_cuda());
        // With pre-filled buffers, the backward's own contribution (what was added to the 0.5s) is
        // compared: the 0.5s would dilute the error, or cancel a gradient near -0.5.
        Tensor gg = gpu_in[k].grad().to(Device::CPU), gc = cpu_in[k].grad();
        if (prefill) {
            gg = ops::add(gg, Tensor::full(gg.shape(), -0.5, DType::F32));
            gc = ops::add(gc, Tensor::full(gc.shape(), -0.5, DType::F32));
        }
        // Attention's temperature gradient (the only (heads, 1, 1) input) is one sum per head with
        // heavy cancellation, often near 0: its error is taken relative to max(|g|, 1), within 5e-4
        // (float32 summation order alone moved it by 1.07e-4 in 1 of 300 seeds in the emulator),
        // 3e-2 / 1.5e-1 with TF32 / bfloat16 products (0 of 300 seeds failed).
        const bool temperature = cpu_in[k].ndim() == 3 && cpu_in[k].dim(1) == 1 && cpu_in[k].dim(2) == 1;
        double eg = rel_l2(gg, gc);
        double tol = kTol;
        if (temperature) {
            const double norm = std::sqrt(ops::dot(gc, gc).item());
            eg = eg * std::max(norm, 1e-30) / std::max(norm, 1.0);  // ||difference|| / max(||g||, 1)
            tol = cuda::bf16_enabled() ? 0.15 : cuda::tf32_enabled() ? 3e-2 : 5e-4;
        }
        // A chain of ops compounds the summation-order differences: 1.3e-4 seen in 1 of 400 seeds.
        if (c.name.rfind("chain", 0) == 0) tol = std::max(tol, 5e-4);
        INFO("gradient relative L2 error ", eg);
        CHECK(eg < tol);
    }
}

// Sets one of the kernels' limits for a test (set returns the previous value) and puts it back.
struct ScopedLimit {
    int64_t (*set)(int64_t);
    int64_t prev;
    ScopedLimit(int64_t (*s)(int64_t), int64_t value) : set(s), prev(s(value)) {}
    ~ScopedLimit() { set(prev); }
};

// Runs the cases `wanted` picks by name, every input requiring grad, each in its own subcase;
// returns how many it picked.
template <class Wanted>
int compare_some(uint64_t seed, Wanted wanted) {
    INFO("seed ", seed);
    int found = 0;
    for (const Case& c : cases()) {
        if (!wanted(c.name)) continue;
        ++found;
        SUBCASE(c.name.c_str()) { compare(c, seed, (1u << c.diff.size()) - 1, false); }
    }
    return found;
}

}  // namespace

TEST_CASE("GPU poisoning is active: fresh CUDA tensors read as NaN") {
    if (!env_flag("AMS_CUDA_POISON")) {
        MESSAGE("AMS_CUDA_POISON is not 1: unwritten outputs would not be detected");
        return;
    }
    std::vector<float> h = Tensor::empty({3, 5, 7}, DType::F32, Device::CUDA).to_vector();
    for (float f : h) REQUIRE(std::isnan(f));
    std::vector<float> z = Tensor::zeros({3, 5, 7}, DType::F32, Device::CUDA).to_vector();
    for (float f : z) REQUIRE(f == 0.f);
}

TEST_CASE("GPU ops match the CPU reference: forward and gradients") {
    const uint64_t seed0 = base_seed();
    uint64_t n = 0;
    for (const Case& c : cases()) {
        ++n;
        // A chain of ops (conv, LayerNorm, attention) amplifies the rounding of TF32 / bfloat16
        // products past a per-op tolerance (its temperature gradient is off by ~3% under TF32 in
        // the emulator, which rounds operands as the tensor cores do): it runs in float32 only.
        if (c.name.rfind("chain", 0) == 0 && cuda::tensor_math_enabled()) continue;
        SUBCASE(c.name.c_str()) {
            const uint64_t seed = seed0 + 7919 * n;
            INFO(c.name, " (seed ", seed, ")");
            const unsigned all = (1u << c.diff.size()) - 1;
            {
                INFO("all inputs require grad");
                compare(c, seed, all, false);
            }
            {
                INFO("all inputs require grad, gradient buffers pre-filled");
                compare(c, seed, all, true);
            }
            if (c.diff.size() > 1) {
                {
                    INFO("only the first input requires grad");
                    compare(c, seed, 1u, false);
                }
                {
                    INFO("only the last input requires grad");
                    compare(c, seed, 1u << (c.diff.size() - 1), false);
                }
            }
        }
    }
}

TEST_CASE("GPU row reductions: the split path on short rows, past a grid's 65,535 rows") {
    // Every row reduction (norms, parameter gradients, losses) goes through split_reduce: a warp per
    // row up to 2048 items, else blocks per row. With the warp path off, the many-rows attention
    // (76,800 rows of 16) takes the split path and loops over rows in y; the small cases take it too.
    const ScopedLimit limit(cuda::set_warp_row_max, 0);
    const int found = compare_some(base_seed() + 31, [](const std::string& name) {
        return name == "many rows attention" || name == "attention 3 heads" || name == "layer_norm WithBias" ||
               name == "masked_l1" || name == "dot";
    });
    CHECK(found == 5);  // the names above still exist
}

TEST_CASE("GPU layout, stencil, per-element and LayerNorm kernels on their 64-bit index path") {
    // They index with int32 below 2^30 elements, which every other case is; tensors past it do not
    // fit a test, so the threshold is lowered to run the int64 instantiations on the same shapes.
    const ScopedLimit limit(cuda::set_index32_max, 0);
    const int found = compare_some(base_seed() + 37, [](const std::string& name) {
        for (const char* p : {"pixel_", "pd_", "masked_pd_", "reflect_pad", "crop", "concat", "dihedral",
                              "conv depthwise", "conv 1x1 small planes", "dwconv_gate", "big conv depthwise", "mask_mul",
                              "masked_l1", "tv_loss", "attention 3 heads", "attention 70", "layer_norm"})
            if (name.rfind(p, 0) == 0) return true;
        return false;
    });
    CHECK(found >= 41);  // the prefixes above still name cases
}

TEST_CASE("GPU dense convolutions past cuDNN's element limit run in image chunks and match the CPU") {
    // With the limit lowered to 3300 elements, a batch of 5 (455 inputs, 1092 outputs per image)
    // runs as chunks of 3 and 2 images; the filter gradient accumulates over them. The second
    // chunk's input starts 1365 floats in: a pointer only 4-byte aligned, as odd-sized images give.
    const ScopedLimit limit(cuda::set_cudnn_max_elements, 3300);
    const uint64_t seed = base_seed() + 29;
    const Case c{"chunked conv dense 3x3 bias", {{{5, 5, 7, 13}}, {{12, 5, 3, 3}}, {{12}}}, {},
                 [](const Inputs& in) { return ops::conv2d(in[0], in[1], in[2], 1, 1); }};
    INFO("seed ", seed);
    compare(c, seed, 7u, false);
    compare(c, seed, 7u, true);
    compare(c, seed, 2u, false);  // filter gradient only
    // One image above the limit cannot be split: a clear error, not a cuDNN failure.
    cuda::set_cudnn_max_elements(1000);
    Tensor x = test::random_tensor({1, 6, 7, 13}, seed, DType::F32).to(Device::CUDA);
    Tensor w = test::random_tensor({12, 6, 3, 3}, seed + 1, DType::F32).to(Device::CUDA);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, w, Tensor(), 1, 1), doctest::Contains("more than cuDNN takes"), std::exception);
}

TEST_CASE("GPU backward is deterministic: identical gradients bit for bit on a rerun") {
    const uint64_t seed = base_seed() + 17;
    Tensor x0 = test::random_tensor({2, 8, 40, 56}, seed, DType::F32).to(Device::CUDA);
    Tensor w1 = test::random_tensor({24, 8, 1, 1}, seed + 1, DType::F32).to(Device::CUDA);
    Tensor w2 = test::random_tensor({24, 1, 3, 3}, seed + 2, DType::F32).to(Device::CUDA);
    Tensor w3 = test::random_tensor({8, 8, 3, 3}, seed + 3, DType::F32).to(Device::CUDA);
    Tensor ln = test::random_tensor({8}, seed + 4, DType::F32, 1.0, 0.2).to(Device::CUDA);
    Tensor lb = test::random_tensor({8}, seed + 5, DType::F32).to(Device::CUDA);
    Tensor t = test::random_tensor({2, 1, 1}, seed + 6, DType::F32, 1.0, 0.2).to(Device::CUDA);
    auto run = [&] {
        Inputs p = {x0.clone(), w1.clone(), w2.clone(), w3.clone(), ln.clone(), lb.clone(), t.clone()};
        for (Tensor& q : p) q.requires_grad_(true);
        Tensor y = ops::layer_norm(p[0], p[4], p[5], true);
        y = ops::conv2d(ops::conv2d(y, p[1], Tensor(), 0, 1), p[2], Tensor(), 1, 24);
        y = ops::conv2d(ops::attention(y, p[6], 2), p[3], Tensor(), 1, 1);
        ops::tv_loss(y).backward();
        Inputs g;
        for (Tensor& q : p) g.push_back(q.grad().clone());
        return g;
    };
    Inputs a = run(), b = run();
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("gradient ", i);
        std::vector<float> va = a[i].to_vector(), vb = b[i].to_vector();
        REQUIRE(va.size() == vb.size());
        CHECK(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("GPU random masks are identical to the CPU's for the same key") {
    const uint64_t seed = base_seed();
    for (const Shape& s : {Shape{3, 1, 17, 13}, Shape{1, 1, 1, 1}, Shape{2, 1, 64, 96}}) {
        for (double p : {0.0, 0.3, 0.5, 1.0}) {
            uint64_t stream = rng::make_stream(rng::kMask, 5);
            Tensor c = ops::random_mask(s, p, seed, stream, Device::CPU);
            Tensor g = ops::random_mask(s, p, seed, stream, Device::CUDA);
            REQUIRE(g.is_cuda());
            INFO("shape ", shape_str(s), " p ", p);
            CHECK(c.to_vector() == g.to_vector());
        }
        for (int k = 1; k <= 4; ++k)
            for (int br = 0; br < k; ++br) {
                Tensor c = ops::branch_mask(s, k, br, seed, 9, Device::CPU);
                Tensor g = ops::branch_mask(s, k, br, seed, 9, Device::CUDA);
                INFO("shape ", shape_str(s), " branch ", br, " of ", k);
                CHECK(c.to_vector() == g.to_vector());
            }
    }
    // Windows of a larger mask (tiled inference), odd sizes and origins.
    const ops::MaskWindow win{41, 37, 9, 5};
    const Shape ws{2, 1, 13, 23};
    CHECK(ops::random_mask(ws, 0.4, seed, 3, Device::CPU, win).to_vector() ==
          ops::random_mask(ws, 0.4, seed, 3, Device::CUDA, win).to_vector());
    CHECK(ops::branch_mask(ws, 3, 2, seed, 3, Device::CPU, win).to_vector() ==
          ops::branch_mask(ws, 3, 2, seed, 3, Device::CUDA, win).to_vector());
}

TEST_CASE("GPU fused mask + PD hides exactly the CPU's pixels and writes the same flags") {
    const uint64_t seed = base_seed() + 17;
    Tensor x = test::random_tensor({2, 3, 30, 42}, seed, DType::F32);
    for (int s : {1, 2, 3})
        for (ops::MaskDraw m : {ops::MaskDraw{seed, 3, 0.3}, ops::MaskDraw{seed, 3, 0, 4, 2, {19, 23, 5, 7}}}) {
            INFO("stride ", s, " k ", m.k);
            Tensor hc, hg;
            Tensor c = ops::masked_pd_down(x, s, m, &hc), g = ops::masked_pd_down(x.to(Device::CUDA), s, m, &hg);
            CHECK(c.to_vector() == g.to_vector());  // a copy: bit-identical
            CHECK(hc.to_vector() == hg.to_vector());
        }
}

TEST_CASE("uploads through the pinned staging ring arrive intact, in order, whatever the host does next") {
    // More uploads than ring slots, of growing and shrinking sizes (slots are reallocated), one
    // larger than the ring takes (the plain path), each source overwritten right after its upload.
    // The stream is kept busy before every upload, so a slot comes round again while its last DMA
    // may still be queued: reusing it without waiting for that DMA would corrupt the earlier upload.
    const uint64_t seed = base_seed() + 31;
    std::vector<Tensor> host, dev;
    for (int64_t n : std::initializer_list<int64_t>{1, 1000, 3, 70000, 5, 1 << 20, 17, 250000, 2, 20 << 20, 999}) {
        for (int r = 0; r < 50; ++r) cuda::flush_l2();  // ~100 MB memsets queued ahead of the copy
        Tensor h = test::random_tensor({n}, seed + n, DType::F32);
        host.push_back(h.clone());
        dev.push_back(h.to(Device::CUDA));
        h.fill_(-1.0);  // the device copy must not see this
    }
    for (size_t i = 0; i < host.size(); ++i) {
        INFO("upload ", i, " of ", host[i].numel(), " floats");
        CHECK(dev[i].to(Device::CPU).to_vector() == host[i].to_vector());
    }
}

TEST_CASE("GPU AdamW steps match the CPU's") {
    const uint64_t seed = base_seed() + 23;
    auto make = [](Device d) {
        ParamStore p;
        p.add("a", {7, 13});
        p.add("b", {5});
        p.add("c", {3, 4, 5});
        p.finalize(d);
        return p;
    };
    ParamStore pc = make(Device::CPU), pg = make(Device::CUDA);
    Tensor v0 = test::random_tensor({pc.total()}, seed, DType::F32);
    pc.flat_values().copy_(v0);
    pg.flat_values().copy_(v0);
    AdamWConfig cfg;
    cfg.lr = 1e-2;
    cfg.weight_decay = 0.05;
    AdamW oc(pc, cfg), og(pg, cfg);
    for (int step = 0; step < 3; ++step) {
        Tensor g = test::random_tensor({pc.total()}, seed + 1 + step, DType::F32);
        pc.flat_grads().copy_(g);
        pg.flat_grads().copy_(g);
        oc.step();
        og.step();
        INFO("step ", step + 1);
        CHECK(rel_l2(pg.flat_values(), pc.flat_values()) < 1e-6);
        CHECK(rel_l2(og.m(), oc.m()) < 1e-6);
        CHECK(rel_l2(og.v(), oc.v()) < 1e-6);
    }
}

TEST_CASE("GPU float32 <-> bfloat16 conversions equal the CPU's bit for bit; packed activations give its gradients") {
    const uint64_t seed = base_seed() + 41;
    std::vector<float> v = test::random_tensor({1001}, seed, DType::F32).to_vector();
    // Specials: NaNs, infinities, signed zeros, ties to even both ways, a value that rounds past the
    // largest bfloat16 (to infinity), subnormals.
    const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f,
                              -(1.0f + 0x1p-8f), FLT_MAX, 1e-40f, -1e-40f, 0x1.fffffep-127f};
    std::copy(std::begin(specials), std::end(specials), v.begin() + 100);
    Tensor h = Tensor::from_vector(v, {1001}), d = h.to(Device::CUDA);
    auto bits = [](const Tensor& t) {
        Tensor c = t.to(Device::CPU).contiguous();
        const uint16_t* p = c.data<uint16_t>();
        return std::vector<uint16_t>(p, p + c.numel());
    };
    auto fbits = [](const Tensor& t) {
        std::vector<float> f = t.to_vector();
        std::vector<uint32_t> u(f.size());
        std::memcpy(u.data(), f.data(), f.size() * 4);
        return u;
    };
    // Whole (vector path) and from an offset of one element (the unaligned, scalar path).
    for (int64_t off : {0, 1}) {
        CAPTURE(off);
        Tensor hb = h.narrow(0, off, 1001 - off).to(DType::BF16), db = d.narrow(0, off, 1001 - off).to(DType::BF16);
        REQUIRE(db.is_cuda());
        CHECK(bits(db) == bits(hb));
        Tensor hf = hb.to(DType::F32), df = db.to(DType::F32);
        REQUIRE(df.is_cuda());
        CHECK(fbits(df) == fbits(hf));
        CHECK(fbits(db.narrow(0, 1, 999 - off).to(DType::F32)) == fbits(hb.narrow(0, 1, 999 - off).to(DType::F32)));
    }

    // Under bf16, LayerNorm's backward reads its input rounded to bfloat16 on both devices (no
    // GEMM in between, so the policy changes nothing else): the GPU's gradients equal the CPU's,
    // and differ from the unrounded ones by far more than the tolerance.
    Tensor x = test::random_tensor({2, 8, 32, 32}, seed + 1, DType::F32), w = test::random_tensor({8}, seed + 2, DType::F32);
    Tensor R = test::random_tensor({2, 8, 32, 32}, seed + 3, DType::F32);
    auto grads = [&](Device dev) {
        return test::layer_norm_of_activation(x.to(dev), w, R, precision() == Precision::BF16);
    };
    const Precision saved = precision();
    set_precision(Precision::BF16);
    std::vector<Tensor> gpu = grads(Device::CUDA), cpu = grads(Device::CPU);
    set_precision(Precision::FP32);
    std::vector<Tensor> plain = grads(Device::CUDA);
    set_precision(saved);
    for (int i : {1, 2}) {  // dx, dw
        CAPTURE(i);
        CHECK(rel_l2(gpu[i], cpu[i]) < 1e-5);
        CHECK(rel_l2(gpu[i], plain[i]) > 1e-4);
    }
}

TEST_CASE("GPU runtime: copies, fills, strided copies and memory accounting") {
    const uint64_t seed = base_seed() + 31;
    Tensor h = test::random_tensor({3, 5, 7, 9}, seed, DType::F32);
    Tensor d = h.to(Device::CUDA);
    CHECK(d.to_vector() == h.to_vector());  // round trip is exact

    // Non-contiguous views: narrow, then contiguous() runs the strided-copy kernel.
    Tensor hv = h.narrow(1, 1, 3).narrow(3, 2, 5).contiguous();
    Tensor dv = d.narrow(1, 1, 3).narrow(3, 2, 5).contiguous();
    REQUIRE(dv.is_cuda());
    CHECK(dv.to_vector() == hv.to_vector());
    {  // the kernel's 64-bit index path (every tensor here is far below the int32 threshold)
        const ScopedLimit wide(cuda::set_index32_max, 0);
        CHECK(d.narrow(1, 1, 3).narrow(3, 2, 5).contiguous().to_vector() == hv.to_vector());
        CHECK(d.to(DType::F64).narrow(0, 1, 2).narrow(2, 1, 5).contiguous().to_double() ==
              h.narrow(0, 1, 2).narrow(2, 1, 5).to_double());
    }
    Tensor dst = Tensor::zeros({3, 5, 7, 9}, DType::F32, Device::CUDA);
    dst.narrow(2, 3, 4).copy_(d.narrow(2, 0, 4));
    Tensor ref = Tensor::zeros({3, 5, 7, 9});
    ref.narrow(2, 3, 4).copy_(h.narrow(2, 0, 4));
    CHECK(dst.to_vector() == ref.to_vector());

    // Into a strided GPU view from the host, from another dtype, and fills of a view; F64 views on
    // the GPU (the strided-copy kernel moves any element size). These once recursed without end.
    Tensor dst2 = Tensor::zeros({3, 5, 7, 9}, DType::F32, Device::CUDA);
    dst2.narrow(2, 3, 4).copy_(h.narrow(2, 0, 4));                       // host -> GPU view
    CHECK(dst2.to_vector() == ref.to_vector());
    dst2.narrow(2, 3, 4).copy_(h.narrow(2, 0, 4).to(DType::F64));        // F64 host -> F32 GPU view
    CHECK(dst2.to_vector() == ref.to_vector());
    dst2.narrow(3, 1, 2).fill_(-1.5);
    ref.narrow(3, 1, 2).fill_(-1.5);
    CHECK(dst2.to_vector() == ref.to_vector());
    Tensor d64 = h.to(DType::F64).to(Device::CUDA);
    CHECK(d64.narrow(1, 2, 2).contiguous().to_double() == h.narrow(1, 2, 2).to_double());
    CHECK(d64.narrow(3, 4, 3).to(Device::CPU).to_double() == h.narrow(3, 4, 3).to_double());
    CHECK(d.narrow(0, 1, 2).to(DType::F64).to_double() == h.narrow(0, 1, 2).to_double());

    Tensor f = Tensor::full({1001}, 2.5, DType::F32, Device::CUDA);
    for (float v : f.to_vector()) REQUIRE(v == 2.5f);
    CHECK(Tensor::full({}, -3.0, DType::F32, Device::CUDA).item() == -3.0);

    cuda::synchronize();
    const size_t before = cuda::memory_in_use();
    {
        Tensor big = Tensor::empty({1 << 20}, DType::F32, Device::CUDA);
        CHECK(cuda::memory_in_use() >= before + (4u << 20));
        CHECK(cuda::memory_peak() >= cuda::memory_in_use());
    }
    CHECK(cuda::memory_in_use() == before);
    cuda::reset_peak();
    CHECK(cuda::memory_peak() == cuda::memory_in_use());

    // A memory limit (--max-memory) caps what the engine holds: past it an allocation fails as out
    // of memory, naming the limit, and the available memory is what is left under it.
    {
        const ScopedMemoryLimit limit(Device::CUDA, before + (1u << 20));
        CHECK(memory_limit(Device::CUDA) == before + (1u << 20));
        CHECK(memory_available(Device::CUDA) <= (1u << 20));
        CHECK(memory_available(Device::CUDA, false) > (1u << 20));
        CHECK_THROWS_WITH_AS(Tensor::empty({1 << 19}, DType::F32, Device::CUDA), doctest::Contains("memory limit"),
                             std::exception);  // 2 MiB
        CHECK(cuda::try_alloc(2u << 20) == nullptr);
        CHECK(cuda::memory_in_use() == before);  // nothing held by the failed attempts
        {
            Tensor half = Tensor::empty({1 << 17}, DType::F32, Device::CUDA);  // 0.5 MiB fits
            CHECK(cuda::memory_in_use() == before + (1u << 19));
        }
    }
    CHECK(memory_limit(Device::CUDA) == 0);  // the scope's end put back "none"
    Tensor::empty({1 << 19}, DType::F32, Device::CUDA);  // no limit: fits again
}

TEST_CASE("GPU dense convolutions fall back to another cuDNN algorithm: no room for the workspace, or one refused") {
    const uint64_t seed = base_seed() + 37;
    INFO("seed ", seed);
    // Shapes no other case uses, so their algorithms are chosen here (once per shape).
    // no_room: the GPU calls run with no allocation allowed at all.
    auto check_conv = [&](const cpu::ConvShape& s, bool no_room) {
        Tensor x = test::random_tensor({s.B, s.Cin, s.H, s.W}, seed, DType::F32);
        Tensor w = test::random_tensor({s.Cout, s.Cin, s.KH, s.KW}, seed + 1, DType::F32);
        Tensor dy = test::random_tensor({s.B, s.Cout, s.Ho(), s.Wo()}, seed + 2, DType::F32);
        Tensor y = Tensor::zeros(dy.shape()), dx = Tensor::zeros(x.shape()), dw = Tensor::zeros(w.shape());
        cpu::conv2d_forward<float>(s, x.data<float>(), w.data<float>(), nullptr, y.data<float>());
        cpu::conv2d_backward<float>(s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(),
                                    dw.data<float>(), nullptr);
        Tensor xg = x.to(Device::CUDA), wg = w.to(Device::CUDA), dyg = dy.to(Device::CUDA);
        Tensor yg = Tensor::zeros(y.shape(), DType::F32, Device::CUDA), dxg = Tensor::zeros(x.shape(), DType::F32, Device::CUDA),
               dwg = Tensor::zeros(w.shape(), DType::F32, Device::CUDA);
        {
            const ScopedMemoryLimit limit(Device::CUDA, no_room ? cuda::memory_in_use() : 0);
            cuda::conv2d_forward(s, xg.data<float>(), wg.data<float>(), nullptr, yg.data<float>());
            cuda::conv2d_backward(s, xg.data<float>(), wg.data<float>(), dyg.data<float>(), dxg.data<float>(),
                                  dwg.data<float>(), nullptr);
        }
        CHECK(rel_l2(yg.to(Device::CPU), y) < kTol);
        CHECK(rel_l2(dxg.to(Device::CPU), dx) < kTol);
        CHECK(rel_l2(dwg.to(Device::CPU), dw) < kTol);
    };

    SUBCASE("the chosen algorithm's workspace cannot be allocated: the leanest runs") {
        const cpu::ConvShape s{3, 5, 9, 11, 7, 3, 3, 1, 1};
        check_conv(s, false);  // chosen now, with the whole memory free
        const int64_t before = cuda::cudnn_fallbacks();
        // Then with no allocation allowed at all: only an algorithm without workspace can run.
#ifdef AMS_CUDA_EMU
        check_conv(s, true);
        // The emulator's float32 choice needs 4 KiB of workspace (under tf32 / bf16 it needs none).
        if (!cuda::tensor_math_enabled()) CHECK(cuda::cudnn_fallbacks() - before == 3);
#else
        // Real cuDNN may have no deterministic algorithm without workspace for a direction (backward
        // filter's are not deterministic): then the call must fail with a clear out-of-memory
        // error, never run a non-deterministic one or give a wrong result.
        try {
            check_conv(s, true);
        } catch (const std::exception& e) {
            MESSAGE("no workspace-free deterministic algorithm: ", e.what());
            CHECK(std::string(e.what()).find("out of memory") != std::string::npos);
        }
#endif
        MESSAGE("fallbacks: ", cuda::cudnn_fallbacks() - before);
    }
    SUBCASE("cuDNN refuses to run the chosen algorithm: the next one runs, for good") {
        // Only the emulator can be told to refuse (its first choice: algorithm 0 under float32, the
        // tensor-op algorithm 1 otherwise); on a GPU this is one more comparison with the CPU.
        struct Refuse {
            Refuse() { setenv("CUDA_EMU_CUDNN_UNSUPPORTED", cuda::tensor_math_enabled() ? "1" : "0", 1); }
            ~Refuse() { unsetenv("CUDA_EMU_CUDNN_UNSUPPORTED"); }
        } refuse;
        const int64_t before = cuda::cudnn_fallbacks();
        const cpu::ConvShape s{2, 4, 7, 6, 3, 3, 3, 1, 1};
        check_conv(s, false);
        check_conv(s, false);  // the refused algorithm left the list: no second fallback
#ifdef AMS_CUDA_EMU
        CHECK(cuda::cudnn_fallbacks() - before == 3);
#else
        MESSAGE("fallbacks: ", cuda::cudnn_fallbacks() - before);
#endif
    }
}
