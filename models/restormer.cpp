#include "models/restormer.h"

#include <cmath>
#include <map>
#include <set>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/rng.h"

namespace ams {

// ---------------------------------------------------------------- configuration

json::Value RestormerConfig::to_json() const {
    json::Value v = json::Value::object();
    v["inp_channels"] = inp_channels;
    v["out_channels"] = out_channels;
    v["dim"] = dim;
    json::Value nb = json::Value::array(), hs = json::Value::array();
    for (int i = 0; i < 4; ++i) {
        nb.push_back(num_blocks[i]);
        hs.push_back(heads[i]);
    }
    v["num_blocks"] = nb;
    v["num_refinement_blocks"] = num_refinement_blocks;
    v["heads"] = hs;
    v["ffn_expansion_factor"] = ffn_expansion_factor;
    v["bias"] = bias;
    v["layernorm_type"] = layernorm_with_bias ? "WithBias" : "BiasFree";
    return v;
}

RestormerConfig RestormerConfig::from_json(const json::Value& v, const std::string& source) {
    AMS_CHECK(v.is_object(), source, ": model configuration must be a JSON object");
    RestormerConfig c;
    auto get_int = [&](const char* key, int& dst) {
        if (const json::Value* x = v.find(key)) dst = (int)x->as_int();
    };
    auto get_arr = [&](const char* key, std::array<int, 4>& dst) {
        if (const json::Value* x = v.find(key)) {
            AMS_CHECK(x->is_array() && x->as_array().size() == 4, source, ": '", key,
                      "' must be an array of 4 integers");
            for (int i = 0; i < 4; ++i) dst[i] = (int)x->as_array()[i].as_int();
        }
    };
    static const std::set<std::string> known = {"inp_channels", "out_channels", "dim", "num_blocks",
        "num_refinement_blocks", "heads", "ffn_expansion_factor", "bias", "layernorm_type", "LayerNorm_type",
        "arch", "dual_pixel_task"};
    for (const auto& [key, val] : v.as_object())
        AMS_CHECK(known.count(key), source, ": unknown Restormer configuration key '", key, "'");
    get_int("inp_channels", c.inp_channels);
    get_int("out_channels", c.out_channels);
    get_int("dim", c.dim);
    get_arr("num_blocks", c.num_blocks);
    get_int("num_refinement_blocks", c.num_refinement_blocks);
    get_arr("heads", c.heads);
    if (const json::Value* x = v.find("ffn_expansion_factor")) c.ffn_expansion_factor = x->as_number();
    if (const json::Value* x = v.find("bias")) c.bias = x->as_bool();
    const json::Value* ln = v.find("layernorm_type");
    if (!ln) ln = v.find("LayerNorm_type");
    if (ln) {
        const std::string& t = ln->as_string();
        AMS_CHECK(t == "WithBias" || t == "BiasFree", source, ": layernorm_type must be WithBias or BiasFree, got '", t, "'");
        c.layernorm_with_bias = t == "WithBias";
    }
    c.validate(source);
    return c;
}

void RestormerConfig::validate(const std::string& source) const {
    AMS_CHECK(inp_channels > 0 && out_channels > 0, source, ": channel counts must be positive");
    AMS_CHECK(dim > 0 && dim % 2 == 0, source, ": dim must be a positive even number, got ", dim);
    for (int i = 0; i < 4; ++i) {
        AMS_CHECK(num_blocks[i] >= 0, source, ": num_blocks must not be negative");
        int d = dim << i;
        AMS_CHECK(heads[i] > 0 && d % heads[i] == 0, source, ": level ", i + 1, " has ", d,
                  " channels, not divisible by ", heads[i], " heads");
    }
    AMS_CHECK(heads[0] > 0 && (2 * dim) % heads[0] == 0, source, ": decoder level 1 channels not divisible by heads");
    AMS_CHECK(num_refinement_blocks >= 0, source, ": num_refinement_blocks must not be negative");
    AMS_CHECK(ffn_expansion_factor > 0 && (int)(dim * ffn_expansion_factor) > 0, source,
              ": ffn_expansion_factor must be positive");
}

std::string RestormerConfig::summary() const {
    return str("Restormer dim ", dim, ", blocks [", num_blocks[0], ", ", num_blocks[1], ", ", num_blocks[2], ", ",
               num_blocks[3], "], refinement ", num_refinement_blocks, ", heads [", heads[0], ", ", heads[1], ", ",
               heads[2], ", ", heads[3], "], FFN x", ffn_expansion_factor, ", bias ", bias ? "yes" : "no", ", ",
               layernorm_with_bias ? "WithBias" : "BiasFree", " LayerNorm");
}

RestormerConfig RestormerConfig::infer(const std::vector<std::pair<std::string, Tensor>>& named,
                                       const std::string& source) {
    std::map<std::string, Shape> shapes;
    for (const auto& [n, t] : named) shapes[n] = t.shape();
    auto shape = [&](const std::string& n) -> const Shape& {
        auto it = shapes.find(n);
        AMS_CHECK(it != shapes.end(), source, ": not a Restormer weights file (no tensor '", n, "')");
        return it->second;
    };
    auto count = [&](const std::string& prefix) {
        int n = 0;
        while (shapes.count(str(prefix, ".", n, ".norm1.body.weight"))) ++n;
        return n;
    };
    RestormerConfig c;
    const Shape& pe = shape("patch_embed.proj.weight");
    AMS_CHECK(pe.size() == 4, source, ": patch_embed.proj.weight must be 4-D");
    c.dim = (int)pe[0];
    c.inp_channels = (int)pe[1];
    c.out_channels = (int)shape("output.weight")[0];
    const char* levels[4] = {"encoder_level1", "encoder_level2", "encoder_level3", "latent"};
    for (int i = 0; i < 4; ++i) {
        c.num_blocks[i] = count(levels[i]);
        AMS_CHECK(c.num_blocks[i] > 0, source, ": no blocks found for ", levels[i]);
        c.heads[i] = (int)shape(str(levels[i], ".0.attn.temperature"))[0];
    }
    c.num_refinement_blocks = count("refinement");
    c.bias = shapes.count("encoder_level1.0.attn.qkv.bias") > 0;
    c.layernorm_with_bias = shapes.count("encoder_level1.0.norm1.body.bias") > 0;
    // The FFN width is int(C * factor) at every level; find a factor that reproduces all four.
    int hidden[4];
    for (int i = 0; i < 4; ++i) hidden[i] = (int)shape(str(levels[i], ".0.ffn.project_out.weight"))[1];
    std::vector<double> candidates = {2.66, 2.0, 4.0, 1.0, 3.0, 1.5};
    for (int k = 0; k <= 100; ++k) candidates.push_back((hidden[0] + k / 100.0) / c.dim);
    bool found = false;
    for (double f : candidates) {
        bool ok = true;
        for (int i = 0; i < 4; ++i) ok = ok && (int)((c.dim << i) * f) == hidden[i];
        if (ok) {
            c.ffn_expansion_factor = f;
            found = true;
            break;
        }
    }
    AMS_CHECK(found, source, ": cannot infer ffn_expansion_factor from FFN widths ", hidden[0], ", ", hidden[1],
              ", ", hidden[2], ", ", hidden[3]);
    c.validate(source);
    return c;
}

// ---------------------------------------------------------------- construction

Restormer::Conv Restormer::conv(const std::string& name, int cin, int cout, int k, int groups, bool bias) {
    Conv c;
    c.w = params_.add(name + ".weight", {cout, cin / groups, k, k});
    if (bias) c.b = params_.add(name + ".bias", {cout});
    c.pad = k / 2;
    c.groups = groups;
    return c;
}

std::vector<Restormer::Block> Restormer::blocks(const std::string& name, int n, int dim, int heads) {
    std::vector<Block> r;
    const bool b = cfg_.bias, lnb = cfg_.layernorm_with_bias;
    const int hidden = (int)(dim * cfg_.ffn_expansion_factor);
    for (int i = 0; i < n; ++i) {
        std::string p = str(name, ".", i, ".");
        Block blk;
        blk.heads = heads;
        blk.norm1_w = params_.add(p + "norm1.body.weight", {dim});
        if (lnb) blk.norm1_b = params_.add(p + "norm1.body.bias", {dim});
        blk.temperature = params_.add(p + "attn.temperature", {heads, 1, 1});
        blk.qkv = conv(p + "attn.qkv", dim, dim * 3, 1, 1, b);
        blk.qkv_dw = conv(p + "attn.qkv_dwconv", dim * 3, dim * 3, 3, dim * 3, b);
        blk.attn_out = conv(p + "attn.project_out", dim, dim, 1, 1, b);
        blk.norm2_w = params_.add(p + "norm2.body.weight", {dim});
        if (lnb) blk.norm2_b = params_.add(p + "norm2.body.bias", {dim});
        blk.ffn_in = conv(p + "ffn.project_in", dim, hidden * 2, 1, 1, b);
        blk.ffn_dw = conv(p + "ffn.dwconv", hidden * 2, hidden * 2, 3, hidden * 2, b);
        blk.ffn_out = conv(p + "ffn.project_out", hidden, dim, 1, 1, b);
        r.push_back(blk);
    }
    return r;
}

Restormer::Restormer(const RestormerConfig& cfg, Device device, DType dtype) : cfg_(cfg) {
    cfg_.validate("Restormer");
    const int d = cfg.dim;
    const bool b = cfg.bias;
    // Registration order follows the reference state_dict order.
    patch_embed_ = conv("patch_embed.proj", cfg.inp_channels, d, 3, 1, false);
    enc1_ = blocks("encoder_level1", cfg.num_blocks[0], d, cfg.heads[0]);
    down1_2_ = conv("down1_2.body.0", d, d / 2, 3, 1, false);
    enc2_ = blocks("encoder_level2", cfg.num_blocks[1], d * 2, cfg.heads[1]);
    down2_3_ = conv("down2_3.body.0", d * 2, d, 3, 1, false);
    enc3_ = blocks("encoder_level3", cfg.num_blocks[2], d * 4, cfg.heads[2]);
    down3_4_ = conv("down3_4.body.0", d * 4, d * 2, 3, 1, false);
    latent_ = blocks("latent", cfg.num_blocks[3], d * 8, cfg.heads[3]);
    up4_3_ = conv("up4_3.body.0", d * 8, d * 16, 3, 1, false);
    reduce3_ = conv("reduce_chan_level3", d * 8, d * 4, 1, 1, b);
    dec3_ = blocks("decoder_level3", cfg.num_blocks[2], d * 4, cfg.heads[2]);
    up3_2_ = conv("up3_2.body.0", d * 4, d * 8, 3, 1, false);
    reduce2_ = conv("reduce_chan_level2", d * 4, d * 2, 1, 1, b);
    dec2_ = blocks("decoder_level2", cfg.num_blocks[1], d * 2, cfg.heads[1]);
    up2_1_ = conv("up2_1.body.0", d * 2, d * 4, 3, 1, false);
    dec1_ = blocks("decoder_level1", cfg.num_blocks[0], d * 2, cfg.heads[0]);
    refinement_ = blocks("refinement", cfg.num_refinement_blocks, d * 2, cfg.heads[0]);
    output_ = conv("output", d * 2, cfg.out_channels, 3, 1, b);
    params_.finalize(device, dtype);
    init(0);
}

void Restormer::init(uint64_t seed) {
    Tensor host = Tensor::empty({params_.total()}, DType::F32, Device::CPU);
    float* p = host.data<float>();
    for (const ParamEntry& e : params_.entries()) {
        auto ends_with = [&](const char* suffix) {
            std::string s(suffix);
            return e.name.size() >= s.size() && e.name.compare(e.name.size() - s.size(), s.size(), s) == 0;
        };
        bool is_norm = e.name.find(".body.") != std::string::npos && e.name.find("norm") != std::string::npos;
        double value = 0;
        bool constant = true;
        if (ends_with("temperature") || (is_norm && ends_with(".weight"))) value = 1.0;
        else if (is_norm && ends_with(".bias")) value = 0.0;
        else constant = false;
        if (constant) {
            for (int64_t i = 0; i < e.numel(); ++i) p[e.offset + i] = (float)value;
            continue;
        }
        // Conv weight or bias: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default.
        int64_t fan_in;
        if (ends_with(".weight")) {
            fan_in = e.shape[1] * e.shape[2] * e.shape[3];
        } else {
            const ParamEntry& w = params_.entries()[&e - &params_.entries()[0] - 1];
            fan_in = w.shape[1] * w.shape[2] * w.shape[3];
        }
        float bound = 1.0f / std::sqrt((float)fan_in);
        for (int64_t i = 0; i < e.numel(); ++i)
            p[e.offset + i] = bound * (2.0f * rng::draw_uniform(seed, rng::kInit, e.offset + i) - 1.0f);
    }
    params_.flat_values().copy_(host);
}

// ---------------------------------------------------------------- forward

Tensor Restormer::conv_bias(const Conv& c) const { return c.b >= 0 ? params_[c.b] : Tensor(); }

Tensor Restormer::run_conv(const Conv& c, const Tensor& x) const {
    return ops::conv2d(x, params_[c.w], conv_bias(c), c.pad, c.groups);
}

Tensor Restormer::run_blocks(const std::vector<Block>& bs, Tensor x) const {
    const bool lnb = cfg_.layernorm_with_bias;
    // Inference on the CPU runs each half's LayerNorm, projection and depthwise conv (and the
    // feed-forward's gate, output projection and residual) as one op tiled over rows, so the wide
    // intermediates never exist at full size. Training with recompute() runs pairs of ops that
    // keep less for backward; otherwise training and CUDA inference use the separate ops, except
    // the feed-forward's depthwise conv and gate on the GPU (below).
    const bool fused = x.device() == Device::CPU && !autograd::grad_enabled();
    const bool recompute = recompute_ && autograd::grad_enabled();
    for (const Block& b : bs) {
        const Tensor ln1_b = lnb ? params_[b.norm1_b] : Tensor(), ln2_b = lnb ? params_[b.norm2_b] : Tensor();
        if (recompute) {  // the same block, its cheap intermediates recomputed in backward
            Tensor qkv = ops::norm_conv1x1(x, params_[b.norm1_w], ln1_b, lnb, params_[b.qkv.w], conv_bias(b.qkv));
            Tensor att = ops::dwconv_attention(qkv, params_[b.qkv_dw.w], conv_bias(b.qkv_dw), params_[b.temperature],
                                               b.heads);
            x = ops::add(x, run_conv(b.attn_out, att));
            Tensor p = ops::norm_conv1x1(x, params_[b.norm2_w], ln2_b, lnb, params_[b.ffn_in.w], conv_bias(b.ffn_in));
            x = ops::add(x, ops::gate_conv1x1(p, params_[b.ffn_dw.w], conv_bias(b.ffn_dw), params_[b.ffn_out.w],
                                              conv_bias(b.ffn_out)));
            continue;
        }
        Tensor qkv = fused ? ops::norm_project_dw_inference(x, params_[b.norm1_w], ln1_b, lnb, params_[b.qkv.w],
                                                            conv_bias(b.qkv), params_[b.qkv_dw.w], conv_bias(b.qkv_dw))
                           : run_conv(b.qkv_dw, run_conv(b.qkv, ops::layer_norm(x, params_[b.norm1_w], ln1_b, lnb)));
        Tensor att = run_conv(b.attn_out, ops::attention(qkv, params_[b.temperature], b.heads));
        x = ops::add(x, att);
        if (fused) {
            x = ops::ffn_residual_inference(x, params_[b.norm2_w], ln2_b, lnb, params_[b.ffn_in.w], conv_bias(b.ffn_in),
                                            params_[b.ffn_dw.w], conv_bias(b.ffn_dw), params_[b.ffn_out.w],
                                            conv_bias(b.ffn_out));
            continue;
        }
        Tensor n2 = ops::layer_norm(x, params_[b.norm2_w], ln2_b, lnb);
        // On the GPU the depthwise conv and gate run as one op: autograd keeps project_in's output
        // only (18% less training memory; backward recomputes the depthwise output, cheap there).
        // The CPU keeps the separate ops: the recomputation costs it 5-8% of a training step.
        Tensor p = run_conv(b.ffn_in, n2);
        Tensor h = x.is_cuda() ? ops::dwconv_gate(p, params_[b.ffn_dw.w], conv_bias(b.ffn_dw))
                               : ops::gelu_gate(run_conv(b.ffn_dw, p));
        x = ops::add(x, run_conv(b.ffn_out, h));
    }
    return x;
}

Tensor Restormer::forward(const Tensor& inp) const {
    AMS_CHECK(inp.ndim() == 4 && inp.dim(1) == cfg_.inp_channels, "Restormer: input ", shape_str(inp.shape()),
              " must be (B, ", cfg_.inp_channels, ", H, W)");
    AMS_CHECK(inp.dim(2) % 8 == 0 && inp.dim(3) % 8 == 0, "Restormer: input ", inp.dim(2), "x", inp.dim(3),
              " must be a multiple of 8 (pad it, or use forward_any_size)");
    AMS_CHECK(inp.device() == params_.device(), "Restormer: input on ", device_name(inp.device()),
              ", model on ", device_name(params_.device()));
    Tensor e1 = run_blocks(enc1_, run_conv(patch_embed_, inp));
    Tensor e2 = run_blocks(enc2_, ops::pixel_unshuffle(run_conv(down1_2_, e1), 2));
    Tensor e3 = run_blocks(enc3_, ops::pixel_unshuffle(run_conv(down2_3_, e2), 2));
    Tensor lat = run_blocks(latent_, ops::pixel_unshuffle(run_conv(down3_4_, e3), 2));
    Tensor d3 = ops::pixel_shuffle(run_conv(up4_3_, lat), 2);
    d3 = run_blocks(dec3_, run_conv(reduce3_, ops::concat(d3, e3)));
    Tensor d2 = ops::pixel_shuffle(run_conv(up3_2_, d3), 2);
    d2 = run_blocks(dec2_, run_conv(reduce2_, ops::concat(d2, e2)));
    Tensor d1 = ops::pixel_shuffle(run_conv(up2_1_, d2), 2);
    d1 = run_blocks(dec1_, ops::concat(d1, e1));
    d1 = run_blocks(refinement_, d1);
    return ops::add(run_conv(output_, d1), inp);
}

Tensor Restormer::forward_any_size(const Tensor& x) const {
    Tensor y = forward(ops::pad_to_multiple(x, 8));
    return ops::crop(y, 0, 0, (int)x.dim(2), (int)x.dim(3));
}

}  // namespace ams
