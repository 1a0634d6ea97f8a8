// The whole Restormer (small configurations, both LayerNorm types) against PyTorch: output,
// input gradient and every parameter gradient of sum(out * R); the padded 'plain' path on an odd
// size; configuration inference from tensor names; the default parameter count.
#include "helpers.h"
#include "models/restormer.h"

using namespace ams;
using test::rel_l2;

namespace {

std::vector<std::pair<std::string, Tensor>> reference_params(const SafetensorsFile& f) {
    std::vector<std::pair<std::string, Tensor>> r;
    for (const auto& [name, t] : f.tensors)
        if (name.rfind("param.", 0) == 0) r.emplace_back(name.substr(6), t);
    return r;
}

void check_against_fixture(const std::string& fixture, DType dt, double fwd_tol, double grad_tol) {
    SafetensorsFile f = test::fixture(fixture);
    RestormerConfig cfg = RestormerConfig::from_json(json::parse(f.metadata.at("config")), fixture);
    Restormer net(cfg, Device::CPU, dt);
    net.params().load(reference_params(f), fixture);
    Tensor x = f.get("input").to(dt).clone();
    x.requires_grad_(true);
    Tensor out = net.forward(x);
    INFO(fixture, " ", std::string(dtype_name(dt)), " output error ", rel_l2(out, f.get("out")));
    CHECK(rel_l2(out, f.get("out")) < fwd_tol);
    ops::dot(out, f.get("R").to(dt)).backward();
    CHECK(rel_l2(x.grad(), f.get("grad_input")) < grad_tol);
    double worst = 0;
    std::string worst_name;
    for (const ParamEntry& e : net.params().entries()) {
        double err = rel_l2(net.params().get(e.name).grad(), f.get("grad." + e.name));
        if (err > worst) worst = err, worst_name = e.name;
    }
    INFO("worst parameter gradient: ", worst_name, " ", worst);
    CHECK(worst < grad_tol);

    autograd::NoGradGuard ng;  // from here on the CPU runs the fused inference ops
    CHECK(rel_l2(net.forward(f.get("input").to(dt)), f.get("out")) < fwd_tol);
    Tensor padded = net.forward_any_size(f.get("padded_input").to(dt));
    CHECK(padded.shape() == f.get("padded_out").shape());
    CHECK(rel_l2(padded, f.get("padded_out")) < fwd_tol);
}

}  // namespace

TEST_CASE("Restormer matches PyTorch: BiasFree and WithBias, F32 and F64") {
    for (const char* fx : {"restormer_small_biasfree", "restormer_small_withbias"}) {
        check_against_fixture(fx, DType::F32, 1e-4, 1e-3);
        check_against_fixture(fx, DType::F64, 1e-10, 1e-9);
    }
}

TEST_CASE("Restormer configuration is inferred from parameter names and shapes alone") {
    for (const char* fx : {"restormer_small_biasfree", "restormer_small_withbias"}) {
        SafetensorsFile f = test::fixture(fx);
        RestormerConfig meta = RestormerConfig::from_json(json::parse(f.metadata.at("config")), fx);
        RestormerConfig inferred = RestormerConfig::infer(reference_params(f), fx);
        CHECK(json::dump(inferred.to_json()) == json::dump(meta.to_json()));
    }
    // The default configuration round-trips through inference too (2.66 -> 127/255/510/1021).
    Restormer def(RestormerConfig{});
    RestormerConfig inferred = RestormerConfig::infer(def.params().named_tensors(), "default");
    CHECK(json::dump(inferred.to_json()) == json::dump(RestormerConfig{}.to_json()));
}

TEST_CASE("Restormer default configuration has 26,111,668 parameters") {
    Restormer net(RestormerConfig{});
    CHECK(net.params().total() == 26111668);
}

TEST_CASE("Restormer rejects bad inputs and bad weights clearly") {
    RestormerConfig cfg;
    cfg.dim = 8;
    cfg.num_blocks = {1, 1, 1, 1};
    cfg.num_refinement_blocks = 1;
    Restormer net(cfg);
    CHECK_THROWS_WITH_AS(net.forward(Tensor::zeros({1, 3, 12, 16})), doctest::Contains("multiple of 8"), Error);
    CHECK_THROWS_AS(net.forward(Tensor::zeros({1, 4, 16, 16})), Error);
    auto named = net.params().named_tensors();
    named.pop_back();
    CHECK_THROWS_WITH_AS(net.params().load(named, "w.safetensors"), doctest::Contains("missing"), Error);
    CHECK_THROWS_WITH_AS(RestormerConfig::infer({{"foo", Tensor::zeros({1})}}, "w.safetensors"),
                         doctest::Contains("not a Restormer"), Error);
}
