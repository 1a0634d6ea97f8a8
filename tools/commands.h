// The amsnet subcommands; each parses its own options and returns the process exit code.
#pragma once

namespace ams::cli {

int cmd_train(int argc, char** argv);
int cmd_finetune(int argc, char** argv);
int cmd_denoise(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_info(int argc, char** argv);

}  // namespace ams::cli
