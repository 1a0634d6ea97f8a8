#include "engine/check.h"

namespace ams::detail {

void throw_error(const char* expr, const char* file, int line, const std::string& msg) {
    std::string where = str("(", expr, " at ", file, ":", line, ")");
    throw Error(msg.empty() ? "internal check failed" : msg, where);
}

}  // namespace ams::detail
