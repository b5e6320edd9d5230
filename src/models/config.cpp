#include "tlora/models/config.h"

#include "io/json_fields.h"
#include "tlora/io/files.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>


namespace tlora::models {
namespace {

using nlohmann::json;
using Fields = tlora::detail::JsonFields;

struct ActivationName {
  const char* name;
  Activation activation;
};
// "swish" is nn.SiLU in ACT2FN, the same function as "silu".
constexpr ActivationName kActivations[] = {{"gelu", Activation::Gelu},
                                           {"gelu_new", Activation::GeluNew},
                                           {"gelu_pytorch_tanh", Activation::GeluTanh},
                                           {"relu", Activation::Relu},
                                           {"silu", Activation::Silu},
                                           {"swish", Activation::Silu},
                                           {"tanh", Activation::Tanh}};

std::string supported_activations() {
  std::string names;
  for (const auto& a : kActivations) names += (names.empty() ? "" : ", ") + std::string(a.name);
  return names;
}

}  // namespace

EncoderConfig EncoderConfig::bert() { return EncoderConfig{}; }

EncoderConfig EncoderConfig::roberta() {
  EncoderConfig c;
  c.model_type = "roberta";
  c.vocab_size = 50265;
  c.pad_token_id = 1;
  return c;
}

EncoderConfig EncoderConfig::from_json(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double
    TORCH_CHECK(false, source, ": not valid JSON: ", e.what());
  }
  TORCH_CHECK(root.is_object(), source, ": expected a JSON object");
  const Fields fields(root, source);

  std::string model_type;
  TORCH_CHECK(fields.find("model_type"), source,
              ": has no field 'model_type' (expected \"bert\" or \"roberta\")");
  fields.string("model_type", model_type);
  TORCH_CHECK(model_type == "bert" || model_type == "roberta", source, ": model_type '", model_type,
              "' is not supported (supported: bert, roberta)");
  EncoderConfig c = model_type == "bert" ? bert() : roberta();

  fields.integer("vocab_size", c.vocab_size);
  fields.integer("hidden_size", c.hidden_size);
  fields.integer("num_hidden_layers", c.num_hidden_layers);
  fields.integer("num_attention_heads", c.num_attention_heads);
  fields.integer("intermediate_size", c.intermediate_size);
  fields.string("hidden_act", c.hidden_act, " (a callable activation cannot come from JSON)");
  fields.number("hidden_dropout_prob", c.hidden_dropout_prob);
  fields.number("attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  fields.optional_number("classifier_dropout", c.classifier_dropout);
  fields.integer("max_position_embeddings", c.max_position_embeddings);
  fields.integer("type_vocab_size", c.type_vocab_size);
  fields.number("initializer_range", c.initializer_range);
  fields.number("layer_norm_eps", c.layer_norm_eps);
  fields.optional_integer("pad_token_id", c.pad_token_id);

  if (const json* v = fields.find("position_embedding_type"); v && !v->is_null()) {
    TORCH_CHECK(v->is_string() && v->get<std::string>() == "absolute", source,
                ": position_embedding_type ", v->dump(),
                " is not supported (only \"absolute\"; relative_key and relative_key_query are not "
                "implemented)");
  }
  fields.refuse_true("is_decoder", "causal self-attention; the encoders are bidirectional");
  fields.refuse_true("add_cross_attention", "cross-attention layers; the encoders are bidirectional");
  if (const json* v = fields.find("pruned_heads"); v && !v->is_null()) {
    TORCH_CHECK(v->is_object() && v->empty(), source, ": pruned_heads ", v->dump(),
                " is not supported (every layer must keep all its heads)");
  }

  // transformers stores the label count as the size of id2label; num_labels only where id2label
  // is absent (older files, or hand-written ones).
  std::optional<int64_t> num_labels;
  fields.optional_integer("num_labels", num_labels);
  if (const json* v = fields.find("id2label"); v && !v->is_null()) {
    TORCH_CHECK(v->is_object(), source, ": field 'id2label' must be an object, got ", v->dump());
    TORCH_CHECK(!num_labels || *num_labels == static_cast<int64_t>(v->size()), source,
                ": num_labels=", num_labels.value_or(0), " is incompatible with the ", v->size(),
                " entries of id2label");
    c.num_labels = static_cast<int64_t>(v->size());
  } else if (num_labels) {
    c.num_labels = *num_labels;
  }
  if (const json* v = fields.find("problem_type"); v && !v->is_null()) {
    fields.string("problem_type", c.problem_type);
  }

  try {
    c.validate();
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, source, ": ", e.what_without_backtrace());
  }
  return c;
}

EncoderConfig EncoderConfig::from_file(const std::filesystem::path& path) {
  return from_json(read_file(path, "model configuration (a Hugging Face model folder has a config.json)"),
                   path.string());
}

EncoderConfig EncoderConfig::from_pretrained(const std::filesystem::path& dir) {
  return from_file(dir / "config.json");
}

void EncoderConfig::validate() const {
  TORCH_CHECK(model_type == "bert" || model_type == "roberta", "model_type '", model_type,
              "' is not supported (supported: bert, roberta)");
  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"intermediate_size", intermediate_size},
      {"max_position_embeddings", max_position_embeddings},
      {"type_vocab_size", type_vocab_size},
      {"num_labels", num_labels}};
  for (const auto& [name, value] : sizes) {
    TORCH_CHECK(value > 0, name, " must be positive, got ", value);
  }
  TORCH_CHECK(hidden_size % num_attention_heads == 0, "hidden_size (", hidden_size,
              ") is not a multiple of num_attention_heads (", num_attention_heads, ")");
  const std::pair<const char*, double> dropouts[] = {
      {"hidden_dropout_prob", hidden_dropout_prob},
      {"attention_probs_dropout_prob", attention_probs_dropout_prob},
      {"classifier_dropout", classifier_dropout_prob()}};
  for (const auto& [name, value] : dropouts) {
    TORCH_CHECK(value >= 0 && value < 1, name, " must lie in [0, 1), got ", value);
  }
  TORCH_CHECK(initializer_range >= 0, "initializer_range must not be negative, got ",
              initializer_range);
  TORCH_CHECK(layer_norm_eps > 0, "layer_norm_eps must be positive, got ", layer_norm_eps);
  activation();
  if (pad_token_id) {
    TORCH_CHECK(*pad_token_id >= 0 && *pad_token_id < vocab_size, "pad_token_id ", *pad_token_id,
                " is not a row of the word embedding (vocab_size ", vocab_size, ")");
  }
  if (model_type == "roberta") {
    TORCH_CHECK(pad_token_id, "pad_token_id must be set for roberta (positions start after it)");
    TORCH_CHECK(max_position_embeddings > *pad_token_id + 1, "max_position_embeddings (",
                max_position_embeddings, ") leaves no position after pad_token_id + 1 (",
                *pad_token_id + 1, ")");
  }
  TORCH_CHECK(problem_type.empty() || problem_type == "regression" ||
                  problem_type == "single_label_classification" ||
                  problem_type == "multi_label_classification",
              "problem_type '", problem_type,
              "' is not supported (regression, single_label_classification, "
              "multi_label_classification)");
  TORCH_CHECK(problem_type != "single_label_classification" || num_labels > 1,
              "problem_type single_label_classification needs num_labels > 1, got ", num_labels);
}

Activation EncoderConfig::activation() const {
  for (const auto& a : kActivations) {
    if (hidden_act == a.name) return a.activation;
  }
  TORCH_CHECK(false, "hidden_act '", hidden_act,
              "' is not supported (supported: ", supported_activations(), ")");
}

int64_t EncoderConfig::max_sequence_length() const {
  return model_type == "roberta" ? max_position_embeddings - pad_token_id.value_or(0) - 1
                                 : max_position_embeddings;
}

}  // namespace tlora::models
