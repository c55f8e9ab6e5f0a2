#pragma once
// Input files: regular files only.
//
// A FIFO, a device or a socket named as an input would block the open or the read forever (a FIFO
// without a writer) or never end (/dev/zero); a directory cannot be read. Inputs are therefore
// opened without blocking and refused, as IoError "cannot read PATH: not a regular file", unless
// they are regular files (symbolic links to regular files are followed).

#include <cstddef>
#include <filesystem>
#include <string>

namespace iclbench::io {

// An O_RDONLY | O_CLOEXEC descriptor of the regular file `path` (blocking mode). Throws IoError
// naming the path: "cannot open PATH: <OS error>" or "cannot read PATH: not a regular file".
int open_regular_file(const std::filesystem::path& path);

// The whole regular file `path` as text (a config file); at most `max_bytes`, else IoError.
std::string read_text_file(const std::filesystem::path& path, std::size_t max_bytes = 64u << 20);

}  // namespace iclbench::io
