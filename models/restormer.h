// Restormer (Zamir et al., CVPR 2022), exactly as ../shared/SPEC.md describes, with parameter names
// identical to the reference state_dict so reference weights map 1:1. Every hyperparameter is in
// RestormerConfig; the default is the real-denoising configuration (26,111,668 parameters).
#pragma once
#include <array>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/params.h"
#include "engine/tensor.h"

namespace ams {

struct RestormerConfig {
    int inp_channels = 3, out_channels = 3, dim = 48;
    std::array<int, 4> num_blocks{4, 6, 6, 8};
    int num_refinement_blocks = 4;
    std::array<int, 4> heads{1, 2, 4, 8};
    double ffn_expansion_factor = 2.66;
    bool bias = false;             // conv biases (never on patch_embed, down/up convs, as the reference)
    bool layernorm_with_bias = false;  // "WithBias" vs "BiasFree"

    json::Value to_json() const;
    static RestormerConfig from_json(const json::Value& v, const std::string& source);
    // Infers the configuration from reference parameter names and shapes (no metadata needed).
    static RestormerConfig infer(const std::vector<std::pair<std::string, Tensor>>& named,
                                 const std::string& source);
    void validate(const std::string& source) const;
    std::string summary() const;  // one line: dim, blocks, heads, ...
};

class Restormer {
public:
    explicit Restormer(const RestormerConfig& cfg, Device device = Device::CPU, DType dtype = DType::F32);

    const RestormerConfig& config() const { return cfg_; }
    ParamStore& params() { return params_; }
    const ParamStore& params() const { return params_; }

    // PyTorch-style default init (kaiming-uniform convs, unit norms, unit temperatures), from the
    // counter-based generator so it is identical on every device.
    void init(uint64_t seed);

    // x (B, inp_channels, H, W) with H, W multiples of 8 -> (B, out_channels, H, W).
    Tensor forward(const Tensor& x) const;

    // The 'plain' scheme for any size: reflect-pad bottom/right to multiples of 8, forward, crop.
    Tensor forward_any_size(const Tensor& x) const;

    // Training with recomputation: each block's LayerNorm outputs, qkv depthwise output and GELU
    // gate output are not kept for backward but recomputed there (engine/ops_recompute.cpp): 11.3
    // instead of 19 channels per pixel kept per block (a third less peak memory) for a few
    // memory-bound kernels more, same gradients bit for bit. Off by default; training turns it on
    // when a step would not fit otherwise (train/step_memory.h), e.g. SPEC's batch 8 on 24 GB.
    void set_recompute(bool on) { recompute_ = on; }
    bool recompute() const { return recompute_; }

private:
    struct Conv {
        int w = -1, b = -1, pad = 0, groups = 1;
    };
    struct Block {
        int norm1_w = -1, norm1_b = -1, norm2_w = -1, norm2_b = -1, temperature = -1, heads = 1;
        Conv qkv, qkv_dw, attn_out, ffn_in, ffn_dw, ffn_out;
    };
    Conv conv(const std::string& name, int cin, int cout, int k, int groups, bool bias);
    std::vector<Block> blocks(const std::string& name, int n, int dim, int heads);
    Tensor conv_bias(const Conv& c) const;  // the conv's bias, undefined without one
    Tensor run_conv(const Conv& c, const Tensor& x) const;
    Tensor run_blocks(const std::vector<Block>& bs, Tensor x) const;

    RestormerConfig cfg_;
    ParamStore params_;
    bool recompute_ = false;
    Conv patch_embed_, down1_2_, down2_3_, down3_4_, up4_3_, up3_2_, up2_1_, reduce3_, reduce2_, output_;
    std::vector<Block> enc1_, enc2_, enc3_, latent_, dec3_, dec2_, dec1_, refinement_;
};

}  // namespace ams
