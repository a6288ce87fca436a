#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace moeserve {
namespace {

StatusOr<Json> parse_json_text(std::string_view text, std::string_view source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(as_absl(source), ": not valid JSON: ", e.what()));
  }
}

// NotFound when the file does not exist; other I/O failures are Internal.
StatusOr<std::string> read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat(path.string(), ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat(path.string(), ": read error"));
  return std::move(ss).str();
}

// tokenizer_config.json spells tokens as "text" or {"__type":"AddedToken","content":"text",...}.
StatusOr<std::optional<std::string>> config_token(const Json& config, std::string_view key,
                                                  const JsonFields& fields) {
  const Json* v = JsonFields::find(config, key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->is_string()) return std::optional<std::string>(v->get<std::string>());
  if (v->is_object()) {
    MS_ASSIGN_OR_RETURN(std::string content, fields.require_string(*v, "content", std::string(key)));
    return std::optional<std::string>(std::move(content));
  }
  return fields.error(key, absl::StrCat("expected a string or an AddedToken object, got ",
                                        JsonFields::type_name(*v)));
}

}  // namespace

StatusOr<Tokenizer> Tokenizer::from_json(std::string_view json, std::string_view source) {
  MS_ASSIGN_OR_RETURN(Json root, parse_json_text(json, source));
  JsonFields fields{std::string(source)};
  Tokenizer tok;
  try {
    MS_RETURN_IF_ERROR(tok.parse(root, fields));
  } catch (const Json::exception& e) {
    // Backstop: field access is type-checked, so this only guards against oversights.
    return fields.error("", e.what());
  }
  return tok;
}

Status Tokenizer::parse(const Json& root, const JsonFields& fields) {
  if (!root.is_object()) {
    return fields.error("(root)", absl::StrCat("expected an object, got ", JsonFields::type_name(root)));
  }
  const Json null_json;
  auto member = [&](std::string_view key) -> const Json& {
    const Json* v = JsonFields::find(root, key);
    return v == nullptr ? null_json : *v;
  };
  MS_ASSIGN_OR_RETURN(added_, AddedVocabulary::from_json(JsonFields::find(root, "added_tokens"),
                                                         fields, "added_tokens"));
  MS_RETURN_IF_ERROR(parse_normalizer(member("normalizer"), fields, "normalizer"));
  MS_ASSIGN_OR_RETURN(pre_tokenizer_,
                      PreTokenizer::from_json(member("pre_tokenizer"), fields, "pre_tokenizer"));
  MS_ASSIGN_OR_RETURN(const Json* model, fields.require_object(root, "model", ""));
  MS_ASSIGN_OR_RETURN(model_, BpeModel::from_json(*model, fields, "model"));
  MS_RETURN_IF_ERROR(parse_post_processor(member("post_processor"), fields, "post_processor"));
  MS_RETURN_IF_ERROR(parse_decoder(member("decoder"), fields, "decoder"));

  vocab_size_ = model_.id_limit();
  for (const AddedToken& t : added_.tokens()) vocab_size_ = std::max<int64_t>(vocab_size_, t.id + 1);
  if (!template_prefix_.empty()) bos_id_ = template_prefix_.front();
  token_bytes_.resize(static_cast<size_t>(vocab_size_));
  for (int32_t id = 0; id < vocab_size_; ++id) {
    const std::string_view token = id_to_token(id);
    std::string& bytes = token_bytes_[static_cast<size_t>(id)];
    if (decoder_ != Decoder::kByteLevel || !byte_level_decode_token(token, &bytes)) {
      bytes.assign(token);
    }
  }
  return absl::OkStatus();
}

Status Tokenizer::parse_normalizer(const Json& value, const JsonFields& fields,
                                   const std::string& path) {
  if (value.is_null()) return absl::OkStatus();
  MS_ASSIGN_OR_RETURN(std::string type, fields.require_string(value, "type", path));
  if (type == "Sequence") {
    MS_ASSIGN_OR_RETURN(const Json* list, fields.require_array(value, "normalizers", path));
    const std::string list_path = JsonFields::join(path, "normalizers");
    for (size_t i = 0; i < list->size(); ++i) {
      MS_RETURN_IF_ERROR(parse_normalizer((*list)[i], fields, JsonFields::index(list_path, i)));
    }
    return absl::OkStatus();
  }
  return fields.error(JsonFields::join(path, "type"),
                      absl::StrCat("unsupported normalizer \"", type,
                                   "\" (supported: null, Sequence of supported normalizers)"));
}

Status Tokenizer::parse_post_processor(const Json& value, const JsonFields& fields,
                                       const std::string& path) {
  if (value.is_null()) return absl::OkStatus();
  MS_ASSIGN_OR_RETURN(std::string type, fields.require_string(value, "type", path));
  if (type == "ByteLevel") return absl::OkStatus();  // adjusts offsets only
  if (type == "Sequence") {
    MS_ASSIGN_OR_RETURN(const Json* list, fields.require_array(value, "processors", path));
    const std::string list_path = JsonFields::join(path, "processors");
    for (size_t i = 0; i < list->size(); ++i) {
      MS_RETURN_IF_ERROR(parse_post_processor((*list)[i], fields, JsonFields::index(list_path, i)));
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return fields.error(JsonFields::join(path, "type"),
                        absl::StrCat("unsupported post-processor \"", type,
                                     "\" (supported: TemplateProcessing, ByteLevel, Sequence)"));
  }
  MS_ASSIGN_OR_RETURN(const Json* single, fields.require_array(value, "single", path));
  const Json* specials = JsonFields::find(value, "special_tokens");
  const std::string single_path = JsonFields::join(path, "single");
  std::vector<int32_t> prefix, suffix;
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& item = (*single)[i];
    const std::string item_path = JsonFields::index(single_path, i);
    if (const Json* seq = JsonFields::find(item, "Sequence")) {
      MS_ASSIGN_OR_RETURN(std::string id, fields.require_string(*seq, "id", JsonFields::join(item_path, "Sequence")));
      if (id != "A") {
        return fields.error(item_path, absl::StrCat("single template uses sequence \"", id,
                                                    "\"; only A exists for one input"));
      }
      if (seen_sequence) return fields.error(item_path, "sequence A appears twice");
      seen_sequence = true;
      continue;
    }
    const Json* special = JsonFields::find(item, "SpecialToken");
    if (special == nullptr) {
      return fields.error(item_path, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
    const std::string special_path = JsonFields::join(item_path, "SpecialToken");
    MS_ASSIGN_OR_RETURN(std::string name, fields.require_string(*special, "id", special_path));
    const Json* entry = specials == nullptr ? nullptr : JsonFields::find(*specials, name);
    if (entry == nullptr) {
      return fields.error(JsonFields::join(path, "special_tokens"),
                          absl::StrCat("no entry for template token \"", name, "\""));
    }
    const std::string entry_path = JsonFields::join(JsonFields::join(path, "special_tokens"), name);
    MS_ASSIGN_OR_RETURN(const Json* ids, fields.require_array(*entry, "ids", entry_path));
    for (size_t k = 0; k < ids->size(); ++k) {
      MS_ASSIGN_OR_RETURN(int32_t id, fields.as_id((*ids)[k], JsonFields::index(JsonFields::join(entry_path, "ids"), k)));
      (seen_sequence ? suffix : prefix).push_back(id);
    }
  }
  if (!seen_sequence) return fields.error(single_path, "template has no {\"Sequence\": {\"id\": \"A\"}}");
  // Processors of a Sequence apply in order, each wrapping the previous result.
  prefix.insert(prefix.end(), template_prefix_.begin(), template_prefix_.end());
  template_prefix_ = std::move(prefix);
  template_suffix_.insert(template_suffix_.end(), suffix.begin(), suffix.end());
  return absl::OkStatus();
}

Status Tokenizer::parse_decoder(const Json& value, const JsonFields& fields, const std::string& path) {
  if (value.is_null()) return absl::OkStatus();
  MS_ASSIGN_OR_RETURN(std::string type, fields.require_string(value, "type", path));
  if (type == "ByteLevel") {
    decoder_ = Decoder::kByteLevel;
    return absl::OkStatus();
  }
  if (type == "Sequence") {
    MS_ASSIGN_OR_RETURN(const Json* list, fields.require_array(value, "decoders", path));
    const std::string list_path = JsonFields::join(path, "decoders");
    for (size_t i = 0; i < list->size(); ++i) {
      MS_RETURN_IF_ERROR(parse_decoder((*list)[i], fields, JsonFields::index(list_path, i)));
    }
    return absl::OkStatus();
  }
  return fields.error(JsonFields::join(path, "type"),
                      absl::StrCat("unsupported decoder \"", type, "\" (supported: ByteLevel, Sequence)"));
}

StatusOr<Tokenizer> Tokenizer::load(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  const std::filesystem::path tokenizer_path = dir / "tokenizer.json";
  MS_ASSIGN_OR_RETURN(std::string text, read_file(tokenizer_path));
  MS_ASSIGN_OR_RETURN(Tokenizer tok, from_json(text, tokenizer_path.string()));

  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  auto config_text = read_file(config_path);
  if (config_text.ok()) {
    MS_ASSIGN_OR_RETURN(Json config, parse_json_text(*config_text, config_path.string()));
    JsonFields fields{config_path.string()};
    try {
      MS_RETURN_IF_ERROR(tok.apply_config(config, fields));
    } catch (const Json::exception& e) {
      return fields.error("", e.what());
    }
  } else if (!absl::IsNotFound(config_text.status())) {
    return config_text.status();
  }
  if (tok.chat_template_.empty()) {
    auto jinja = read_file(dir / "chat_template.jinja");
    if (jinja.ok()) {
      tok.chat_template_ = std::move(*jinja);
    } else if (!absl::IsNotFound(jinja.status())) {
      return jinja.status();
    }
  }
  return tok;
}

Status Tokenizer::apply_config(const Json& config, const JsonFields& fields) {
  if (!config.is_object()) {
    return fields.error("(root)", absl::StrCat("expected an object, got ", JsonFields::type_name(config)));
  }
  auto resolve = [&](std::string_view key, std::optional<int32_t>* out) -> Status {
    MS_ASSIGN_OR_RETURN(std::optional<std::string> content, config_token(config, key, fields));
    if (!content) return absl::OkStatus();
    auto id = token_to_id(*content);
    if (!id) return fields.error(key, absl::StrCat("token \"", *content, "\" is not in the vocabulary"));
    *out = *id;
    return absl::OkStatus();
  };
  MS_RETURN_IF_ERROR(resolve("bos_token", &bos_id_));
  MS_RETURN_IF_ERROR(resolve("eos_token", &eos_id_));

  if (const Json* tmpl = JsonFields::find(config, "chat_template")) {
    if (tmpl->is_string()) {
      chat_template_ = tmpl->get<std::string>();
    } else if (tmpl->is_array()) {
      // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
      for (size_t i = 0; i < tmpl->size(); ++i) {
        const std::string p = JsonFields::index("chat_template", i);
        MS_ASSIGN_OR_RETURN(std::string name, fields.require_string((*tmpl)[i], "name", p));
        MS_ASSIGN_OR_RETURN(std::string text, fields.require_string((*tmpl)[i], "template", p));
        if (name == "default") chat_template_ = std::move(text);
      }
    } else {
      return fields.error("chat_template", absl::StrCat("expected a string or a list, got ",
                                                        JsonFields::type_name(*tmpl)));
    }
  }

  MS_ASSIGN_OR_RETURN(std::optional<std::string> cls, fields.optional_string(config, "tokenizer_class", ""));
  if (cls && *cls == "LlamaTokenizerFast") {
    MS_ASSIGN_OR_RETURN(bool add_bos, fields.optional_bool(config, "add_bos_token", "", true));
    MS_ASSIGN_OR_RETURN(bool add_eos, fields.optional_bool(config, "add_eos_token", "", false));
    if (add_bos && !bos_id_) return fields.error("add_bos_token", "true but no bos_token is set");
    if (add_eos && !eos_id_) return fields.error("add_eos_token", "true but no eos_token is set");
    template_prefix_.clear();
    template_suffix_.clear();
    if (add_bos) template_prefix_.push_back(*bos_id_);
    if (add_eos) template_suffix_.push_back(*eos_id_);
  }
  return absl::OkStatus();
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids.insert(ids.end(), template_prefix_.begin(), template_prefix_.end());
  std::vector<AddedVocabulary::Piece> pieces;
  if (added_.empty()) {
    pieces.push_back({text, -1});
  } else {
    added_.split(text, &pieces);
  }
  std::vector<std::string> words;
  for (const AddedVocabulary::Piece& piece : pieces) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    words.clear();
    pre_tokenizer_.split(piece.text, &words);
    for (const std::string& w : words) model_.tokenize(w, &ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), template_suffix_.begin(), template_suffix_.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (id_to_token(id).empty()) continue;
    if (skip_special_tokens && is_special(id)) continue;
    if (decoder_ == Decoder::kNone && !first) bytes.push_back(' ');
    bytes.append(token_bytes(id));
    first = false;
  }
  return utf8_lossy(bytes);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = added_.token_to_id(token)) return id;
  return model_.token_to_id(token);
}

std::string_view Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* t = added_.find(id)) return t->content;
  return model_.id_to_token(id);
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* t = added_.find(id);
  return t != nullptr && t->special;
}

}  // namespace moeserve
