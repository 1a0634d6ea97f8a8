#include "engine/precision.h"

#include <atomic>

#include "engine/check.h"
#include "engine/device.h"

namespace ams {

namespace {

std::atomic<Precision>& policy() {
    static std::atomic<Precision> p{env_flag("AMS_BF16")   ? Precision::BF16
                                    : env_flag("AMS_TF32") ? Precision::TF32
                                                           : Precision::FP32};
    return p;
}

}  // namespace

Precision precision() { return policy().load(std::memory_order_relaxed); }
void set_precision(Precision p) { policy().store(p, std::memory_order_relaxed); }

Precision parse_precision(const std::string& text, const std::string& what) {
    for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
        if (text == precision_name(p)) return p;
    AMS_FAIL(what, " must be fp32, tf32 or bf16, got '", text, "'");
}

const char* precision_name(Precision p) {
    switch (p) {
        case Precision::TF32: return "tf32";
        case Precision::BF16: return "bf16";
        default: return "fp32";
    }
}

int product_mantissa_bits() {
    const Precision p = precision();
    return p == Precision::BF16 ? 7 : p == Precision::TF32 ? 10 : 23;
}

int conv_mantissa_bits() { return precision() == Precision::FP32 ? 23 : 10; }

}  // namespace ams
