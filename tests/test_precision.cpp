// The precision policies (engine/precision.h) on the CPU: the operand rounding against independent
// converters (PyTorch's bfloat16; numpy's float16, which keeps TF32's 10 mantissa bits), and float
// GEMMs and convolutions rounding exactly the operands the GPU's libraries would: bfloat16 in the
// cuBLAS products (1x1 convolutions), TF32 in cuDNN's (dense, grouped); double never. Under bf16,
// the activations a backward reads are kept in bfloat16 (autograd::Saved).
#include <cfloat>
#include <cstring>

#include "engine/precision.h"
#include "helpers.h"
#include "kernels/cpu/cpu.h"

using namespace ams;

namespace {

struct PolicyScope {
    Precision saved = precision();
    explicit PolicyScope(Precision p) { set_precision(p); }
    ~PolicyScope() { set_precision(saved); }
};

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// Every value of `in` rounded to `bits` mantissa bits must equal `want` bit for bit.
void check_rounding(const Tensor& in, const Tensor& want, int bits) {
    const float* x = in.data<float>();
    const float* y = want.data<float>();
    int bad = 0;
    for (int64_t i = 0; i < in.numel(); ++i)
        if (bits_of(round_mantissa(x[i], bits)) != bits_of(y[i]) && ++bad <= 5)
            FAIL_CHECK(bits, " bits: ", x[i], " -> ", round_mantissa(x[i], bits), ", want ", y[i]);
    CHECK(bad == 0);
}

Tensor rounded(const Tensor& t, int bits) {
    Tensor r = t.clone();
    float* p = r.data<float>();
    for (int64_t i = 0; i < r.numel(); ++i) p[i] = round_mantissa(p[i], bits);
    return r;
}

// Row-major rows x cols with leading dimension ld (padding filled too).
std::vector<float> matrix(int64_t rows, int64_t ld, uint64_t seed) {
    Tensor t = test::random_tensor({rows * ld}, seed, DType::F32);
    return std::vector<float>(t.data<float>(), t.data<float>() + rows * ld);
}

}  // namespace

TEST_CASE("operand rounding matches PyTorch's bfloat16 and numpy's float16 mantissa") {
    auto f = test::fixture("rounding");
    check_rounding(f.get("x"), f.get("bf16"), 7);
    check_rounding(f.get("tf32_in"), f.get("tf32"), 10);
    CHECK(round_mantissa(INFINITY, 7) == INFINITY);
    CHECK(std::isnan(round_mantissa(NAN, 7)));
    CHECK(round_mantissa(1.0f + 0x1p-20f, 23) == 1.0f + 0x1p-20f);
    // The tensor conversion (the kernel autograd packs activations with) against PyTorch's too,
    // and against float_to_bf16 on the values the fixture lacks.
    check_rounding(f.get("x").to(DType::BF16).to(DType::F32), f.get("bf16"), 23);
    const std::vector<float> specials = {NAN, -NAN, INFINITY, -INFINITY, -0.0f, FLT_MAX, 1e-40f, -1e-40f};
    Tensor s = Tensor::from_vector(specials, {8}).to(DType::BF16), back = s.to(DType::F32);
    for (int i = 0; i < 8; ++i) {
        CAPTURE(specials[i]);
        CHECK(s.data<uint16_t>()[i] == float_to_bf16(specials[i]));
        CHECK(bits_of(back.data<float>()[i]) == bits_of(bf16_to_float(float_to_bf16(specials[i]))));
    }
}

TEST_CASE("the precision policy: names, errors, mantissa bits per library") {
    CHECK(parse_precision("bf16", "--precision") == Precision::BF16);
    CHECK(parse_precision("tf32", "--precision") == Precision::TF32);
    CHECK(parse_precision("fp32", "--precision") == Precision::FP32);
    CHECK_THROWS_WITH_AS(parse_precision("fp16", "--precision"), doctest::Contains("--precision"), Error);
    CHECK_THROWS_WITH_AS(parse_precision("fp16", "--precision"), doctest::Contains("'fp16'"), Error);
    const struct {
        Precision p;
        int product, conv;
    } table[] = {{Precision::FP32, 23, 23}, {Precision::TF32, 10, 10}, {Precision::BF16, 7, 10}};
    for (const auto& t : table) {
        PolicyScope scope(t.p);
        CHECK(product_mantissa_bits() == t.product);
        CHECK(conv_mantissa_bits() == t.conv);
    }
}

TEST_CASE("float GEMMs round both operands under the policy; double GEMMs never") {
    // Odd sizes, padded leading dimensions, every transpose, alpha and beta. N = 70,000 with K = 61
    // passes the rounded copies' column block (4M elements), so B is rounded in two blocks: with B
    // as it is (case 0) and transposed (case 3).
    for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
        for (cpu::GemmKind kind : {cpu::GemmKind::Product, cpu::GemmKind::Conv})
            for (int case_ = 0; case_ < 4; ++case_) {
                const bool ta = case_ & 1, tb = case_ & 2;
                const int64_t M = 7, K = 61, N = (case_ == 0 || case_ == 3) && p == Precision::BF16 ? 70000 : 13;
                const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
                std::vector<float> A = matrix(ta ? K : M, lda, 1), B = matrix(tb ? N : K, ldb, 2);
                std::vector<float> C = matrix(M, ldc, 3), C0 = C;
                PolicyScope scope(p);
                const int bits = kind == cpu::GemmKind::Conv ? conv_mantissa_bits() : product_mantissa_bits();
                cpu::gemm<float>(ta, tb, M, N, K, 1.5f, A.data(), lda, B.data(), ldb, 0.5f, C.data(), ldc, kind);
                double worst = 0, worst_unrounded = 0;
                for (int64_t i = 0; i < M; ++i)
                    for (int64_t j = 0; j < N; ++j) {
                        double s = 0, s_plain = 0, scale = 0;
                        for (int64_t k = 0; k < K; ++k) {
                            const float a = ta ? A[k * lda + i] : A[i * lda + k];
                            const float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                            s += (double)round_mantissa(a, bits) * round_mantissa(b, bits);
                            s_plain += (double)a * b;
                            scale += std::abs((double)a * b);
                        }
                        const double c = C[i * ldc + j], base = 0.5 * C0[i * ldc + j];
                        worst = std::max(worst, std::abs(c - base - 1.5 * s) / (1.5 * scale));
                        worst_unrounded = std::max(worst_unrounded, std::abs(c - base - 1.5 * s_plain) / (1.5 * scale));
                    }
                CAPTURE(precision_name(p));
                CAPTURE((int)kind);
                CAPTURE(case_);
                CHECK(worst < 1e-6);  // float accumulation of the rounded operands
                if (bits < 23) CHECK(worst_unrounded > 1e-5);  // the rounding is visible: this test can fail
            }
    // Long products: K = 12,000 > the copies' block for M = 400 rows (10,485), so K runs in two
    // blocks, accumulated; both layouts of each operand.
    for (int case_ = 0; case_ < 2; ++case_) {
        const bool ta = case_ == 1, tb = case_ == 0;
        const int64_t M = 400, K = 12000, N = 5;
        const int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 1, ldc = N;
        std::vector<float> A = matrix(ta ? K : M, lda, 4), B = matrix(tb ? N : K, ldb, 5), C = matrix(M, ldc, 6), C0 = C;
        PolicyScope scope(Precision::BF16);
        cpu::gemm<float>(ta, tb, M, N, K, 1.5f, A.data(), lda, B.data(), ldb, 0.5f, C.data(), ldc);
        double worst = 0;
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double s = 0, scale = 0;
                for (int64_t k = 0; k < K; ++k) {
                    const float a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                    s += (double)round_mantissa(a, 7) * round_mantissa(b, 7);
                    scale += std::abs((double)a * b);
                }
                worst = std::max(worst, std::abs(C[i * ldc + j] - 0.5 * C0[i * ldc + j] - 1.5 * s) / (1.5 * scale));
            }
        CAPTURE(case_);
        CHECK(worst < 1e-6);
    }
    PolicyScope scope(Precision::BF16);
    std::vector<double> A = {0.1, 0.2, 0.3}, B = {1.0 / 3, 2.0 / 3, 0.7}, C = {0};
    cpu::gemm<double>(false, false, 1, 1, 3, 1.0, A.data(), 3, B.data(), 1, 0.0, C.data(), 1);
    CHECK(C[0] == doctest::Approx(0.1 / 3 + 0.4 / 3 + 0.21).epsilon(1e-15));
}

TEST_CASE("convolutions under bf16: 1x1 with bfloat16 operands, dense and grouped with TF32, every gradient") {
    struct Conv {
        const char* name;
        Shape x, w;
        int pad, groups, bits;
    } convs[] = {{"1x1", {2, 5, 7, 9}, {6, 5, 1, 1}, 0, 1, 7},
                 {"dense 3x3", {2, 5, 7, 9}, {6, 5, 3, 3}, 1, 1, 10},
                 {"grouped 3x3", {2, 6, 7, 9}, {4, 3, 3, 3}, 1, 2, 10}};
    for (const Conv& c : convs) {
        CAPTURE(c.name);
        Tensor x = test::random_tensor(c.x, 11, DType::F32), w = test::random_tensor(c.w, 12, DType::F32);
        Tensor b = test::random_tensor({c.w[0]}, 13, DType::F32);
        auto run = [&](const Tensor& xi, const Tensor& wi, const Tensor& r) {
            Tensor xg = xi.clone(), wg = wi.clone();
            xg.requires_grad_(true);
            wg.requires_grad_(true);
            Tensor y = ops::conv2d(xg, wg, b, c.pad, c.groups);
            ops::dot(y, r).backward();
            return std::vector<Tensor>{y, xg.grad(), wg.grad()};
        };
        Tensor R = test::random_tensor({c.x[0], c.w[0], c.x[2], c.x[3]}, 14, DType::F32);
        std::vector<Tensor> policy, want, plain;
        {
            PolicyScope scope(Precision::BF16);
            policy = run(x, w, R);
        }
        {
            PolicyScope scope(Precision::FP32);  // whatever AMS_TF32 / AMS_BF16 the process started with
            // dy = R reaches the backward GEMMs, which round it as well.
            want = run(rounded(x, c.bits), rounded(w, c.bits), rounded(R, c.bits));
            plain = run(x, w, R);
        }
        const char* what[] = {"output", "dx", "dw"};
        for (int i = 0; i < 3; ++i) {
            CAPTURE(what[i]);
            CHECK(test::rel_l2(policy[i], want[i]) < 1e-6);
            CHECK(test::rel_l2(policy[i], plain[i]) > 1e-5);  // the policy changed something
        }
    }
}

TEST_CASE("under bf16 a backward keeps the activations it reads in bfloat16, parameters as they are") {
    // (2, 8, 32, 32): 16,384 elements, the smallest activation that is packed.
    Tensor x = test::random_tensor({2, 8, 32, 32}, 21, DType::F32);
    Tensor w = test::random_tensor({8}, 22, DType::F32), R = test::random_tensor({2, 8, 32, 32}, 23, DType::F32);
    // LayerNorm runs no GEMM, so the policy changes only what its backward reads.
    std::vector<Tensor> packed, want, plain;
    {
        PolicyScope scope(Precision::BF16);
        packed = test::layer_norm_of_activation(x, w, R, true);  // only the bfloat16 copy is left
    }
    {
        PolicyScope scope(Precision::FP32);
        want = test::layer_norm_of_activation(rounded(x, 7), w, R, false);  // the backward of the rounded input
        plain = test::layer_norm_of_activation(x, w, R, false);
    }
    CHECK(test::rel_l2(packed[0], plain[0]) == 0);  // the forward is untouched
    for (int i : {1, 2}) {
        CAPTURE(i);
        CHECK(test::rel_l2(packed[i], want[i]) < 1e-6);
        CHECK(test::rel_l2(packed[i], plain[i]) > 1e-5);
    }
    // A parameter, or an input below the size, is kept as it is.
    PolicyScope scope(Precision::BF16);
    CHECK_FALSE(autograd::Saved(test::random_tensor({16384}, 24, DType::F32).requires_grad_(true)).packed());
    CHECK_FALSE(autograd::Saved(test::random_tensor({16383}, 24, DType::F32)).packed());
    CHECK(autograd::Saved(test::random_tensor({16384}, 24, DType::F32)).packed());
    CHECK_FALSE(autograd::Saved(test::random_tensor({16384}, 24, DType::F64)).packed());
}
