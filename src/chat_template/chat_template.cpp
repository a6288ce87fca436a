#include "chat_template/chat_template.h"

#include "chat_template/jinja_ast.h"
#include "chat_template/jinja_interpreter.h"
#include "chat_template/jinja_lexer.h"
#include "chat_template/jinja_parser.h"

namespace moeserve {

struct ChatTemplate::Impl {
  std::string source;
  jinja::Body body;
};

StatusOr<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  auto impl = std::make_shared<Impl>();
  impl->source = std::string(source);
  MS_ASSIGN_OR_RETURN(std::vector<jinja::Token> tokens, jinja::lex(impl->source));
  MS_ASSIGN_OR_RETURN(impl->body, jinja::parse(tokens, impl->source));
  return ChatTemplate(std::move(impl));
}

const std::string& ChatTemplate::source() const {
  return impl_->source;
}

namespace {

template <typename Json>
StatusOr<std::string> render_impl(const ChatTemplate& t, const jinja::Body& body,
                                  const Json& context) {
  if (!context.is_object() && !context.is_null()) {
    return absl::InvalidArgumentError("chat template context must be a JSON object");
  }
  jinja::Value globals = jinja::Value::from_json(context.is_null() ? Json::object() : context);
  jinja::Interpreter interp(body, t.source());
  return interp.render(globals);
}

template <typename Json>
StatusOr<std::string> apply_impl(const ChatTemplate& tmpl, const Json& messages,
                                 bool add_generation_prompt, const std::string& bos_token,
                                 const std::string& eos_token, const Json& extra_kwargs) {
  if (!messages.is_array()) {
    return absl::InvalidArgumentError("apply_chat_template: messages must be a JSON array");
  }
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object()) {
    return absl::InvalidArgumentError("apply_chat_template: extra kwargs must be a JSON object");
  }
  Json context = extra_kwargs.is_object() ? extra_kwargs : Json::object();
  context["messages"] = messages;
  context["add_generation_prompt"] = add_generation_prompt;
  context["bos_token"] = bos_token;
  context["eos_token"] = eos_token;
  return tmpl.render(context);
}

}  // namespace

StatusOr<std::string> ChatTemplate::render(const nlohmann::json& context) const {
  return render_impl(*this, impl_->body, context);
}

StatusOr<std::string> ChatTemplate::render(const nlohmann::ordered_json& context) const {
  return render_impl(*this, impl_->body, context);
}

StatusOr<std::string> apply_chat_template(const ChatTemplate& tmpl, const nlohmann::json& messages,
                                          bool add_generation_prompt, const std::string& bos_token,
                                          const std::string& eos_token,
                                          const nlohmann::json& extra_kwargs) {
  return apply_impl(tmpl, messages, add_generation_prompt, bos_token, eos_token, extra_kwargs);
}

StatusOr<std::string> apply_chat_template(const ChatTemplate& tmpl,
                                          const nlohmann::ordered_json& messages,
                                          bool add_generation_prompt, const std::string& bos_token,
                                          const std::string& eos_token,
                                          const nlohmann::ordered_json& extra_kwargs) {
  return apply_impl(tmpl, messages, add_generation_prompt, bos_token, eos_token, extra_kwargs);
}

}  // namespace moeserve
