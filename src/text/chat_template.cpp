#include "tlora/text/chat_template.h"

#include <c10/util/Exception.h>

#include <regex>

namespace tlora::text {
namespace {

// The pieces of a ChatML template: each message as '<|im_start|>' + role + '\n' + content +
// '<|im_end|>' + '\n', and the generation prompt '<|im_start|>assistant\n'.
bool is_chatml(const std::string& jinja) {
  // A newline in a Jinja string literal is written as itself or as \n.
  static const std::regex message(
      R"(\{\{\s*'<\|im_start\|>'\s*\+\s*message\['role'\]\s*\+\s*'(?:\n|\\n)'\s*\+\s*message\['content'\]\s*\+\s*'<\|im_end\|>'\s*\+\s*'(?:\n|\\n)'\s*\}\})");
  static const std::regex prompt(R"(\{\{\s*'<\|im_start\|>assistant(?:\n|\\n)'\s*\}\})");
  return std::regex_search(jinja, message) && std::regex_search(jinja, prompt) &&
         jinja.find("{% for message in messages %}") != std::string::npos;
}

}  // namespace

ChatTemplate ChatTemplate::from_jinja(const std::string& jinja) {
  TORCH_CHECK(is_chatml(jinja),
              "chat template not supported: only ChatML templates ('<|im_start|>' + message['role'] + '\\n' + "
              "message['content'] + '<|im_end|>', and '<|im_start|>assistant\\n' as generation prompt) are "
              "recognised, and tlora has no Jinja engine; the template begins: ",
              jinja.substr(0, 120));
  ChatTemplate t;
  // SmolLM2's: {% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nTEXT<|im_end|>\n' }}{% endif %}
  static const std::regex system(
      R"(\{%-?\s*if loop\.first and messages\[0\]\['role'\] != 'system'\s*-?%\}\{\{\s*'<\|im_start\|>system(?:\n|\\n)([^']*)<\|im_end\|>(?:\n|\\n)'\s*\}\})");
  std::smatch m;
  if (std::regex_search(jinja, m, system)) t.default_system_ = m[1].str();
  return t;
}

std::string ChatTemplate::apply(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::string out;
  if (default_system_ && (messages.empty() || messages.front().role != "system")) {
    // The template adds it inside the loop, so an empty conversation gets none.
    if (!messages.empty()) out += "<|im_start|>system\n" + *default_system_ + "<|im_end|>\n";
  }
  for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace tlora::text
