// A model's chat template for the common ChatML shape (<|im_start|>role\ncontent<|im_end|>\n),
// recognised from the Jinja source that GGUF files and tokenizer_config.json carry. There is no
// Jinja engine: other templates are refused, naming what was expected.
#pragma once

#include "tlora/export.h"

#include <optional>
#include <span>
#include <string>

TLORA_API_BEGIN
namespace tlora::text {

/// One message of a conversation.
struct ChatMessage {
  /// "system", "user" or "assistant".
  std::string role;
  /// Its text.
  std::string content;
};

/// A ChatML chat template.
class ChatTemplate {
 public:
  /// Recognises `jinja` (tokenizer.chat_template) as ChatML, with the default system message it
  /// adds when the conversation has none (SmolLM2's "You are a helpful AI assistant named
  /// SmolLM, ..."); throws for any other template.
  static ChatTemplate from_jinja(const std::string& jinja);
  /// Plain ChatML without a default system message.
  static ChatTemplate chatml() { return ChatTemplate(); }

  /// The conversation as the model was trained to read it, what transformers'
  /// apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders.
  std::string apply(std::span<const ChatMessage> messages, bool add_generation_prompt = true) const;
  /// The system message added before a conversation that does not start with one, if any.
  const std::optional<std::string>& default_system() const { return default_system_; }

 private:
  std::optional<std::string> default_system_;
};

}  // namespace tlora::text
TLORA_API_END
