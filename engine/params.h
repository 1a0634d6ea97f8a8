// Parameters, their gradients and the AdamW moments each live in one flat buffer with the same
// layout, named through one table {name, shape, offset}: the optimizer is one kernel over the flat
// buffers and a checkpoint is one write. Modules register parameters, then finalize() allocates.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ams {

struct ParamEntry {
    std::string name;
    Shape shape;
    int64_t offset = 0;  // in elements, into the flat buffers
    int64_t numel() const { return shape_numel(shape); }
};

class ParamStore {
public:
    // Registers a parameter; returns its index. Only before finalize().
    int add(const std::string& name, const Shape& shape);
    // Allocates the flat value and gradient buffers on `device` (values zero; see init in models).
    void finalize(Device device, DType dtype = DType::F32);

    bool finalized() const { return values_.defined(); }
    const std::vector<ParamEntry>& entries() const { return entries_; }
    int64_t total() const { return total_; }
    Device device() const;
    DType dtype() const { return values_.dtype(); }

    // The parameter tensors (views into the flat buffer; requires_grad; grad() views the flat gradient).
    const Tensor& operator[](int index) const { return tensors_.at(index); }
    Tensor get(const std::string& name) const;  // throws naming the parameter
    bool has(const std::string& name) const { return index_.count(name) > 0; }

    Tensor& flat_values() { return values_; }
    Tensor& flat_grads() { return grads_; }
    void zero_grad();

    // Copies every parameter from `named` (matching names and shapes); errors list what is missing,
    // unexpected or of the wrong shape. `prefix` is stripped from the names in `named` first.
    void load(const std::vector<std::pair<std::string, Tensor>>& named, const std::string& source);
    std::vector<std::pair<std::string, Tensor>> named_tensors() const;  // views, in table order

    // Moves everything to another device or dtype (F32 <-> F64 for gradient checks).
    void to(Device device, DType dtype);

private:
    void make_views();
    std::vector<ParamEntry> entries_;
    std::map<std::string, int> index_;
    std::vector<Tensor> tensors_;
    Tensor values_, grads_;
    int64_t total_ = 0;
};

// AdamW over a ParamStore's flat buffers (moments in two more flat buffers of the same layout).
struct AdamWConfig {
    double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
public:
    AdamW(ParamStore& params, AdamWConfig cfg);
    void step();  // uses the gradients in the flat gradient buffer
    int64_t steps() const { return step_; }
    void set_steps(int64_t s) { step_ = s; }
    AdamWConfig& config() { return cfg_; }
    Tensor& m() { return m_; }
    Tensor& v() { return v_; }

private:
    ParamStore& params_;
    AdamWConfig cfg_;
    Tensor m_, v_;
    int64_t step_ = 0;
};

}  // namespace ams
