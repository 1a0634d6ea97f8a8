// Every CPU op against the PyTorch fixtures (forward in F32 and F64, gradients of sum(out * R)),
// and against finite differences in double precision on fresh inputs.
#include <array>
#include <map>

#include "helpers.h"
#include "kernels/cpu/cpu.h"

using namespace ams;
using test::rel_l2;

namespace {

using Inputs = std::vector<Tensor>;
using OpFn = std::function<Tensor(const Inputs&, const std::map<std::string, std::string>&)>;

int meta_int(const std::map<std::string, std::string>& m, const std::string& k) { return std::stoi(m.at(k)); }

// The mask a fused mask + PD fixture was drawn with (its hidden pixels come from tests/reference/philox.py).
ops::MaskDraw mask_draw(const std::map<std::string, std::string>& m) {
    auto i64 = [&](const char* k) { return (int64_t)std::stoll(m.at(k)); };
    return {std::stoull(m.at("seed")), std::stoull(m.at("stream")), std::stod(m.at("p")), meta_int(m, "k"),
            meta_int(m, "branch"), {i64("full_h"), i64("full_w"), i64("y0"), i64("x0")}};
}

struct OpCase {
    std::string fixture;
    std::vector<std::string> inputs;  // differentiable inputs, in call order
    std::vector<std::string> data;    // non-differentiable inputs appended after them (masks, targets)
    OpFn run;
};

std::vector<OpCase> cases() {
    auto conv = [](const Inputs& in, const std::map<std::string, std::string>& m) {
        return ops::conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), meta_int(m, "padding"), meta_int(m, "groups"));
    };
    return {
        {"conv2d_dense", {"x", "w", "b"}, {}, conv},
        {"conv2d_1x1", {"x", "w"}, {}, conv},
        {"conv2d_depthwise", {"x", "w"}, {}, conv},
        {"conv2d_depthwise_wide", {"x", "w", "b"}, {}, conv},
        {"conv2d_depthwise_row", {"x", "w", "b"}, {}, conv},
        {"conv2d_depthwise_col", {"x", "w"}, {}, conv},
        {"conv2d_grouped", {"x", "w", "b"}, {}, conv},
        {"conv2d_k5", {"x", "w", "b"}, {}, conv},
        {"conv2d_depthwise_3x5", {"x", "w", "b"}, {}, conv},
        {"conv2d_dense_1x3", {"x", "w"}, {}, conv},
        {"pixel_unshuffle", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::pixel_unshuffle(in[0], meta_int(m, "r")); }},
        {"pixel_shuffle", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::pixel_shuffle(in[0], meta_int(m, "r")); }},
        {"layernorm_biasfree", {"x", "w"}, {}, [](const Inputs& in, auto&) { return ops::layer_norm(in[0], in[1], Tensor(), false); }},
        {"layernorm_withbias", {"x", "w", "b"}, {}, [](const Inputs& in, auto&) { return ops::layer_norm(in[0], in[1], in[2], true); }},
        {"attention", {"qkv", "temperature"}, {}, [](const Inputs& in, auto& m) { return ops::attention(in[0], in[1], meta_int(m, "heads")); }},
        {"gelu_gate", {"x"}, {}, [](const Inputs& in, auto&) { return ops::gelu_gate(in[0]); }},
        {"reflect_pad", {"x"}, {}, [](const Inputs& in, auto& m) {
             return ops::reflect_pad(in[0], meta_int(m, "top"), meta_int(m, "bottom"), meta_int(m, "left"), meta_int(m, "right"));
         }},
        {"crop", {"x"}, {}, [](const Inputs& in, auto& m) {
             return ops::crop(in[0], meta_int(m, "top"), meta_int(m, "left"), meta_int(m, "height"), meta_int(m, "width"));
         }},
        {"dihedral_3", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::dihedral(in[0], meta_int(m, "k")); }},
        {"dihedral_5", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::dihedral(in[0], meta_int(m, "k")); }},
        {"dihedral_6", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::dihedral(in[0], meta_int(m, "k")); }},
        {"pd_down", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::pd_down(in[0], meta_int(m, "s")); }},
        {"pd_up", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::pd_up(in[0], meta_int(m, "s")); }},
        {"dwconv_gate", {"x", "w", "b"}, {}, [](const Inputs& in, auto&) { return ops::dwconv_gate(in[0], in[1], in[2]); }},
        // The training ops that recompute their middle tensor (engine/ops_recompute.cpp).
        {"norm_conv1x1", {"x", "ln_w", "ln_b", "w", "b"}, {}, [](const Inputs& in, auto&) {
             return ops::norm_conv1x1(in[0], in[1], in[2], true, in[3], in[4]);
         }},
        {"dwconv_attention", {"qkv", "w", "b", "temperature"}, {}, [](const Inputs& in, auto& m) {
             return ops::dwconv_attention(in[0], in[1], in[2], in[3], meta_int(m, "heads"));
         }},
        {"gate_conv1x1", {"x", "w_dw", "b_dw", "w", "b"}, {}, [](const Inputs& in, auto&) {
             return ops::gate_conv1x1(in[0], in[1], in[2], in[3], in[4]);
         }},
        {"masked_pd_down", {"x"}, {}, [](const Inputs& in, auto& m) { return ops::masked_pd_down(in[0], meta_int(m, "s"), mask_draw(m)); }},
        {"masked_pd_down_branch", {"x"}, {}, [](const Inputs& in, auto& m) {
             return ops::masked_pd_down(in[0], meta_int(m, "s"), mask_draw(m));
         }},
        {"pd_stitch", {"o0", "o1", "o2"}, {}, [](const Inputs& in, auto& m) {
             return ops::pd_stitch({in[0], in[1], in[2]}, meta_int(m, "s"), mask_draw(m));
         }},
        {"concat", {"a", "b"}, {}, [](const Inputs& in, auto&) { return ops::concat(in[0], in[1]); }},
        {"masked_l1", {"pred"}, {"target", "mask"}, [](const Inputs& in, auto&) { return ops::masked_l1(in[0], in[1], in[2]); }},
        {"tv_loss", {"x"}, {}, [](const Inputs& in, auto&) { return ops::tv_loss(in[0]); }},
    };
}

// Loads the case's inputs as `dtype`, differentiable ones requiring grad.
Inputs load_inputs(const OpCase& c, const SafetensorsFile& f, DType dtype, bool grad) {
    Inputs in;
    for (const auto& n : c.inputs) {
        Tensor t = f.get(n).to(dtype).clone();
        if (grad) t.requires_grad_(true);
        in.push_back(t);
    }
    for (const auto& n : c.data) in.push_back(f.get(n).to(dtype));
    return in;
}

// The case's forward and gradients, in F32 and F64, against its PyTorch fixture.
void check_fixture(const OpCase& c) {
    SafetensorsFile f = test::fixture(c.fixture);
    Tensor ref = f.get("out");
    for (DType dt : {DType::F32, DType::F64}) {
        const double fwd_tol = dt == DType::F64 ? 1e-10 : 1e-5, grad_tol = dt == DType::F64 ? 1e-9 : 1e-4;
        INFO(c.fixture, " in ", std::string(dtype_name(dt)));  // a const char* would print as an address
        Inputs in = load_inputs(c, f, dt, true);
        Tensor out = c.run(in, f.metadata);
        REQUIRE(out.shape() == ref.shape());
        CHECK(rel_l2(out, ref) < fwd_tol);
        Tensor R = f.get("R").to(dt);
        ops::dot(out, R.reshape(out.shape())).backward();
        for (size_t i = 0; i < c.inputs.size(); ++i) {
            INFO("gradient of ", c.inputs[i]);
            REQUIRE(in[i].grad().defined());
            CHECK(rel_l2(in[i].grad(), f.get("grad_" + c.inputs[i])) < grad_tol);
        }
    }
}

}  // namespace

TEST_CASE("ops match PyTorch fixtures: forward and gradients, F32 and F64") {
    for (const OpCase& c : cases())
        SUBCASE(c.fixture.c_str()) { check_fixture(c); }
}

TEST_CASE("conv2d in one-row im2col tiles matches the PyTorch fixtures") {
    // The default tile holds these small images whole; one row per tile exercises the tile seams
    // (padding rows, dW summed over tiles, dX rows shared by neighbouring tiles).
    struct Restore {
        int64_t prev;
        ~Restore() { cpu::set_conv_col_tile_bytes(prev); }
    } restore{cpu::set_conv_col_tile_bytes(1)};
    for (const OpCase& c : cases())
        if (c.fixture.rfind("conv2d", 0) == 0) SUBCASE(c.fixture.c_str()) { check_fixture(c); }
}

TEST_CASE("ops: gradients match finite differences in double precision on fresh inputs") {
    uint64_t seed = 1234;
    for (const OpCase& c : cases()) {
        SUBCASE(c.fixture.c_str()) {
            SafetensorsFile f = test::fixture(c.fixture);
            Inputs diff, data;
            for (const auto& n : c.inputs) diff.push_back(test::random_tensor(f.get(n).shape(), ++seed, DType::F64, 0.3));
            for (const auto& n : c.data) data.push_back(f.get(n).to(DType::F64));
            if (c.fixture == "attention") diff[1] = test::random_tensor(diff[1].shape(), ++seed, DType::F64, 1.0, 0.2);
            if (c.fixture == "dwconv_attention") diff[3] = test::random_tensor(diff[3].shape(), ++seed, DType::F64, 1.0, 0.2);
            test::gradcheck([&](const Inputs& in) {
                Inputs all = in;
                all.insert(all.end(), data.begin(), data.end());
                return c.run(all, f.metadata);
            }, diff, 1e-6);
        }
    }
}

TEST_CASE("masked_pd_down: hidden flags and the mask ops draw the pixels philox.py draws") {
    for (const char* name : {"masked_pd_down", "masked_pd_down_branch"}) {
        INFO(name);
        SafetensorsFile f = test::fixture(name);
        const ops::MaskDraw m = mask_draw(f.metadata);
        Tensor hidden;
        ops::masked_pd_down(f.get("x"), meta_int(f.metadata, "s"), m, &hidden);
        const std::vector<double> want = f.get("hidden").to_double();
        CHECK(hidden.to_double() == want);
        const Shape ms = f.get("hidden").shape();
        Tensor mask = m.k == 0 ? ops::random_mask(ms, m.p, m.seed, m.stream, Device::CPU, m.win)
                               : ops::branch_mask(ms, m.k, m.branch, m.seed, m.stream, Device::CPU, m.win);
        CHECK(mask.to_double() == want);
    }
}

TEST_CASE("ops: activation gradients accumulate into a pre-filled buffer") {
    // Convention (engine/autograd.h): backward adds into existing gradient buffers.
    Tensor x = test::random_tensor({2, 4, 5, 6}, 7, DType::F64);
    x.requires_grad_(true);
    autograd::grad_buffer(x).fill_(3.0);
    Tensor R = test::random_tensor({2, 2, 5, 6}, 8, DType::F64);
    ops::dot(ops::gelu_gate(x), R).backward();
    // Expected: 3 + d/dx of the first run, so a second identical run adds the same again.
    std::vector<double> g1 = x.grad().to_double();
    ops::dot(ops::gelu_gate(x), R).backward();
    std::vector<double> g2 = x.grad().to_double();
    double max_err = 0;
    for (size_t i = 0; i < g1.size(); ++i) max_err = std::max(max_err, std::fabs((g2[i] - g1[i]) - (g1[i] - 3.0)));
    CHECK(max_err < 1e-12);
}

TEST_CASE("ops: bad shapes give clear errors") {
    Tensor x = Tensor::zeros({1, 3, 8, 8});
    CHECK_THROWS_WITH_AS(ops::conv2d(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), 1), doctest::Contains("does not fit"), Error);
    CHECK_THROWS_AS(ops::pd_down(Tensor::zeros({1, 3, 7, 8}), 2), Error);
    CHECK_THROWS_AS(ops::attention(Tensor::zeros({1, 9, 4, 4}), Tensor::zeros({2, 1, 1}), 2), Error);
    CHECK_THROWS_AS(ops::reflect_pad(Tensor::zeros({1, 1, 3, 3}), 0, 3, 0, 0), Error);
    CHECK_THROWS_AS(ops::add(x, Tensor::zeros({1, 3, 8, 7})), Error);
}

TEST_CASE("random masks: same draws for the same key, branch masks partition the pixels") {
    Shape s{3, 1, 17, 13};
    Tensor a = ops::random_mask(s, 0.5, 42, rng::make_stream(rng::kMask, 5), Device::CPU);
    Tensor b = ops::random_mask(s, 0.5, 42, rng::make_stream(rng::kMask, 5), Device::CPU);
    Tensor c = ops::random_mask(s, 0.5, 42, rng::make_stream(rng::kMask, 6), Device::CPU);
    CHECK(rel_l2(a, b) == 0.0);
    CHECK(rel_l2(a, c) > 0.1);
    for (int k = 2; k <= 4; ++k) {
        std::vector<double> sum(a.numel(), 0.0);
        for (int br = 0; br < k; ++br) {
            std::vector<double> m = ops::branch_mask(s, k, br, 7, 9, Device::CPU).to_double();
            double frac = 0;
            for (size_t i = 0; i < m.size(); ++i) { sum[i] += m[i]; frac += m[i]; }
            frac /= m.size();
            CHECK(std::fabs(frac - 1.0 / k) < 0.06);
        }
        for (double v : sum) REQUIRE(v == 1.0);
    }
}

TEST_CASE("random masks: a window draws exactly what the whole mask draws there") {
    // Tiled inference relies on this: a tile's masks are the same pixels of the whole image's.
    const int64_t B = 2, FH = 23, FW = 19;
    for (auto [h, w, y0, x0] : {std::array<int64_t, 4>{7, 5, 3, 11}, {23, 19, 0, 0}, {1, 1, 22, 18}, {9, 19, 14, 0}}) {
        INFO(h, "x", w, " at ", y0, ",", x0);
        ops::MaskWindow win{FH, FW, y0, x0};
        Tensor whole_r = ops::random_mask({B, 1, FH, FW}, 0.3, 5, 6, Device::CPU);
        Tensor part_r = ops::random_mask({B, 1, h, w}, 0.3, 5, 6, Device::CPU, win);
        CHECK(rel_l2(part_r, ops::crop(whole_r, (int)y0, (int)x0, (int)h, (int)w)) == 0.0);
        for (int br = 0; br < 3; ++br) {
            Tensor whole_b = ops::branch_mask({B, 1, FH, FW}, 3, br, 5, 6, Device::CPU);
            Tensor part_b = ops::branch_mask({B, 1, h, w}, 3, br, 5, 6, Device::CPU, win);
            CHECK(rel_l2(part_b, ops::crop(whole_b, (int)y0, (int)x0, (int)h, (int)w)) == 0.0);
        }
    }
    // A window must start inside its whole mask.
    CHECK_THROWS_WITH_AS(ops::branch_mask({1, 1, 4, 4}, 2, 0, 1, 1, Device::CPU, {4, 4, 4, 0}),
                         doctest::Contains("outside"), Error);
}

TEST_CASE("dihedral: all 8 flips/transposes against direct indexing, inverses, gradients") {
    Tensor x = test::random_tensor({2, 3, 5, 7}, 31);
    std::vector<double> xv = x.to_double();
    for (int k = 0; k < 8; ++k) {
        INFO("k ", k);
        Tensor y = ops::dihedral(x, k);
        const bool tr = k & 4;
        REQUIRE(y.shape() == Shape{2, 3, tr ? 7 : 5, tr ? 5 : 7});
        std::vector<double> yv = y.to_double();
        // Independent formulation: (r, c) of x goes to the flipped (r', c'), then to (c', r') if transposed.
        for (int p = 0; p < 6; ++p)
            for (int r = 0; r < 5; ++r)
                for (int c = 0; c < 7; ++c) {
                    int r2 = (k & 2) ? 4 - r : r, c2 = (k & 1) ? 6 - c : c;
                    int64_t dst = tr ? (p * 7 + c2) * 5 + r2 : (p * 5 + r2) * 7 + c2;
                    REQUIRE(yv[dst] == xv[(p * 5 + r) * 7 + c]);
                }
        CHECK(rel_l2(ops::dihedral(y, ops::dihedral_inverse(k)), x) == 0.0);
        test::gradcheck([k](const Inputs& in) { return ops::dihedral(in[0], k); }, {x});
    }
    CHECK_THROWS_AS(ops::dihedral(x, 8), Error);
}

TEST_CASE("ops without a fixture of their own: gradients match finite differences (double)") {
    Tensor a = test::random_tensor({2, 3, 5, 4}, 21), b = test::random_tensor({2, 3, 5, 4}, 22);
    Tensor m = ops::random_mask({2, 1, 5, 4}, 0.5, 3, 4, Device::CPU).to(DType::F64);
    test::gradcheck([](const Inputs& in) { return ops::add(in[0], in[1]); }, {a, b});
    test::gradcheck([](const Inputs& in) { return ops::scale(in[0], -2.5); }, {a});
    test::gradcheck([&](const Inputs& in) { return ops::mask_mul(in[0], m); }, {a});
    test::gradcheck([](const Inputs& in) { return ops::l1_loss(in[0], in[1]); }, {a, b});
    test::gradcheck([](const Inputs& in) { return ops::dot(in[0], in[1]); }, {a, b});
    test::gradcheck([](const Inputs& in) { return ops::reshape(in[0], {6, 20}); }, {a});
    // Forward values against direct loops.
    std::vector<double> av = a.to_double(), bv = b.to_double(), mv = m.to_double();
    std::vector<double> mm = ops::mask_mul(a, m).to_double();
    double l1 = 0, d = 0;
    for (size_t i = 0; i < av.size(); ++i) {
        size_t bi = i / 60, p = i % 20;
        REQUIRE(mm[i] == av[i] * mv[bi * 20 + p]);
        l1 += std::fabs(av[i] - bv[i]) / av.size();
        d += av[i] * bv[i];
    }
    CHECK(ops::l1_loss(a, b).item() == doctest::Approx(l1).epsilon(1e-12));
    CHECK(ops::dot(a, b).item() == doctest::Approx(d).epsilon(1e-12));
}

TEST_CASE("gelu_gate in F32 (vectorised erf) matches F64 (std::erf) over [-12, 12], forward and backward") {
    // The fixtures sample only around zero; this covers the tails, where the float erf and exp are
    // clamped, and the cancellation near zero.
    const int64_t n = 4801;  // x1 from -12 to 12 in steps of 0.005; x2 = 1 - x1 / 24
    std::vector<double> v(2 * n);
    for (int64_t i = 0; i < n; ++i) v[i] = -12.0 + 0.005 * i, v[n + i] = 1.0 - v[i] / 24;
    std::vector<double> y[2], g[2];
    for (DType dt : {DType::F64, DType::F32}) {
        Tensor x = Tensor::from_vector(v, {1, 2, 1, n}).to(dt).clone();
        x.requires_grad_(true);
        Tensor out = ops::gelu_gate(x);
        ops::dot(out, Tensor::full(out.shape(), 1.0, dt)).backward();
        y[dt == DType::F32] = out.to_double();
        g[dt == DType::F32] = x.grad().to_double();
    }
    double max_y = 0, max_g = 0;
    for (size_t i = 0; i < y[0].size(); ++i) max_y = std::max(max_y, std::fabs(y[1][i] - y[0][i]) / std::max(1.0, std::fabs(y[0][i])));
    for (size_t i = 0; i < g[0].size(); ++i) max_g = std::max(max_g, std::fabs(g[1][i] - g[0][i]) / std::max(1.0, std::fabs(g[0][i])));
    INFO("max error: forward ", max_y, ", backward ", max_g);
    CHECK(max_y < 2e-6);
    CHECK(max_g < 2e-6);
}

TEST_CASE("dwconv_gate equals gelu_gate(depthwise conv) (PyTorch-checked ops), forward and gradients") {
    for (DType dt : {DType::F32, DType::F64})
        for (Shape xs : {Shape{3, 10, 7, 11}, Shape{1, 4, 1, 9}, Shape{2, 6, 8, 1}, Shape{2, 84, 16, 16}})
            for (bool bias : {true, false}) {
                INFO(shape_str(xs), " bias ", bias, " ", dtype_name(dt));
                const int64_t C2 = xs[1];
                Tensor x = test::random_tensor(xs, 5, dt), w = test::random_tensor({C2, 1, 3, 3}, 6, dt, 0, 0.5);
                Tensor b = bias ? test::random_tensor({C2}, 7, dt, 0, 0.3) : Tensor();
                Tensor R = test::random_tensor({xs[0], C2 / 2, xs[2], xs[3]}, 8, dt);
                auto grads = [&](bool fused) {
                    std::vector<Tensor> in = {x.clone(), w.clone()};
                    if (bias) in.push_back(b.clone());
                    for (Tensor& t : in) t.requires_grad_(true);
                    Tensor bb = bias ? in[2] : Tensor();
                    Tensor y = fused ? ops::dwconv_gate(in[0], in[1], bb)
                                     : ops::gelu_gate(ops::conv2d(in[0], in[1], bb, 1, (int)C2));
                    ops::dot(y, R).backward();
                    std::vector<Tensor> r = {y};
                    for (Tensor& t : in) r.push_back(t.grad());
                    return r;
                };
                std::vector<Tensor> f = grads(true), s = grads(false);
                const double tol = dt == DType::F64 ? 1e-13 : 1e-6;
                for (size_t i = 0; i < f.size(); ++i) {
                    INFO("output 0, then gradients of x, w, b: ", i);
                    CHECK(rel_l2(f[i], s[i]) <= tol);
                }
            }
    Tensor x = test::random_tensor({2, 6, 5, 7}, 9, DType::F64), w = test::random_tensor({6, 1, 3, 3}, 10, DType::F64, 0, 0.5);
    Tensor b = test::random_tensor({6}, 11, DType::F64);
    test::gradcheck([](const Inputs& in) { return ops::dwconv_gate(in[0], in[1], in[2]); }, {x, w, b});
    CHECK_THROWS_WITH_AS(ops::dwconv_gate(x, Tensor::zeros({6, 1, 5, 5}, DType::F64), Tensor()),
                         doctest::Contains("expected (6, 1, 3, 3)"), Error);
}

TEST_CASE("tv_loss with no difference cell is 0, never 0/0") {
    for (Shape s : {Shape{0, 3, 4, 4}, Shape{2, 3, 1, 5}, Shape{2, 3, 5, 1}})
        CHECK(ops::tv_loss(Tensor::zeros(s)).item() == 0.0);
}

TEST_CASE("ffn_residual_inference matches the separate ops (LayerNorm, 1x1, dwconv 3x3, GELU gate, 1x1, add)") {
    // Odd shapes, one-row tiles and the default tile, a batch of 1 (split into strips) and of 3,
    // single-row and single-column images, with and without biases, both LayerNorm forms.
    struct Case {
        Shape x;
        int64_t hidden;
        bool bias, ln_with_bias;
    };
    const Case cases[] = {{{3, 5, 7, 11}, 6, true, true}, {{1, 4, 13, 9}, 5, false, false},
                          {{2, 3, 1, 6}, 3, true, false}, {{2, 3, 6, 1}, 2, false, true}};
    uint64_t seed = 500;
    for (const Case& k : cases)
        for (int64_t tile : {int64_t(1), int64_t(8) << 20})
            for (DType dt : {DType::F64, DType::F32}) {
                const int64_t C = k.x[1], h = k.hidden;
                auto rnd = [&](const Shape& s, double mean = 0.0) { return test::random_tensor(s, ++seed, dt, mean, 0.4); };
                Tensor x = rnd(k.x), lw = rnd({C}, 1.0), lb = rnd({C}), wi = rnd({2 * h, C, 1, 1}), wd = rnd({2 * h, 1, 3, 3}),
                       wo = rnd({C, h, 1, 1});
                Tensor bi = k.bias ? rnd({2 * h}) : Tensor(), bd = k.bias ? rnd({2 * h}) : Tensor(),
                       bo = k.bias ? rnd({C}) : Tensor();
                autograd::NoGradGuard ng;
                Tensor ref = ops::add(x, ops::conv2d(ops::gelu_gate(ops::conv2d(ops::conv2d(ops::layer_norm(x, lw, lb, k.ln_with_bias),
                                                                                           wi, bi, 0, 1),
                                                                                wd, bd, 1, (int)(2 * h))),
                                                     wo, bo, 0, 1));
                int64_t prev = cpu::set_fused_tile_bytes(tile);
                Tensor out = ops::ffn_residual_inference(x, lw, lb, k.ln_with_bias, wi, bi, wd, bd, wo, bo);
                cpu::set_fused_tile_bytes(prev);
                INFO(shape_str(k.x), " hidden ", h, " tile bytes ", tile, " ", std::string(dtype_name(dt)));
                REQUIRE(out.shape() == ref.shape());
                CHECK(rel_l2(out, ref) < (dt == DType::F64 ? 1e-13 : 1e-6));
            }
}

TEST_CASE("norm_project_dw_inference matches the separate ops (LayerNorm, 1x1, dwconv 3x3)") {
    struct Case {
        Shape x;
        int64_t P;
        bool bias, ln_with_bias;
    };
    const Case cases[] = {{{3, 5, 7, 11}, 15, true, true}, {{1, 4, 13, 9}, 12, false, false},
                          {{2, 3, 1, 6}, 9, true, false}, {{2, 3, 6, 1}, 9, false, true}};
    uint64_t seed = 900;
    for (const Case& k : cases)
        for (int64_t tile : {int64_t(1), int64_t(8) << 20})
            for (DType dt : {DType::F64, DType::F32}) {
                const int64_t C = k.x[1];
                auto rnd = [&](const Shape& s, double mean = 0.0) { return test::random_tensor(s, ++seed, dt, mean, 0.4); };
                Tensor x = rnd(k.x), lw = rnd({C}, 1.0), lb = rnd({C}), wi = rnd({k.P, C, 1, 1}), wd = rnd({k.P, 1, 3, 3});
                Tensor bi = k.bias ? rnd({k.P}) : Tensor(), bd = k.bias ? rnd({k.P}) : Tensor();
                autograd::NoGradGuard ng;
                Tensor ref = ops::conv2d(ops::conv2d(ops::layer_norm(x, lw, lb, k.ln_with_bias), wi, bi, 0, 1), wd, bd, 1,
                                         (int)k.P);
                int64_t prev = cpu::set_fused_tile_bytes(tile);
                Tensor out = ops::norm_project_dw_inference(x, lw, lb, k.ln_with_bias, wi, bi, wd, bd);
                cpu::set_fused_tile_bytes(prev);
                INFO(shape_str(k.x), " P ", k.P, " tile bytes ", tile, " ", std::string(dtype_name(dt)));
                REQUIRE(out.shape() == ref.shape());
                CHECK(rel_l2(out, ref) < (dt == DType::F64 ? 1e-13 : 1e-6));
            }
}

TEST_CASE("ffn_residual_inference refuses inputs that need a gradient and bad weight shapes") {
    Tensor x = Tensor::zeros({1, 4, 5, 5}), lw = Tensor::full({4}, 1.0), wi = Tensor::zeros({6, 4, 1, 1}),
           wd = Tensor::zeros({6, 1, 3, 3}), wo = Tensor::zeros({4, 3, 1, 1});
    CHECK_NOTHROW(ops::ffn_residual_inference(x, lw, Tensor(), false, wi, Tensor(), wd, Tensor(), wo, Tensor()));
    CHECK_THROWS_WITH_AS(ops::ffn_residual_inference(x, lw, Tensor(), false, wi, Tensor(), Tensor::zeros({6, 1, 5, 5}), Tensor(), wo, Tensor()),
                         doctest::Contains("dwconv weight"), Error);
    Tensor xg = x.clone();
    xg.requires_grad_(true);
    CHECK_THROWS_WITH_AS(ops::ffn_residual_inference(xg, lw, Tensor(), false, wi, Tensor(), wd, Tensor(), wo, Tensor()),
                         doctest::Contains("inference only"), Error);
}
