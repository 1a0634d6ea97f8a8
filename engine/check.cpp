#include "engine/check.h"

namespace ams::detail {

void throw_error(const char* expr, const char* file, int line, const std::string& msg) {
    std::string where = str("(", expr, " at ", file, ":", line, ")");
    throw Error(msg.empty() ? "check failed " + where : msg + " " + where);
}

}  // namespace ams::detail
