// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the raw little-endian tensor bytes, offsets counted from the start of that data section.
// Loading validates every field against the file so that a truncated or corrupt file gives an error
// naming the file, never a crash or a silently wrong tensor.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace ams {

struct SafetensorsFile {
    std::vector<std::pair<std::string, Tensor>> tensors;  // in header order
    std::map<std::string, std::string> metadata;
    std::string path;

    bool has(const std::string& name) const;
    Tensor get(const std::string& name) const;  // throws naming the file and the tensor
};

// CPU tensors in the stored dtype (F32, F64, F16 or BF16). With read_tensors false, only the
// (fully validated) header is read: metadata without the cost of the weights.
SafetensorsFile load_safetensors(const std::string& path, bool read_tensors = true);

// Tensors may live on any device, in any of the four dtypes and any layout. Names must be unique
// and non-empty. The header is space-padded to a multiple of 8 bytes, as the reference writer does.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes the byte ranges in order to path + ".tmp", then renames that over path, so a failure (disk
// full, missing folder) never leaves a partial file at path. Throws naming path; the temporary is
// removed. Shared by the safetensors, npy and image writers.
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts);

}  // namespace ams
