// Internal: JSON files read with errors that name the file. Header-only, so every component can
// use it without exporting nlohmann's types.
#pragma once

#include "tlora/io/files.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace tlora::detail {

/// `text` parsed as JSON; `source` (a file name or a description) starts the error message.
template <typename Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number past double
    TORCH_CHECK(false, source, ": not valid JSON: ", e.what());
  }
}

/// The JSON file `path`; `what` says what the file is for in the error when it cannot be read.
template <typename Json = nlohmann::json>
Json read_json(const std::filesystem::path& path, std::string_view what) {
  return parse_json<Json>(read_file(path, what), path.string());
}

}  // namespace tlora::detail
