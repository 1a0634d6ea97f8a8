// Subcommands still being written.
#include "engine/check.h"
#include "tools/commands.h"

namespace ams::cli {
int cmd_train(int, char**) { AMS_FAIL("train: not implemented yet"); }
int cmd_finetune(int, char**) { AMS_FAIL("finetune: not implemented yet"); }
}  // namespace ams::cli
