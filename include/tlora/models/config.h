// The configuration of a BERT or RoBERTa encoder, read from a Hugging Face `config.json`.
#pragma once

#include "tlora/export.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

TLORA_API_BEGIN
namespace tlora::models {

/// The feed-forward activations of transformers' ACT2FN that tlora implements (the `hidden_act`
/// names "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish" and "tanh").
enum class Activation { Gelu, GeluNew, GeluTanh, Relu, Silu, Tanh };

/// The fields of transformers' BertConfig / RobertaConfig that the encoders use, with their
/// defaults. Unknown fields of a config.json are ignored, as transformers keeps them as plain
/// attributes; fields naming a feature tlora does not implement are refused (see validate()).
struct EncoderConfig {
  /// "bert" or "roberta".
  std::string model_type = "bert";
  /// Rows of the word embedding.
  int64_t vocab_size = 30522;
  /// Width of the hidden states.
  int64_t hidden_size = 768;
  /// Number of transformer layers.
  int64_t num_hidden_layers = 12;
  /// Attention heads per layer; must divide hidden_size.
  int64_t num_attention_heads = 12;
  /// Width of the feed-forward layer.
  int64_t intermediate_size = 3072;
  /// The feed-forward activation, by transformers' name.
  std::string hidden_act = "gelu";
  /// Dropout after the embeddings and after each dense layer of a block, in training mode.
  double hidden_dropout_prob = 0.1;
  /// Dropout of the attention probabilities, in training mode.
  double attention_probs_dropout_prob = 0.1;
  /// Dropout of the classification head; hidden_dropout_prob when unset.
  std::optional<double> classifier_dropout;
  /// Rows of the position embedding (RoBERTa's positions start at pad_token_id + 1).
  int64_t max_position_embeddings = 512;
  /// Rows of the token type (segment) embedding.
  int64_t type_vocab_size = 2;
  /// Standard deviation of the normal initialisation of linear and embedding weights.
  double initializer_range = 0.02;
  /// Epsilon of every LayerNorm.
  double layer_norm_eps = 1e-12;
  /// The padding token: its word-embedding row gets no gradient, and RoBERTa derives positions
  /// from it. Required for RoBERTa.
  std::optional<int64_t> pad_token_id = 0;
  /// Outputs of a classification head: the size of `id2label` when present, else `num_labels`,
  /// else 2 (transformers' rule).
  int64_t num_labels = 2;
  /// "regression", "single_label_classification", "multi_label_classification", or "" to infer
  /// it from num_labels and the labels' dtype as transformers does.
  std::string problem_type;

  /// transformers' BertConfig() defaults.
  static EncoderConfig bert();
  /// transformers' RobertaConfig() defaults (vocab 50265, pad 1, eps 1e-12 as in the class).
  static EncoderConfig roberta();
  /// Parses a config.json text; `source` names it in errors. Fields absent from the JSON take
  /// the defaults of its model_type. Throws (naming the field) on a missing or unsupported
  /// model_type, a field of the wrong type, or anything validate() refuses.
  static EncoderConfig from_json(const std::string& text,
                                 const std::string& source = "config.json");
  /// Reads and parses the file at `path`.
  static EncoderConfig from_file(const std::filesystem::path& path);
  /// Reads `<dir>/config.json`.
  static EncoderConfig from_pretrained(const std::filesystem::path& dir);

  /// Throws, naming the field, unless every size is positive, hidden_size is a multiple of
  /// num_attention_heads, the dropouts lie in [0, 1), hidden_act is supported, pad_token_id is a
  /// row of the word embedding (and leaves RoBERTa at least one position), problem_type is known
  /// and consistent with num_labels.
  void validate() const;
  /// hidden_act as an Activation (throws for names validate() refuses).
  Activation activation() const;
  /// Width of one attention head.
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  /// The dropout of the classification head: classifier_dropout, else hidden_dropout_prob.
  double classifier_dropout_prob() const {
    return classifier_dropout.value_or(hidden_dropout_prob);
  }
  /// The longest sequence the position embedding allows.
  int64_t max_sequence_length() const;
};

}  // namespace tlora::models
TLORA_API_END
