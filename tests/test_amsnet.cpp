// AMSNet around a tiny Restormer: PD round trips, the masked L1 gradient, k-branch restoration on
// odd sizes, a training run that lowers the loss, and exact resume.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "engine/image_io.h"
#include "engine/safetensors.h"
#include "files.h"
#include "helpers.h"
#include "models/amsnet.h"
#include "models/model_file.h"
#include "train/metrics.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace ams;
using test::rel_l2;
using test::TempDir;

namespace {

RestormerConfig tiny() { return preset_config("tiny"); }

// Column `col` of log.csv (0 step, 1 loss, 2 lr, ...).
std::vector<double> log_column(const std::string& csv, int col = 1) {
    std::ifstream f(csv);
    std::string line;
    std::getline(f, line);  // header
    std::vector<double> r;
    while (std::getline(f, line)) {
        size_t at = 0;
        for (int i = 0; i < col; ++i) at = line.find(',', at) + 1;
        r.push_back(std::stod(line.substr(at)));
    }
    return r;
}
std::vector<double> log_losses(const std::string& csv) { return log_column(csv, 1); }

TrainOptions tiny_training(const std::string& out) {
    TrainOptions o;
    o.data = {test::data_path("polyu")};
    o.include = "_real";
    o.out = out;
    o.model = tiny();
    o.preset = "tiny";
    o.batch = 2;
    o.crop = 40;
    o.pd = 5;
    o.lr = 2e-3;
    o.seed = 5;
    o.log_every = 1;
    o.save_every = 0;
    o.quiet = true;
    return o;
}

}  // namespace

TEST_CASE("PD down/up are exact inverses on odd sub-image sizes") {
    for (int s : {2, 3, 5}) {
        Tensor x = test::random_tensor({2, 3, 7 * s, 9 * s}, s, DType::F32);
        Tensor sub = ops::pd_down(x, s);
        CHECK(sub.shape() == Shape{2 * s * s, 3, 7, 9});
        CHECK(rel_l2(ops::pd_up(sub, s), x) == 0.0);
    }
}

// The fused mask + PD ops against the separate ops they replace (pd_down / pd_up against PyTorch,
// mask_mul, random_mask / branch_mask): exactly equal, since they move the same values.
TEST_CASE("fused mask + PD: masked_pd_down and pd_stitch equal pd_down/pd_up with mask_mul, any stride, windows") {
    auto complement = [](const Tensor& m) { return ops::add(Tensor::full(m.shape(), 1.0, m.dtype(), m.device()), ops::scale(m, -1.0)); };
    for (DType dt : {DType::F32, DType::F64})
        for (int s : {1, 2, 3})
            for (ops::MaskWindow win : {ops::MaskWindow{}, ops::MaskWindow{11, 13, 3, 2}}) {
                INFO("stride ", s, " window ", win.full_h, "x", win.full_w, " dtype ", dtype_name(dt));
                Tensor x = test::random_tensor({2, 3, 5 * s, 7 * s}, 40 + s, dt);
                Shape ms{2 * s * s, 1, 5, 7};
                // Training: a Bernoulli mask and its flags.
                ops::MaskDraw m{9, 4, 0.3, 0, 0, win};
                Tensor hidden;
                Tensor in = ops::masked_pd_down(x, s, m, &hidden);
                Tensor ref_hidden = ops::random_mask(ms, 0.3, 9, 4, Device::CPU, win).to(dt);
                CHECK(hidden.to_vector() == ref_hidden.to_vector());
                CHECK(in.to_vector() == ops::mask_mul(ops::pd_down(x, s), complement(ref_hidden)).to_vector());
                // Inference: k branches, then the stitch of their outputs.
                for (int k : {2, 3, 4}) {
                    std::vector<Tensor> outs;
                    Tensor ref;
                    for (int b = 0; b < k; ++b) {
                        ops::MaskDraw mb{9, 5, 0, k, b, win};
                        Tensor bm = ops::branch_mask(ms, k, b, 9, 5, Device::CPU, win).to(dt);
                        CHECK(ops::masked_pd_down(x, s, mb).to_vector() ==
                              ops::mask_mul(ops::pd_down(x, s), complement(bm)).to_vector());
                        outs.push_back(test::random_tensor({2 * s * s, 3, 5, 7}, 60 + b, dt));
                        Tensor kept = ops::mask_mul(outs.back(), bm);
                        ref = ref.defined() ? ops::add(ref, kept) : kept;
                    }
                    CHECK(ops::pd_stitch(outs, s, {9, 5, 0, 0, 0, win}).to_vector() == ops::pd_up(ref, s).to_vector());
                }
            }
}

TEST_CASE("fused mask + PD: gradients match finite differences (double), and only reach the pixels each op reads") {
    for (int s : {1, 2}) {
        Tensor x = test::random_tensor({1, 3, 4 * s, 6 * s}, 70, DType::F64);
        test::gradcheck([s](const std::vector<Tensor>& in) { return ops::masked_pd_down(in[0], s, {3, 8, 0.4}); }, {x});
        test::gradcheck([s](const std::vector<Tensor>& in) { return ops::masked_pd_down(in[0], s, {3, 8, 0, 3, 1}); }, {x});
        std::vector<Tensor> outs;
        for (int b = 0; b < 3; ++b) outs.push_back(test::random_tensor({s * s, 3, 4, 6}, 80 + b, DType::F64));
        test::gradcheck([s](const std::vector<Tensor>& in) { return ops::pd_stitch(in, s, {3, 9}); }, outs);
    }
    // Branch b's output gets a gradient exactly at the pixels branch b hides, 0 elsewhere.
    std::vector<Tensor> outs;
    for (int b = 0; b < 3; ++b) {
        outs.push_back(test::random_tensor({4, 2, 5, 3}, 90 + b, DType::F64));
        outs.back().requires_grad_(true);
    }
    ops::dot(ops::pd_stitch(outs, 2, {3, 9}), Tensor::full({1, 2, 10, 6}, 1.0, DType::F64)).backward();
    for (int b = 0; b < 3; ++b) {
        std::vector<double> g = outs[b].grad().to_double(), m = ops::branch_mask({4, 1, 5, 3}, 3, b, 3, 9, Device::CPU).to_double();
        for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == m[(i / 30) * 15 + i % 15]);
    }
}

TEST_CASE("fused mask + PD: bad arguments give clear errors") {
    Tensor x = Tensor::zeros({1, 3, 8, 8});
    CHECK_THROWS_WITH_AS(ops::masked_pd_down(x, 3, {1, 1, 0.5}), doctest::Contains("not divisible by stride 3"), Error);
    CHECK_THROWS_WITH_AS(ops::masked_pd_down(x, 2, {1, 1, 1.5}), doctest::Contains("probability"), Error);
    CHECK_THROWS_WITH_AS(ops::masked_pd_down(x, 2, {1, 1, 0, 2, 2}), doctest::Contains("branch 2 of 2"), Error);
    CHECK_THROWS_WITH_AS(ops::pd_stitch({Tensor::zeros({4, 3, 4, 4}), Tensor::zeros({4, 3, 4, 5})}, 2, {}),
                         doctest::Contains("differs"), Error);
    CHECK_THROWS_WITH_AS(ops::pd_stitch({Tensor::zeros({3, 3, 4, 4})}, 2, {}), doctest::Contains("not divisible"), Error);
}

TEST_CASE("masked L1 gradient is exactly zero at visible pixels and 1/(hidden*C) in size at hidden ones") {
    Tensor pred = test::random_tensor({2, 3, 6, 7}, 1, DType::F64), target = test::random_tensor({2, 3, 6, 7}, 2, DType::F64);
    Tensor mask = ops::random_mask({2, 1, 6, 7}, 0.5, 3, 4, Device::CPU).to(DType::F64);
    pred.requires_grad_(true);
    ops::masked_l1(pred, target, mask).backward();
    std::vector<double> g = pred.grad().to_double(), m = mask.to_double();
    double hidden = 0;
    for (double v : m) hidden += v;
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t i = 0; i < 42; ++i) {
                double gv = g[(b * 3 + c) * 42 + i];
                if (m[b * 42 + i] == 0) REQUIRE(gv == 0.0);
                else REQUIRE(std::fabs(gv) == doctest::Approx(1.0 / (hidden * 3)));
            }
}

TEST_CASE("amsnet_restore: any size, each branch only fills its own hidden pixels") {
    Restormer net(tiny());
    net.init(3);
    autograd::NoGradGuard ng;
    for (Shape s : {Shape{1, 3, 241, 37}, Shape{1, 3, 32, 32}, Shape{2, 3, 19, 23}}) {
        Tensor x = test::random_tensor(s, 11, DType::F32, 0.5, 0.1);
        Tensor y = amsnet_restore(net, x, 2, 2, 0, 1);
        CHECK(y.shape() == s);
        for (float v : y.to_vector()) REQUIRE(std::isfinite(v));
    }
    {  // the progress hook hears every branch's network run, and changes nothing
        Tensor x = test::random_tensor({1, 3, 24, 32}, 5, DType::F32, 0.5, 0.1);
        int calls = 0;
        const std::function<void()> hook = [&] { ++calls; };
        Tensor with = amsnet_restore(net, x, 2, 3, 0, 1, {}, hook);
        CHECK(calls == 3);
        CHECK(rel_l2(with, amsnet_restore(net, x, 2, 3, 0, 1)) == 0.0);
        amsnet_r3(net, x, with, 2, 0.16, 3, 0, {}, hook);
        CHECK(calls == 3 + 2 * 3);
    }
    // A network that returns its input unchanged (all weights zero: output conv + residual) gives
    // back the masked input at hidden pixels: zero. So k-branch restoration of an identity net is 0
    // everywhere, proving every pixel came from a branch where it was hidden.
    Restormer zero(tiny());
    zero.params().flat_values().zero_();
    Tensor x = test::random_tensor({1, 3, 24, 40}, 12, DType::F32, 0.5, 0.1);
    for (int k : {2, 3, 4}) CHECK(rel_l2(amsnet_restore(zero, x, 2, k, 7, 1), Tensor::zeros(x.shape())) == 0.0);
    // Without masks the identity net returns the image: R^3's replacement then restores 0 too.
    CHECK(rel_l2(zero.forward_any_size(x), x) == 0.0);
}

TEST_CASE("training on the tiny preset lowers the masked L1 loss") {
    TempDir dir("train");
    TrainOptions o = tiny_training(dir.dir.string());
    o.steps = 40;
    train(o);
    std::vector<double> loss = log_losses(dir / "log.csv");
    REQUIRE(loss.size() == 40);
    double first = 0, last = 0;
    for (int i = 0; i < 8; ++i) first += loss[i] / 8, last += loss[32 + i] / 8;
    INFO("mean loss of steps 1-8: ", first, ", of steps 33-40: ", last);
    CHECK(last < 0.7 * first);
    ModelFile m = load_model(dir / "model.safetensors", Device::CPU);
    CHECK(m.metadata.at("step") == "40");
}

TEST_CASE("an interrupted and resumed run gives exactly the losses and weights of an uninterrupted one") {
    TempDir a("resume_a"), b("resume_b");
    TrainOptions oa = tiny_training(a.dir.string());
    oa.steps = 6;
    train(oa);
    TrainOptions ob = tiny_training(b.dir.string());
    ob.steps = 3;
    train(ob);
    ob.steps = 6;
    ob.resume = true;
    train(ob);
    std::vector<double> la = log_losses(a / "log.csv"), lb = log_losses(b / "log.csv");
    REQUIRE(la.size() == 6);
    REQUIRE(lb.size() == 6);
    for (int i = 0; i < 6; ++i) CHECK(la[i] == lb[i]);
    // The elapsed time goes on from the first session's: it never restarts at 0.
    std::vector<double> eb = log_column(b / "log.csv", 6);
    REQUIRE(eb.size() == 6);
    for (int i = 1; i < 6; ++i) CHECK(eb[i] >= eb[i - 1]);
    CHECK(std::stod(load_safetensors(b / "checkpoint.safetensors", false).metadata.at("elapsed_s")) >= eb[5]);
    ModelFile ma = load_model(a / "model.safetensors", Device::CPU), mb = load_model(b / "model.safetensors", Device::CPU);
    CHECK(rel_l2(mb.net->params().flat_values(), ma.net->params().flat_values()) == 0.0);
}

TEST_CASE("the cosine schedule decays the learning rate to zero at --steps, and resuming stays exact") {
    TempDir a("cosine_a"), b("cosine_b");
    TrainOptions oa = tiny_training(a.dir.string());
    oa.steps = 6;
    oa.lr = 1e-3;
    oa.lr_schedule = "cosine";
    train(oa);
    TrainOptions ob = oa;
    ob.out = b.dir.string();
    ob.steps = 3;  // the schedule's length is --steps, so the first leg decays over 3 steps...
    train(ob);
    ob.steps = 6;  // ...and a resume to 6 uses the 6-step schedule from step 3 on
    ob.resume = true;
    train(ob);
    std::vector<double> lr = log_column(a / "log.csv", 2), lb = log_column(b / "log.csv", 2);
    REQUIRE(lr.size() == 6);
    for (int s = 0; s < 6; ++s) CHECK(lr[s] == doctest::Approx(1e-3 * (1 + std::cos(M_PI * s / 6)) / 2));
    REQUIRE(lb.size() == 6);
    for (int s = 3; s < 6; ++s) CHECK(lb[s] == doctest::Approx(lr[s]));
    CHECK(lb[1] == doctest::Approx(1e-3 * (1 + std::cos(M_PI / 3)) / 2));
}

TEST_CASE("--ema saves the moving average of the weights, and resuming keeps it exact") {
    TempDir plain("ema_plain"), one("ema_one"), two("ema_two");
    // The raw trajectory w0..w3, one step per leg (resume is exact, tested above).
    std::vector<std::vector<double>> w;
    Restormer init(tiny());
    init.init(5);  // tiny_training's seed: the trainer's initial weights
    w.push_back(init.params().flat_values().to_double());
    TrainOptions o = tiny_training(plain.dir.string());
    for (int s = 1; s <= 3; ++s) {
        o.steps = s;
        o.resume = s > 1;
        train(o);
        w.push_back(load_model(plain / "model.safetensors", Device::CPU).net->params().flat_values().to_double());
    }
    // The same run with --ema 0.8, in one go and as 2 + 1 steps.
    TrainOptions e = tiny_training(one.dir.string());
    e.steps = 3;
    e.ema = 0.8;
    train(e);
    TrainOptions r = e;
    r.out = two.dir.string();
    r.steps = 2;
    train(r);
    r.steps = 3;
    r.resume = true;
    train(r);

    std::vector<double> expect = w[0];
    for (int s = 0; s < 3; ++s) {
        const double d = std::min(0.8, (1.0 + s) / (10.0 + s));
        for (size_t i = 0; i < expect.size(); ++i) expect[i] = d * expect[i] + (1 - d) * w[s + 1][i];
    }
    Tensor want = Tensor::from_vector(expect, {(int64_t)expect.size()});
    Tensor last = Tensor::from_vector(w[3], {(int64_t)w[3].size()});
    Tensor got = load_model(one / "model.safetensors", Device::CPU).net->params().flat_values();
    CHECK(rel_l2(got, want) < 1e-6);
    CHECK(rel_l2(got, last) > 1e-4);  // the average really differs from the last weights
    // The checkpoint keeps the raw weights, so training continues from them.
    Restormer raw(tiny());
    raw.params().load(checkpoint_weights(load_safetensors(one / "checkpoint.safetensors")), "checkpoint");
    CHECK(rel_l2(raw.params().flat_values(), last) == 0.0);
    Tensor resumed = load_model(two / "model.safetensors", Device::CPU).net->params().flat_values();
    CHECK(rel_l2(resumed, got) == 0.0);
    // A checkpoint written without --ema cannot be resumed with it.
    o.steps = 4;
    o.ema = 0.8;
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("was started with --ema none, not 0.8"), std::exception);
}

TEST_CASE("fine-tuning (AMSNet-P) runs with gradients through every branch and lowers its loss") {
    TempDir dir("finetune");
    TrainOptions o = tiny_training(dir.dir.string());
    o.finetune = true;
    o.pd = 2;
    o.crop = 32;
    o.steps = 20;
    o.lambda = 0.01;
    train(o);
    std::vector<double> loss = log_losses(dir / "log.csv");
    REQUIRE(loss.size() == 20);
    CHECK(loss.back() < loss.front());
}

TEST_CASE("fine-tuning loss gradient matches finite differences (double, tiny net), 1 and 3 passes") {
    Restormer net(tiny(), Device::CPU, DType::F64);
    net.init(9);
    Tensor x = test::random_tensor({1, 3, 16, 24}, 4, DType::F64, 0.5, 0.1);
    // Probe a few parameters of the output conv through the full 2-branch restoration + TV loss;
    // 3 passes add flips and a transpose of a non-square crop inside the graph.
    Tensor w = net.params().get("output.weight");
    for (int passes : {1, 3}) {
        INFO("passes " << passes);
        net.params().zero_grad();
        amsnet_finetune_loss(net, x, 2, 2, 0.1, 3, 0, passes).backward();
        std::vector<double> g = w.grad().to_double();
        autograd::NoGradGuard ng;
        double* p = w.data<double>();
        for (int64_t i : {0, 17, 101, 250}) {
            double orig = p[i], h = 1e-6;
            p[i] = orig + h;
            double lp = amsnet_finetune_loss(net, x, 2, 2, 0.1, 3, 0, passes).item();
            p[i] = orig - h;
            double lm = amsnet_finetune_loss(net, x, 2, 2, 0.1, 3, 0, passes).item();
            p[i] = orig;
            CHECK((lp - lm) / (2 * h) == doctest::Approx(g[i]).epsilon(1e-5));
        }
    }
}

TEST_CASE("every shipped weights file loads, carries its inference scheme and denoises a real photo") {
    // The README's main command depends on these files; scored against the clean reference.
    const std::string noisy_path = test::data_path("polyu/Canon5D2_5_160_6400_circuit_3_real.JPG");
    Tensor noisy = ops::crop(load_image(noisy_path), 100, 140, 96, 120);
    Tensor clean = ops::crop(load_image(test::data_path("polyu/Canon5D2_5_160_6400_circuit_3_mean.JPG")), 100, 140, 96, 120);
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(test::source_path("weights"))) {
        if (e.path().extension() != ".safetensors") continue;
        ++files;
        INFO(e.path().string());
        ModelFile m = load_model(e.path().string(), Device::CPU);
        REQUIRE(m.metadata.count("inference_pd"));
        REQUIRE(m.metadata.count("inference_branches"));
        autograd::NoGradGuard ng;
        Tensor out = amsnet_restore(*m.net, noisy, std::stoi(m.metadata.at("inference_pd")),
                                    std::stoi(m.metadata.at("inference_branches")), 0, 0);
        CHECK(score_images(out, clean).psnr > score_images(noisy, clean).psnr);
    }
    CHECK(files >= 1);
}
