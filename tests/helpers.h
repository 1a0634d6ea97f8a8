// Shared test utilities: fixtures written by tests/reference (PyTorch), error norms, random
// tensors, and finite-difference gradient checks in double precision.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"

namespace ams::test {

inline std::string source_path(const std::string& rel) { return std::string(AMS_SOURCE_DIR) + "/" + rel; }
inline std::string data_path(const std::string& rel) { return std::string(AMS_SOURCE_DIR) + "/../shared/data/" + rel; }

inline SafetensorsFile fixture(const std::string& name) {
    return load_safetensors(source_path("tests/fixtures/" + name + ".safetensors"));
}

// ||a - b|| / max(||b||, tiny); NaN anywhere gives +inf so it never passes.
inline double rel_l2(const Tensor& a, const Tensor& b) {
    REQUIRE(a.numel() == b.numel());
    std::vector<double> x = a.to_double(), y = b.to_double();
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        if (std::isnan(x[i]) || std::isnan(y[i])) return INFINITY;
        num += (x[i] - y[i]) * (x[i] - y[i]);
        den += y[i] * y[i];
    }
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// Normal-ish random values (sum of uniforms) from the counter-based generator.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype = DType::F64, double mean = 0,
                            double scale = 1) {
    Tensor t = Tensor::empty(shape, DType::F64);
    double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) {
        double s = 0;
        for (int k = 0; k < 4; ++k) s += rng::draw_uniform(seed, rng::kTest, i * 4 + k);
        p[i] = mean + scale * (s - 2.0) * std::sqrt(3.0);
    }
    return t.to(dtype);
}

// Checks the autograd gradients of f(inputs) against central finite differences of
// L = sum(f(inputs) * R) in double precision. Inputs must be F64; up to `max_probe` elements of
// each input are probed (spread over the tensor).
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      double tol = 1e-6, int max_probe = 40, double h = 1e-6) {
    for (Tensor& t : inputs) {
        t = t.clone();
        t.requires_grad_(true);
    }
    Tensor out = f(inputs);
    Tensor R = random_tensor(out.shape(), 999, DType::F64);
    Tensor loss = ops::dot(out, R);
    loss.backward();
    autograd::NoGradGuard ng;
    for (size_t k = 0; k < inputs.size(); ++k) {
        Tensor& x = inputs[k];
        if (!x.grad().defined()) FAIL_CHECK("input ", k, " got no gradient");
        std::vector<double> analytic = x.grad().to_double();
        int64_t n = x.numel(), step = std::max<int64_t>(1, n / max_probe);
        double* p = x.data<double>();
        double max_err = 0;
        for (int64_t i = 0; i < n; i += step) {
            double orig = p[i];
            p[i] = orig + h;
            double lp = ops::dot(f(inputs), R).item();
            p[i] = orig - h;
            double lm = ops::dot(f(inputs), R).item();
            p[i] = orig;
            double numeric = (lp - lm) / (2 * h);
            double err = std::fabs(numeric - analytic[i]) / std::max(1.0, std::fabs(numeric));
            max_err = std::max(max_err, err);
        }
        INFO("input ", k, " shape ", shape_str(x.shape()), " max gradient error ", max_err);
        CHECK(max_err < tol);
    }
}

// y = LayerNorm(1 * x) (BiasFree, weight w) on x's device, and the gradients of sum(y * R): {y, dx, dw},
// on the CPU. The scale makes LayerNorm's input an activation, not a leaf. With check_freed, that
// activation's float32 memory must be gone once the forward dropped it (under bf16 the backward
// keeps a bfloat16 copy only).
inline std::vector<Tensor> layer_norm_of_activation(const Tensor& x, const Tensor& w, const Tensor& R,
                                                    bool check_freed) {
    Tensor xg = x.clone(), wg = w.to(x.device()).clone();
    xg.requires_grad_(true);
    wg.requires_grad_(true);
    Tensor a = ops::scale(xg, 1.0);
    const std::weak_ptr<Storage> a_memory = a.impl().storage;
    Tensor y = ops::layer_norm(a, wg, Tensor(), false);
    a = Tensor();
    if (check_freed) CHECK(a_memory.expired());
    Tensor out = y.to(Device::CPU).clone();
    ops::dot(y, R.to(x.device())).backward();
    return {out, xg.grad().to(Device::CPU), wg.grad().to(Device::CPU)};
}

}  // namespace ams::test
