// Reading tokenizers from disk: vocab.txt, vocab.json + merges.txt, tokenizer.json and model
// folders, with the semantics of transformers 5.24 and tokenizers 0.23.3.
#include <c10/util/Exception.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json.h"
#include "tlora/io/files.h"
#include "tlora/text/bpe.h"
#include "tlora/text/tokenizer.h"
#include "tlora/text/unicode.h"
#include "tlora/text/wordpiece.h"

namespace tlora::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// POSIX stat, not std::filesystem: LibTorch's copy of the latter's symbols can crash.
bool is_file(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_file(const fs::path& path) { return tlora::read_file(path, "tokenizer"); }

json read_json(const fs::path& path) { return tlora::detail::parse_json(read_file(path), "tokenizer: " + path.string()); }

// The lines of a text file as Rust's BufRead::lines gives them: split at '\n', a trailing
// '\r' dropped, no empty line after a final '\n'. The file must be UTF-8, as Rust requires.
std::vector<std::string_view> lines_of(std::string_view bytes, const fs::path& path) {
  const size_t bad = find_invalid_utf8(bytes);
  if (bad != std::string_view::npos) {
    size_t line = 1;
    for (size_t i = 0; i < bad; ++i) line += bytes[i] == '\n';
    TORCH_CHECK(false, "tokenizer: ", path, " line ", line, " is not valid UTF-8");
  }
  std::vector<std::string_view> lines;
  size_t begin = 0;
  while (begin < bytes.size()) {
    size_t end = bytes.find('\n', begin);
    const size_t next = end == std::string_view::npos ? bytes.size() : end + 1;
    if (end == std::string_view::npos) end = bytes.size();
    std::string_view line = bytes.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    begin = next;
  }
  return lines;
}

// Rust's str::trim_end: trailing White_Space removed.
std::string_view trim_end(std::string_view s) {
  while (!s.empty()) {
    size_t begin = s.size() - 1;
    while (begin > 0 && (static_cast<unsigned char>(s[begin]) & 0xc0) == 0x80) --begin;
    size_t pos = begin;
    if (!unicode::is_whitespace(next_code_point(s, pos))) break;
    s.remove_suffix(s.size() - begin);
  }
  return s;
}

// Typed access to a tokenizer.json, with errors that name the file and the key.
struct JsonFile {
  const fs::path& path;

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    TORCH_CHECK(false, "tokenizer: ", path, ": ", where, ": ", what);
  }
  const json& at(const json& object, const char* key, const std::string& where) const {
    if (!object.is_object() || !object.contains(key))
      fail(where, std::string("no \"") + key + "\"");
    return object.at(key);
  }
  template <typename T>
  T get(const json& object, const char* key, const std::string& where) const {
    try {
      return at(object, key, where).get<T>();
    } catch (const json::exception& e) {
      fail(where + "." + key, e.what());
    }
  }
  template <typename T>
  T get_or(const json& object, const char* key, T fallback, const std::string& where) const {
    if (!object.is_object() || !object.contains(key) || object.at(key).is_null()) return fallback;
    return get<T>(object, key, where);
  }
  std::string type_of(const json& object, const std::string& where) const {
    return get<std::string>(object, "type", where);
  }
};

Vocab vocab_from_json(const json& object, const JsonFile& file, const std::string& where) {
  if (!object.is_object()) file.fail(where, "the vocabulary is not a JSON object");
  Vocab vocab;
  vocab.reserve(object.size());
  for (const auto& [token, id] : object.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) {
      file.fail(where, "the id of '" + token + "' is not a non-negative integer");
    }
    vocab[token] = id.get<int64_t>();
  }
  return vocab;
}

std::vector<AddedToken> added_tokens_from_json(const json& root, const JsonFile& file) {
  std::vector<AddedToken> tokens;
  if (!root.contains("added_tokens") || root.at("added_tokens").is_null()) return tokens;
  const json& list = root.at("added_tokens");
  if (!list.is_array()) file.fail("added_tokens", "not an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    const json& t = list[i];
    AddedToken token;
    token.content = file.get<std::string>(t, "content", where);
    token.id = file.get<int64_t>(t, "id", where);
    token.special = file.get_or<bool>(t, "special", false, where);
    token.single_word = file.get_or<bool>(t, "single_word", false, where);
    token.lstrip = file.get_or<bool>(t, "lstrip", false, where);
    token.rstrip = file.get_or<bool>(t, "rstrip", false, where);
    token.normalized = file.get_or<bool>(t, "normalized", !token.special, where);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

PostProcessorTemplate template_from_json(const json& processor, const JsonFile& file,
                                         const std::string& where) {
  const std::string type = file.type_of(processor, where);
  const auto named = [&](const char* key) {
    const json& pair = file.at(processor, key, where);
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() ||
        !pair[1].is_number_integer()) {
      file.fail(where + "." + key, "expected [token, id]");
    }
    return std::pair<std::string, int64_t>(pair[0].get<std::string>(), pair[1].get<int64_t>());
  };
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    const auto [cls, cls_id] = named("cls");
    const auto [sep, sep_id] = named("sep");
    return type == "BertProcessing" ? PostProcessorTemplate::bert(cls, cls_id, sep, sep_id)
                                    : PostProcessorTemplate::roberta(cls, cls_id, sep, sep_id);
  }
  if (type != "TemplateProcessing")
    file.fail(where, "post-processor type '" + type + "' is not supported");
  const json& specials = file.at(processor, "special_tokens", where);
  const auto pieces = [&](const char* key) {
    std::vector<PostProcessorTemplate::Piece> out;
    const json& list = file.at(processor, key, where);
    if (!list.is_array()) file.fail(where + "." + key, "not an array");
    for (const json& item : list) {
      PostProcessorTemplate::Piece piece;
      if (item.contains("Sequence")) {
        const json& seq = item.at("Sequence");
        const std::string id = file.get<std::string>(seq, "id", where + "." + key);
        if (id != "A" && id != "B") file.fail(where + "." + key, "unknown sequence '" + id + "'");
        piece.sequence = id == "A" ? 0 : 1;
        piece.type_id = file.get<int64_t>(seq, "type_id", where + "." + key);
      } else if (item.contains("SpecialToken")) {
        const json& special = item.at("SpecialToken");
        const std::string id = file.get<std::string>(special, "id", where + "." + key);
        piece.type_id = file.get<int64_t>(special, "type_id", where + "." + key);
        const std::string at_special = where + ".special_tokens." + id;
        const json& entry = file.at(specials, id.c_str(), where + ".special_tokens");
        piece.ids = file.get<std::vector<int64_t>>(entry, "ids", at_special);
        piece.tokens = file.get<std::vector<std::string>>(entry, "tokens", at_special);
        if (piece.ids.size() != piece.tokens.size())
          file.fail(at_special, "ids and tokens differ in length");
      } else {
        file.fail(where + "." + key, "expected a Sequence or a SpecialToken");
      }
      out.push_back(std::move(piece));
    }
    return out;
  };
  return {pieces("single"), pieces("pair")};
}

// The post-processor; ByteLevel processors only trim offsets, which tlora does not report.
PostProcessorTemplate post_processor_from_json(const json& root, const JsonFile& file) {
  if (!root.contains("post_processor") || root.at("post_processor").is_null()) {
    return PostProcessorTemplate::none();
  }
  const json& processor = root.at("post_processor");
  const std::string type = file.type_of(processor, "post_processor");
  if (type == "ByteLevel") return PostProcessorTemplate::none();
  if (type != "Sequence") return template_from_json(processor, file, "post_processor");
  std::optional<PostProcessorTemplate> chosen;
  const json& list = file.at(processor, "processors", "post_processor");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = "post_processor.processors[" + std::to_string(i) + "]";
    if (file.type_of(list[i], where) == "ByteLevel") continue;
    if (chosen) file.fail(where, "more than one post-processor that adds tokens");
    chosen = template_from_json(list[i], file, where);
  }
  return chosen ? *chosen : PostProcessorTemplate::none();
}

Side side_from_json(const json& object, const JsonFile& file, const std::string& where) {
  const std::string side = file.get_or<std::string>(object, "direction", "Right", where);
  if (side != "Right" && side != "Left") file.fail(where + ".direction", "'" + side + "'");
  return side == "Left" ? Side::Left : Side::Right;
}

// The rest of tokenizers.Tokenizer.from_file after the model: added tokens, post-processor,
// truncation and padding.
void configure_from_json(Tokenizer& tokenizer, const json& root, const JsonFile& file) {
  const std::vector<AddedToken> added = added_tokens_from_json(root, file);
  tokenizer.add_tokens(added);
  tokenizer.set_post_processor(post_processor_from_json(root, file));
  if (root.contains("truncation") && !root.at("truncation").is_null()) {
    const json& t = root.at("truncation");
    TruncationOptions options;
    options.max_length = file.get<size_t>(t, "max_length", "truncation");
    const std::string strategy =
        file.get_or<std::string>(t, "strategy", "LongestFirst", "truncation");
    if (strategy == "LongestFirst")
      options.strategy = TruncationStrategy::LongestFirst;
    else if (strategy == "OnlyFirst")
      options.strategy = TruncationStrategy::OnlyFirst;
    else if (strategy == "OnlySecond")
      options.strategy = TruncationStrategy::OnlySecond;
    else
      file.fail("truncation.strategy", "'" + strategy + "'");
    options.direction = side_from_json(t, file, "truncation");
    tokenizer.set_truncation(options);
  }
  if (root.contains("padding") && !root.at("padding").is_null()) {
    const json& p = root.at("padding");
    PaddingOptions options;
    const json& strategy = file.at(p, "strategy", "padding");
    if (strategy.is_object() && strategy.contains("Fixed")) {
      options.length = file.get<size_t>(strategy, "Fixed", "padding.strategy");
    } else if (strategy != "BatchLongest") {
      file.fail("padding.strategy", strategy.dump());
    }
    options.direction = side_from_json(p, file, "padding");
    options.pad_to_multiple_of = file.get_or<size_t>(p, "pad_to_multiple_of", 0, "padding");
    options.pad_id = file.get_or<int64_t>(p, "pad_id", 0, "padding");
    options.pad_type_id = file.get_or<int64_t>(p, "pad_type_id", 0, "padding");
    options.pad_token = file.get_or<std::string>(p, "pad_token", "[PAD]", "padding");
    tokenizer.set_pad_token(options.pad_token);
    tokenizer.set_padding(options);
  } else {
    for (const char* candidate : {"[PAD]", "<pad>"}) {
      if (tokenizer.token_to_id(candidate)) {
        tokenizer.set_pad_token(candidate);
        break;
      }
    }
  }
}

std::string model_type(const json& root, const JsonFile& file) {
  return file.type_of(file.at(root, "model", "the root"), "model");
}

// A special token in tokenizer_config.json: a string or an AddedToken object.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& value = config.at(key);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value.at("content").is_string()) {
    return value.at("content").get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab_txt(const fs::path& vocab_txt,
                                                      const BertOptions& options) {
  const std::string bytes = read_file(vocab_txt);
  Vocab vocab;
  const auto lines = lines_of(bytes, vocab_txt);
  vocab.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i)
    vocab[std::string(trim_end(lines[i]))] = static_cast<int64_t>(i);
  TORCH_CHECK(!vocab.empty(), "WordPiece: ", vocab_txt, " holds no tokens");
  TORCH_CHECK(vocab.count(options.unk_token), "WordPiece: ", vocab_txt,
              " does not contain the unknown token '", options.unk_token, "'");
  WordPieceOptions wp;
  wp.normalizer = BertNormalizerOptions{true, options.handle_chinese_chars, options.strip_accents,
                                        options.lowercase};
  wp.unk_token = options.unk_token;
  WordPieceTokenizer tokenizer(std::move(vocab), std::move(wp));
  std::vector<AddedToken> specials;
  for (const std::string* token : {&options.pad_token, &options.unk_token, &options.cls_token,
                                   &options.sep_token, &options.mask_token}) {
    specials.emplace_back().content = *token;
  }
  tokenizer.add_tokens(specials);
  tokenizer.set_post_processor(
      PostProcessorTemplate::bert(options.cls_token, *tokenizer.token_to_id(options.cls_token),
                                  options.sep_token, *tokenizer.token_to_id(options.sep_token)));
  tokenizer.set_pad_token(options.pad_token);
  return tokenizer;
}

ByteLevelBPETokenizer ByteLevelBPETokenizer::from_files(const fs::path& vocab_json,
                                                        const fs::path& merges_txt,
                                                        const RobertaOptions& options) {
  const JsonFile file{vocab_json};
  Vocab vocab = vocab_from_json(read_json(vocab_json), file, "the vocabulary");
  const std::string bytes = read_file(merges_txt);
  std::vector<std::pair<std::string, std::string>> merges;
  size_t rank = 0;
  for (const std::string_view line : lines_of(bytes, merges_txt)) {
    if (line.starts_with("#version")) continue;
    ++rank;
    const size_t space = line.find(' ');
    TORCH_CHECK(
        space != std::string_view::npos && line.find(' ', space + 1) == std::string_view::npos,
        "BPE: ", merges_txt, " merge ", rank, " ('", line,
        "') is not two tokens separated by one space");
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  BPEOptions bpe;
  bpe.add_prefix_space = options.add_prefix_space;
  ByteLevelBPETokenizer tokenizer(std::move(vocab), merges, bpe);
  std::vector<AddedToken> specials;
  for (const std::string* token :
       {&options.bos_token, &options.eos_token, &options.sep_token, &options.cls_token,
        &options.unk_token, &options.pad_token, &options.mask_token}) {
    specials.emplace_back().content = *token;
  }
  tokenizer.add_tokens(specials);
  tokenizer.set_post_processor(
      PostProcessorTemplate::roberta(options.cls_token, *tokenizer.token_to_id(options.cls_token),
                                     options.sep_token, *tokenizer.token_to_id(options.sep_token)));
  tokenizer.set_pad_token(options.pad_token);
  return tokenizer;
}

WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(const fs::path& tokenizer_json) {
  const json root = read_json(tokenizer_json);
  const JsonFile file{tokenizer_json};
  const json& model = file.at(root, "model", "the root");
  const std::string type = file.type_of(model, "model");
  if (type != "WordPiece") file.fail("model", "type '" + type + "', expected WordPiece");
  WordPieceOptions options;
  options.unk_token = file.get_or<std::string>(model, "unk_token", "[UNK]", "model");
  options.continuing_subword_prefix =
      file.get_or<std::string>(model, "continuing_subword_prefix", "##", "model");
  options.max_input_chars_per_word =
      file.get_or<size_t>(model, "max_input_chars_per_word", 100, "model");
  if (!root.contains("normalizer") || root.at("normalizer").is_null()) {
    options.normalizer.reset();
  } else {
    const json& n = root.at("normalizer");
    const std::string ntype = file.type_of(n, "normalizer");
    if (ntype != "BertNormalizer") file.fail("normalizer", "type '" + ntype + "' is not supported");
    BertNormalizerOptions bert;
    bert.clean_text = file.get_or<bool>(n, "clean_text", true, "normalizer");
    bert.handle_chinese_chars = file.get_or<bool>(n, "handle_chinese_chars", true, "normalizer");
    if (n.contains("strip_accents") && !n.at("strip_accents").is_null()) {
      bert.strip_accents = file.get<bool>(n, "strip_accents", "normalizer");
    }
    bert.lowercase = file.get_or<bool>(n, "lowercase", true, "normalizer");
    options.normalizer = bert;
  }
  const json& pre = file.at(root, "pre_tokenizer", "the root");
  if (pre.is_null() || file.type_of(pre, "pre_tokenizer") != "BertPreTokenizer") {
    file.fail("pre_tokenizer", "only BertPreTokenizer is supported with WordPiece");
  }
  WordPieceTokenizer tokenizer(
      vocab_from_json(file.at(model, "vocab", "model"), file, "model.vocab"), std::move(options));
  configure_from_json(tokenizer, root, file);
  return tokenizer;
}

ByteLevelBPETokenizer ByteLevelBPETokenizer::from_tokenizer_json(const fs::path& tokenizer_json) {
  const json root = read_json(tokenizer_json);
  const JsonFile file{tokenizer_json};
  const json& model = file.at(root, "model", "the root");
  const std::string type = file.type_of(model, "model");
  if (type != "BPE") file.fail("model", "type '" + type + "', expected BPE");
  if (root.contains("normalizer") && !root.at("normalizer").is_null()) {
    file.fail("normalizer", "byte-level BPE is supported without a normalizer only");
  }
  BPEOptions options;
  const json* pre = &file.at(root, "pre_tokenizer", "the root");
  const char* const supported = "only ByteLevel, or a Sequence of Digits(individual_digits) and ByteLevel "
                                "(SmolLM2's), is supported with BPE";
  if (pre->is_null()) file.fail("pre_tokenizer", supported);
  if (file.type_of(*pre, "pre_tokenizer") == "Sequence") {
    const json& steps = file.at(*pre, "pretokenizers", "pre_tokenizer");
    if (!steps.is_array() || steps.size() != 2 || file.type_of(steps[0], "pre_tokenizer.pretokenizers[0]") != "Digits" ||
        !file.get_or<bool>(steps[0], "individual_digits", false, "pre_tokenizer.pretokenizers[0]")) {
      file.fail("pre_tokenizer", supported);
    }
    options.split_digits = true;
    pre = &steps[1];
  }
  if (file.type_of(*pre, "pre_tokenizer") != "ByteLevel") file.fail("pre_tokenizer", supported);
  options.add_prefix_space = file.get_or<bool>(*pre, "add_prefix_space", true, "pre_tokenizer");
  options.use_regex = file.get_or<bool>(*pre, "use_regex", true, "pre_tokenizer");
  if (file.get_or<double>(model, "dropout", 0.0, "model") != 0.0) {
    file.fail("model.dropout", "BPE dropout is not supported");
  }
  if (file.get_or<bool>(model, "byte_fallback", false, "model")) {
    file.fail("model.byte_fallback", "not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!file.get_or<std::string>(model, key, "", "model").empty()) {
      file.fail(std::string("model.") + key, "not supported with byte-level BPE");
    }
  }
  if (model.contains("unk_token") && !model.at("unk_token").is_null()) {
    options.unk_token = file.get<std::string>(model, "unk_token", "model");
  }
  options.fuse_unk = file.get_or<bool>(model, "fuse_unk", false, "model");
  options.ignore_merges = file.get_or<bool>(model, "ignore_merges", false, "model");
  std::vector<std::pair<std::string, std::string>> merges;
  const json& list = file.at(model, "merges", "model");
  if (!list.is_array()) file.fail("model.merges", "not an array");
  merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      // The older "a b" form, split at its first space as Hugging Face does.
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        file.fail(where, "'" + s + "' is not two tokens separated by one space");
      }
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      file.fail(where, "expected \"a b\" or [\"a\", \"b\"]");
    }
  }
  ByteLevelBPETokenizer tokenizer(
      vocab_from_json(file.at(model, "vocab", "model"), file, "model.vocab"), merges, options);
  configure_from_json(tokenizer, root, file);
  return tokenizer;
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const fs::path& tokenizer_json) {
  const json root = read_json(tokenizer_json);
  const JsonFile file{tokenizer_json};
  const std::string type = model_type(root, file);
  if (type == "WordPiece") {
    return std::make_unique<WordPieceTokenizer>(
        WordPieceTokenizer::from_tokenizer_json(tokenizer_json));
  }
  if (type == "BPE") {
    return std::make_unique<ByteLevelBPETokenizer>(
        ByteLevelBPETokenizer::from_tokenizer_json(tokenizer_json));
  }
  file.fail("model", "type '" + type + "' is not supported (WordPiece and BPE are)");
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& model_dir) {
  if (is_file(model_dir / "tokenizer.json"))
    return load_tokenizer_json(model_dir / "tokenizer.json");
  json config = json::object();
  if (is_file(model_dir / "tokenizer_config.json"))
    config = read_json(model_dir / "tokenizer_config.json");
  const JsonFile file{model_dir / "tokenizer_config.json"};
  if (is_file(model_dir / "vocab.txt")) {
    BertOptions options;
    options.lowercase = file.get_or<bool>(config, "do_lower_case", true, "the root");
    if (config.contains("strip_accents") && !config.at("strip_accents").is_null()) {
      options.strip_accents = file.get<bool>(config, "strip_accents", "the root");
    }
    options.handle_chinese_chars =
        file.get_or<bool>(config, "tokenize_chinese_chars", true, "the root");
    for (auto [key, field] :
         {std::pair{"unk_token", &options.unk_token}, std::pair{"sep_token", &options.sep_token},
          std::pair{"pad_token", &options.pad_token}, std::pair{"cls_token", &options.cls_token},
          std::pair{"mask_token", &options.mask_token}}) {
      if (auto token = config_token(config, key)) *field = *token;
    }
    return std::make_unique<WordPieceTokenizer>(
        WordPieceTokenizer::from_vocab_txt(model_dir / "vocab.txt", options));
  }
  if (is_file(model_dir / "vocab.json") && is_file(model_dir / "merges.txt")) {
    RobertaOptions options;
    options.add_prefix_space = file.get_or<bool>(config, "add_prefix_space", false, "the root");
    for (auto [key, field] :
         {std::pair{"bos_token", &options.bos_token}, std::pair{"eos_token", &options.eos_token},
          std::pair{"sep_token", &options.sep_token}, std::pair{"cls_token", &options.cls_token},
          std::pair{"unk_token", &options.unk_token}, std::pair{"pad_token", &options.pad_token},
          std::pair{"mask_token", &options.mask_token}}) {
      if (auto token = config_token(config, key)) *field = *token;
    }
    return std::make_unique<ByteLevelBPETokenizer>(ByteLevelBPETokenizer::from_files(
        model_dir / "vocab.json", model_dir / "merges.txt", options));
  }
  TORCH_CHECK(false, "tokenizer: ", model_dir,
              " has no tokenizer.json, vocab.txt, or vocab.json with merges.txt");
}

}  // namespace tlora::text
