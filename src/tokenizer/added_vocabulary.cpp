#include "tokenizer/added_vocabulary.h"

namespace moeserve {
namespace {

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

StatusOr<AddedVocabulary> AddedVocabulary::from_json(const Json* value, const JsonFields& fields,
                                                     std::string_view path_view) {
  const std::string path(path_view);
  std::vector<AddedToken> tokens;
  if (value != nullptr) {
    if (!value->is_array()) {
      return fields.error(path, absl::StrCat("expected an array, got ", JsonFields::type_name(*value)));
    }
    for (size_t i = 0; i < value->size(); ++i) {
      const Json& t = (*value)[i];
      const std::string p = JsonFields::index(path, i);
      AddedToken tok;
      MS_ASSIGN_OR_RETURN(tok.id, fields.require_id(t, "id", p));
      MS_ASSIGN_OR_RETURN(tok.content, fields.require_string(t, "content", p));
      if (tok.content.empty()) return fields.error(JsonFields::join(p, "content"), "empty token");
      MS_ASSIGN_OR_RETURN(tok.single_word, fields.optional_bool(t, "single_word", p, false));
      MS_ASSIGN_OR_RETURN(tok.lstrip, fields.optional_bool(t, "lstrip", p, false));
      MS_ASSIGN_OR_RETURN(tok.rstrip, fields.optional_bool(t, "rstrip", p, false));
      MS_ASSIGN_OR_RETURN(tok.normalized, fields.optional_bool(t, "normalized", p, false));
      MS_ASSIGN_OR_RETURN(tok.special, fields.optional_bool(t, "special", p, false));
      tokens.push_back(std::move(tok));
    }
  }
  auto vocab = from_tokens(std::move(tokens));
  if (!vocab.ok()) return fields.error(path, std::string(vocab.status().message()));
  return vocab;
}

StatusOr<AddedVocabulary> AddedVocabulary::from_tokens(std::vector<AddedToken> tokens) {
  AddedVocabulary v;
  v.tokens_ = std::move(tokens);
  v.trie_.emplace_back();
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    const AddedToken& t = v.tokens_[i];
    if (t.content.empty()) return absl::InvalidArgumentError("added token with empty content");
    if (!v.by_id_.emplace(t.id, i).second) {
      return absl::InvalidArgumentError(absl::StrCat("two added tokens have id ", t.id));
    }
    // A repeated content keeps its first id, like the first match in HF's map.
    v.by_content_.emplace(t.content, t.id);
    int32_t node = 0;
    for (char c : t.content) {
      const auto b = static_cast<uint8_t>(c);
      auto it = v.trie_[static_cast<size_t>(node)].children.find(b);
      if (it == v.trie_[static_cast<size_t>(node)].children.end()) {
        const auto child = static_cast<int32_t>(v.trie_.size());
        v.trie_[static_cast<size_t>(node)].children.emplace(b, child);
        v.trie_.emplace_back();
        node = child;
      } else {
        node = it->second;
      }
    }
    if (v.trie_[static_cast<size_t>(node)].token < 0) {
      v.trie_[static_cast<size_t>(node)].token = static_cast<int32_t>(i);
    }
    v.first_byte_[static_cast<uint8_t>(t.content[0])] = true;
  }
  return v;
}

int32_t AddedVocabulary::longest_at(std::string_view text, size_t pos, size_t* len) const {
  int32_t node = 0;
  int32_t best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& children = trie_[static_cast<size_t>(node)].children;
    auto it = children.find(static_cast<uint8_t>(text[i]));
    if (it == children.end()) break;
    node = it->second;
    if (trie_[static_cast<size_t>(node)].token >= 0) {
      best = trie_[static_cast<size_t>(node)].token;
      *len = i + 1 - pos;
    }
  }
  return best;
}

void AddedVocabulary::split(std::string_view text, std::vector<Piece>* out) const {
  size_t emitted = 0;  // text before this offset is already in *out
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const int32_t index = longest_at(text, pos, &len);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[static_cast<size_t>(index)];
    size_t start = pos, stop = pos + len;
    if (tok.single_word && ((start > 0 && is_word_char(text[start - 1])) ||
                            (stop < text.size() && is_word_char(text[stop])))) {
      ++pos;
      continue;
    }
    if (tok.lstrip) {
      while (start > emitted && is_ascii_space(text[start - 1])) --start;
    }
    if (tok.rstrip) {
      while (stop < text.size() && is_ascii_space(text[stop])) ++stop;
    }
    if (start > emitted) out->push_back({text.substr(emitted, start - emitted), -1});
    out->push_back({text.substr(start, stop - start), tok.id});
    emitted = pos = stop;
  }
  if (emitted < text.size()) out->push_back({text.substr(emitted), -1});
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(as_absl(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace moeserve
