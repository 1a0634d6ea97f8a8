#include "engine/tensor.h"

#include <cmath>
#include <cstring>

#include "engine/autograd.h"
#include "engine/device.h"
#include "kernels/cpu/cpu.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"
#endif

namespace ams {

std::string shape_str(const Shape& s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + ")";
}

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

Shape contiguous_strides(const Shape& s) {
    Shape st(s.size());
    int64_t acc = 1;
    for (int i = (int)s.size() - 1; i >= 0; --i) {
        st[i] = acc;
        acc *= s[i];
    }
    return st;
}

Storage::Storage(size_t n, Device d) : ptr(device_alloc(d, n)), bytes(n), device(d) {}
Storage::~Storage() { device_free(device, ptr); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
    for (int64_t d : shape) AMS_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::make_shared<Storage>((size_t)shape_numel(shape) * dtype_size(dtype), device);
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    impl->dtype = dtype;
    return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    device_memset0(device, t.raw_data(), t.nbytes());
    return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.fill_(value);
    return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& shape, Device device) {
    AMS_CHECK((int64_t)v.size() == shape_numel(shape), "from_vector: ", v.size(),
              " values for shape ", shape_str(shape));
    Tensor t = empty(shape, DType::F32, device);
    device_copy(t.raw_data(), device, v.data(), Device::CPU, v.size() * 4);
    return t;
}

Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& shape, Device device) {
    AMS_CHECK((int64_t)v.size() == shape_numel(shape), "from_vector: ", v.size(),
              " values for shape ", shape_str(shape));
    Tensor t = empty(shape, DType::F64, device);
    device_copy(t.raw_data(), device, v.data(), Device::CPU, v.size() * 8);
    return t;
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, int64_t offset, const Shape& shape,
                       DType dtype) {
    AMS_CHECK((size_t)(offset + shape_numel(shape)) * dtype_size(dtype) <= storage->bytes,
              "view_of: view ", shape_str(shape), " at ", offset, " exceeds its storage");
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::move(storage);
    impl->offset = offset;
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    impl->dtype = dtype;
    return Tensor(impl);
}

int64_t Tensor::dim(int i) const {
    int n = ndim();
    if (i < 0) i += n;
    AMS_CHECK(i >= 0 && i < n, "dim ", i, " out of range for shape ", shape_str(shape()));
    return shape()[i];
}

bool Tensor::is_contiguous() const { return strides() == contiguous_strides(shape()) || numel() <= 1; }

void* Tensor::raw_data() const {
    AMS_CHECK(impl().storage->ptr, "tensor of shape ", shape_str(shape()),
              " has no data: it is autograd's handle of a tensor its backward does not read");
    return static_cast<char*>(impl().storage->ptr) + impl().offset * (int64_t)dtype_size(dtype());
}

Tensor Tensor::reshape(const Shape& shape) const {
    Shape s = shape;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == -1) {
            AMS_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
            infer = (int)i;
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        AMS_CHECK(known > 0 && numel() % known == 0, "reshape: cannot infer ", shape_str(shape));
        s[infer] = numel() / known;
    }
    AMS_CHECK(shape_numel(s) == numel(), "reshape: ", shape_str(this->shape()), " has ", numel(),
              " elements, not ", shape_numel(s), " of ", shape_str(s));
    AMS_CHECK(is_contiguous(), "reshape: tensor is not contiguous");
    auto impl = std::make_shared<TensorImpl>(*impl_);
    impl->shape = s;
    impl->strides = contiguous_strides(s);
    impl->slot.reset();
    impl->requires_grad = false;
    return Tensor(impl);
}

Tensor Tensor::narrow(int d, int64_t start, int64_t length) const {
    if (d < 0) d += ndim();
    AMS_CHECK(d >= 0 && d < ndim(), "narrow: dim out of range");
    AMS_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: [", start, ", ",
              start + length, ") outside dim ", d, " of ", shape_str(shape()));
    auto impl = std::make_shared<TensorImpl>(*impl_);
    impl->offset += start * strides()[d];
    impl->shape[d] = length;
    impl->slot.reset();
    impl->requires_grad = false;
    return Tensor(impl);
}

// Element-wise copy between any strided layouts on the CPU with dtype conversion.
namespace {

double load(const void* base, DType t, int64_t i) {
    switch (t) {
        case DType::F32: return static_cast<const float*>(base)[i];
        case DType::F64: return static_cast<const double*>(base)[i];
        case DType::F16: return half_to_float(static_cast<const uint16_t*>(base)[i]);
        case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    }
    return 0;
}

void store(void* base, DType t, int64_t i, double v) {
    switch (t) {
        case DType::F32: static_cast<float*>(base)[i] = (float)v; break;
        case DType::F64: static_cast<double*>(base)[i] = v; break;
        case DType::F16: static_cast<uint16_t*>(base)[i] = float_to_half((float)v); break;
        case DType::BF16: static_cast<uint16_t*>(base)[i] = float_to_bf16((float)v); break;
    }
}

void cpu_strided_copy(const Tensor& dst, const Tensor& src) {
    const Shape& shape = dst.shape();
    int nd = (int)shape.size();
    int64_t n = dst.numel();
    if (dst.is_contiguous() && src.is_contiguous() && dst.dtype() == src.dtype()) {
        std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
        return;
    }
    std::vector<int64_t> idx(nd, 0);
    for (int64_t k = 0; k < n; ++k) {
        int64_t so = 0, dof = 0;
        for (int i = 0; i < nd; ++i) {
            so += idx[i] * src.strides()[i];
            dof += idx[i] * dst.strides()[i];
        }
        store(dst.raw_data(), dst.dtype(), dof, load(src.raw_data(), src.dtype(), so));
        for (int i = nd - 1; i >= 0; --i) {
            if (++idx[i] < shape[i]) break;
            idx[i] = 0;
        }
    }
}

}  // namespace

void Tensor::copy_(const Tensor& src) {
    AMS_CHECK(shape() == src.shape(), "copy_: shape ", shape_str(src.shape()), " into ",
              shape_str(shape()));
    // float32 <-> bfloat16 on one device (autograd's packed activations): a kernel each way.
    const bool to_bf16 = dtype() == DType::BF16 && src.dtype() == DType::F32;
    const bool from_bf16 = dtype() == DType::F32 && src.dtype() == DType::BF16;
    if ((to_bf16 || from_bf16) && device() == src.device() && is_contiguous() && src.is_contiguous()) {
        const int64_t n = numel();
        if (device() == Device::CPU) {
            if (to_bf16) cpu::to_bf16(src.data<float>(), data<uint16_t>(), n);
            else cpu::from_bf16(src.data<uint16_t>(), data<float>(), n);
            return;
        }
#ifdef AMS_HAVE_CUDA
        if (to_bf16) cuda::to_bf16(src.data<float>(), data<uint16_t>(), n);
        else cuda::from_bf16(src.data<uint16_t>(), data<float>(), n);
        return;
#endif
    }
    if (device() == Device::CPU && src.device() == Device::CPU) {
        cpu_strided_copy(*this, src);
        return;
    }
    // Across devices or on the GPU: plain bytes when layouts and types agree, else via the host.
    if (is_contiguous() && src.is_contiguous() && dtype() == src.dtype()) {
        device_copy(raw_data(), device(), src.raw_data(), src.device(), nbytes());
        return;
    }
#ifdef AMS_HAVE_CUDA
    if (device() == Device::CUDA && src.device() == Device::CUDA && dtype() == src.dtype()) {
        cuda::strided_copy(*this, src);
        return;
    }
#endif
    // A dtype change or a strided side across devices: convert on the host. src.to(CPU) and the
    // last copy are same-dtype copies, which end above: no recursion.
    Tensor host_src = src.device() == Device::CPU ? src : src.to(Device::CPU);
    if (device() == Device::CPU) {
        cpu_strided_copy(*this, host_src);
        return;
    }
    Tensor staged = Tensor::empty(shape(), dtype(), Device::CPU);
    cpu_strided_copy(staged, host_src);
    if (is_contiguous()) device_copy(raw_data(), device(), staged.raw_data(), Device::CPU, nbytes());
    else copy_(staged.to(device()));
}

Tensor Tensor::contiguous() const {
    if (is_contiguous()) return *this;
    return clone();
}

Tensor Tensor::clone() const {
    Tensor t = empty(shape(), dtype(), device());
    t.copy_(*this);
    return t;
}

Tensor Tensor::to(Device d) const {
    if (d == device()) return *this;
    Tensor src = contiguous();
    Tensor t = empty(shape(), dtype(), d);
    device_copy(t.raw_data(), d, src.raw_data(), src.device(), nbytes());
    return t;
}

Tensor Tensor::to(DType t) const {
    if (t == dtype()) return *this;
    Tensor r = empty(shape(), t, device());
    r.copy_(*this);
    return r;
}

void Tensor::fill_(double value) {
    if (device() == Device::CPU) {
        int64_t n = numel();
        if (is_contiguous()) {
            if (dtype() == DType::F32) {
                float* p = data<float>();
                for (int64_t i = 0; i < n; ++i) p[i] = (float)value;
            } else {
                for (int64_t i = 0; i < n; ++i) store(raw_data(), dtype(), i, value);
            }
        } else {
            copy_(Tensor::full(shape(), value, dtype(), Device::CPU));
        }
        return;
    }
#ifdef AMS_HAVE_CUDA
    if (is_contiguous() && dtype() == DType::F32) {
        cuda::fill(data<float>(), numel(), (float)value);
        return;
    }
#endif
    copy_(Tensor::full(shape(), value, dtype(), Device::CPU));
}

std::vector<double> Tensor::to_double() const {
    Tensor h = to(Device::CPU).to(DType::F64).contiguous();
    const double* p = h.data<double>();
    return std::vector<double>(p, p + h.numel());
}

std::vector<float> Tensor::to_vector() const {
    Tensor h = to(Device::CPU).to(DType::F32).contiguous();
    const float* p = h.data<float>();
    return std::vector<float>(p, p + h.numel());
}

double Tensor::item() const {
    AMS_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " is not a single value");
    return to_double()[0];
}

Tensor& Tensor::requires_grad_(bool on) {
    AMS_CHECK(!on || dtype() == DType::F32 || dtype() == DType::F64,
              "requires_grad needs a F32 or F64 tensor");
    impl().requires_grad = on;
    return *this;
}

Tensor Tensor::grad() const {
    const TensorImpl& i = impl();
    return i.slot && i.slot->grad ? Tensor(i.slot->grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
    AMS_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()),
              " for tensor ", shape_str(shape()));
    impl().grad_slot().grad = g.impl_ptr();
}

void Tensor::backward() const { autograd::backward(*this); }

int64_t first_nonfinite(const Tensor& t) {
    const Tensor c = t.to(Device::CPU).to(DType::F32).contiguous();
    const float* v = c.data<float>();
    for (int64_t i = 0; i < c.numel(); ++i)
        if (!std::isfinite(v[i])) return i;
    return -1;
}

}  // namespace ams
