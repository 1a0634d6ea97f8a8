#include "engine/params.h"

#include <set>

#include "engine/device.h"
#include "kernels/cpu/cpu.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

namespace ams {

int ParamStore::add(const std::string& name, const Shape& shape) {
    AMS_CHECK(!finalized(), "ParamStore::add(", name, ") after finalize");
    AMS_CHECK(!index_.count(name), "duplicate parameter name ", name);
    entries_.push_back(ParamEntry{name, shape, total_});
    index_[name] = (int)entries_.size() - 1;
    total_ += shape_numel(shape);
    return (int)entries_.size() - 1;
}

void ParamStore::finalize(Device device, DType dtype) {
    values_ = Tensor::zeros({total_}, dtype, device);
    grads_ = Tensor::zeros({total_}, dtype, device);
    make_views();
}

void ParamStore::make_views() {
    tensors_.clear();
    for (const ParamEntry& e : entries_) {
        Tensor t = Tensor::view_of(values_.impl().storage, e.offset, e.shape, values_.dtype());
        t.requires_grad_(true);
        t.set_grad(Tensor::view_of(grads_.impl().storage, e.offset, e.shape, grads_.dtype()));
        tensors_.push_back(t);
    }
}

Device ParamStore::device() const { return values_.device(); }

Tensor ParamStore::get(const std::string& name) const {
    auto it = index_.find(name);
    AMS_CHECK(it != index_.end(), "no parameter named '", name, "'");
    return tensors_.at(it->second);
}

void ParamStore::zero_grad() { grads_.zero_(); }

void ParamStore::load(const std::vector<std::pair<std::string, Tensor>>& named, const std::string& source) {
    std::set<std::string> seen;
    std::vector<std::string> unexpected;
    for (const auto& [name, t] : named) {
        auto it = index_.find(name);
        if (it == index_.end()) {
            unexpected.push_back(name);
            continue;
        }
        Tensor dst = tensors_[it->second];
        AMS_CHECK(t.shape() == dst.shape(), source, ": parameter '", name, "' has shape ",
                  shape_str(t.shape()), ", the model expects ", shape_str(dst.shape()));
        dst.copy_(t);  // copies data only: no autograd
        seen.insert(name);
    }
    std::vector<std::string> missing;
    for (const ParamEntry& e : entries_)
        if (!seen.count(e.name)) missing.push_back(e.name);
    auto list = [](const std::vector<std::string>& v) {
        std::string s;
        for (size_t i = 0; i < v.size() && i < 5; ++i) s += (i ? ", " : "") + v[i];
        if (v.size() > 5) s += str(" and ", v.size() - 5, " more");
        return s;
    };
    AMS_CHECK(missing.empty(), source, ": ", missing.size(), " parameters missing: ", list(missing));
    AMS_CHECK(unexpected.empty(), source, ": ", unexpected.size(), " unexpected tensors: ", list(unexpected));
}

std::vector<std::pair<std::string, Tensor>> ParamStore::named_tensors() const {
    std::vector<std::pair<std::string, Tensor>> r;
    for (size_t i = 0; i < entries_.size(); ++i)
        r.emplace_back(entries_[i].name, Tensor::view_of(values_.impl().storage, entries_[i].offset,
                                                         entries_[i].shape, values_.dtype()));
    return r;
}

void ParamStore::to(Device device, DType dtype) {
    values_ = values_.to(device).to(dtype);
    grads_ = grads_.to(device).to(dtype);
    make_views();
}

AdamW::AdamW(ParamStore& params, AdamWConfig cfg) : params_(params), cfg_(cfg) {
    AMS_CHECK(params.finalized(), "AdamW needs finalized parameters");
    AMS_CHECK(params.dtype() == DType::F32, "AdamW runs on F32 parameters");
    m_ = Tensor::zeros({params.total()}, DType::F32, params.device());
    v_ = Tensor::zeros({params.total()}, DType::F32, params.device());
}

void AdamW::step() {
    ++step_;
    float* p = params_.flat_values().data<float>();
    const float* g = params_.flat_grads().data<float>();
    const float lr = (float)cfg_.lr, b1 = (float)cfg_.beta1, b2 = (float)cfg_.beta2, eps = (float)cfg_.eps,
                wd = (float)cfg_.weight_decay;
    if (params_.device() == Device::CPU) {
        cpu::adamw_step(p, g, m_.data<float>(), v_.data<float>(), params_.total(), lr, b1, b2, eps, wd, step_);
    } else {
#ifdef AMS_HAVE_CUDA
        cuda::adamw_step(p, g, m_.data<float>(), v_.data<float>(), params_.total(), lr, b1, b2, eps, wd, step_);
#endif
    }
}

}  // namespace ams
