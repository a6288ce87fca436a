#include "tokenizer/bpe.h"

#include <atomic>
#include <functional>
#include <queue>

#include "absl/hash/hash.h"
#include "tokenizer/utf8.h"

namespace moeserve {
namespace {

// Splits a legacy "a b" merge line; false unless it has exactly two non-empty parts.
bool split_legacy_merge(std::string_view line, std::string* a, std::string* b) {
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos) {
    return false;
  }
  *a = std::string(line.substr(0, sp));
  *b = std::string(line.substr(sp + 1));
  return !a->empty() && !b->empty();
}

}  // namespace

StatusOr<BpeModel> BpeModel::from_json(const Json& model, const JsonFields& fields,
                                       std::string_view path_view) {
  const std::string path(path_view);
  BpeModel m;
  if (!model.is_object()) {
    return fields.error(path, absl::StrCat("expected an object, got ", JsonFields::type_name(model)));
  }
  if (const Json* type = JsonFields::find(model, "type")) {
    MS_ASSIGN_OR_RETURN(std::string t, fields.as_string(*type, JsonFields::join(path, "type")));
    if (t != "BPE") {
      return fields.error(JsonFields::join(path, "type"),
                          absl::StrCat("unsupported model type \"", t, "\" (supported: BPE)"));
    }
  }
  if (const Json* dropout = JsonFields::find(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      return fields.error(JsonFields::join(path, "dropout"),
                          "BPE dropout is not supported (must be null or 0)");
    }
  }

  // Vocabulary.
  MS_ASSIGN_OR_RETURN(const Json* vocab, fields.require_object(model, "vocab", path));
  const std::string vocab_path = JsonFields::join(path, "vocab");
  m.vocab_.reserve(vocab->size());
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    MS_ASSIGN_OR_RETURN(int32_t id, fields.as_id(it.value(), JsonFields::join(vocab_path, it.key())));
    if (id > kMaxTokenId) {
      return fields.error(JsonFields::join(vocab_path, it.key()),
                          absl::StrCat("token id ", id, " is larger than ", kMaxTokenId));
    }
    m.vocab_[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  m.id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : m.vocab_) m.id_to_token_[static_cast<size_t>(id)] = token;

  // Options.
  MS_ASSIGN_OR_RETURN(std::optional<std::string> unk, fields.optional_string(model, "unk_token", path));
  if (unk) {
    // HF accepts an unk_token missing from the vocab and fails only when it is needed; here
    // such a token is simply never produced.
    if (auto id = m.token_to_id(*unk)) m.unk_id_ = *id;
  }
  MS_ASSIGN_OR_RETURN(std::optional<std::string> prefix,
                      fields.optional_string(model, "continuing_subword_prefix", path));
  MS_ASSIGN_OR_RETURN(std::optional<std::string> suffix,
                      fields.optional_string(model, "end_of_word_suffix", path));
  m.continuing_subword_prefix_ = prefix.value_or("");
  m.end_of_word_suffix_ = suffix.value_or("");
  MS_ASSIGN_OR_RETURN(m.fuse_unk_, fields.optional_bool(model, "fuse_unk", path, false));
  MS_ASSIGN_OR_RETURN(m.byte_fallback_, fields.optional_bool(model, "byte_fallback", path, false));
  MS_ASSIGN_OR_RETURN(m.ignore_merges_, fields.optional_bool(model, "ignore_merges", path, false));
  if (m.byte_fallback_) {
    for (int b = 0; b < 256; ++b) {
      m.byte_fallback_ids_[b] = m.token_to_id(absl::StrFormat("<0x%02X>", b));
    }
  }

  // Merges: [["a","b"], ...] or ["a b", ...]; rank = index in the list.
  const std::string merges_path = JsonFields::join(path, "merges");
  const Json* merges = JsonFields::find(model, "merges");
  if (merges != nullptr && !merges->is_array()) {
    return fields.error(merges_path, absl::StrCat("expected an array, got ", JsonFields::type_name(*merges)));
  }
  if (merges != nullptr) {
    m.merges_.reserve(merges->size());
    std::string a, b;
    uint32_t rank = 0;
    for (size_t i = 0; i < merges->size(); ++i) {
      const Json& entry = (*merges)[i];
      const std::string entry_path = JsonFields::index(merges_path, i);
      if (entry.is_string()) {
        const std::string& line = entry.get_ref<const std::string&>();
        if (line.rfind("#version", 0) == 0) continue;
        if (!split_legacy_merge(line, &a, &b)) {
          return fields.error(entry_path, absl::StrCat("merge \"", line,
                                                       "\" is not two tokens separated by one space"));
        }
      } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
                 entry[1].is_string()) {
        a = entry[0].get<std::string>();
        b = entry[1].get<std::string>();
      } else {
        return fields.error(entry_path, "expected \"a b\" or [\"a\", \"b\"]");
      }
      const auto a_id = m.token_to_id(a);
      const auto b_id = m.token_to_id(b);
      if (!a_id || !b_id) {
        return fields.error(entry_path, absl::StrCat("merge token \"", a_id ? b : a,
                                                     "\" is not in the vocab"));
      }
      std::string merged = a;
      std::string_view b_part = b;
      if (!m.continuing_subword_prefix_.empty() && b_part.starts_with(m.continuing_subword_prefix_)) {
        b_part.remove_prefix(m.continuing_subword_prefix_.size());
      }
      merged += b_part;
      const auto new_id = m.token_to_id(merged);
      if (!new_id) {
        return fields.error(entry_path, absl::StrCat("merged token \"", merged,
                                                     "\" is not in the vocab"));
      }
      // As in HF, a repeated pair takes the later entry's rank.
      m.merges_[pair_key(*a_id, *b_id)] = Merge{rank++, *new_id};
    }
  }
  return m;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(as_absl(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::string_view BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return {};
  return id_to_token_[static_cast<size_t>(id)];
}

namespace {
std::atomic<int64_t> g_cache_entries{0};  // over every BpeModel::Cache alive
}  // namespace

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (word.size() > kMaxCachedWordBytes) {
    tokenize_uncached(word, out);
    return;
  }
  CacheShard& shard =
      cache_->shards[absl::Hash<absl::string_view>()(as_absl(word)) % kNumCacheShards];
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.map.find(as_absl(word));
    if (it != shard.map.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out->size();
  tokenize_uncached(word, out);
  std::vector<int32_t> ids(out->begin() + static_cast<ptrdiff_t>(start), out->end());
  absl::MutexLock lock(&shard.mu);
  // Bounded memory: a full shard starts over (hot words come back within a few requests).
  if (shard.map.size() >= kCacheCapacityPerShard) {
    g_cache_entries.fetch_sub(static_cast<int64_t>(shard.map.size()), std::memory_order_relaxed);
    shard.map.clear();
  }
  if (shard.map.emplace(std::string(word), std::move(ids)).second) {
    g_cache_entries.fetch_add(1, std::memory_order_relaxed);
  }
}

BpeModel::Cache::~Cache() {
  for (CacheShard& shard : shards) {
    absl::MutexLock lock(&shard.mu);
    g_cache_entries.fetch_sub(static_cast<int64_t>(shard.map.size()), std::memory_order_relaxed);
  }
}

int64_t BpeModel::cache_entries_in_process() {
  return g_cache_entries.load(std::memory_order_relaxed);
}

void BpeModel::tokenize_uncached(std::string_view word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      out->push_back(*id);
      return;
    }
  }
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[static_cast<size_t>(n - 1)].next = n;
  };
  bool last_was_unk = false;
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = utf8_step(word, pos);
    const std::string_view ch = word.substr(pos, len);
    const bool first = pos == 0;
    pos += len;
    const bool last = pos == word.size();
    std::optional<int32_t> id;
    if (continuing_subword_prefix_.empty() && end_of_word_suffix_.empty()) {
      id = token_to_id(ch);
    } else {
      piece.clear();
      if (!first) piece += continuing_subword_prefix_;
      piece += ch;
      if (last) piece += end_of_word_suffix_;
      id = token_to_id(piece);
    }
    if (id) {
      add(*id);
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_fallback_ids_[static_cast<uint8_t>(c)].has_value();
      if (all) {
        for (char c : ch) add(*byte_fallback_ids_[static_cast<uint8_t>(c)]);
        last_was_unk = false;
        continue;
      }
    }
    if (unk_id_) {
      if (!(fuse_unk_ && last_was_unk)) add(*unk_id_);
      last_was_unk = true;
    }
  }

  // (rank, position, new_id); the smallest rank, then the leftmost position, merges first.
  using Candidate = std::tuple<uint32_t, int32_t, int32_t>;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[static_cast<size_t>(left)].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[static_cast<size_t>(left)].id,
                                     symbols[static_cast<size_t>(right)].id));
    if (it != merges_.end()) queue.emplace(it->second.rank, left, it->second.new_id);
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    const auto [rank, left, new_id] = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(left)];
    if (!l.alive || l.next < 0) continue;
    Symbol& r = symbols[static_cast<size_t>(l.next)];
    auto it = merges_.find(pair_key(l.id, r.id));
    if (it == merges_.end() || it->second.new_id != new_id || it->second.rank != rank) continue;
    l.id = new_id;
    r.alive = false;
    l.next = r.next;
    if (l.next >= 0) symbols[static_cast<size_t>(l.next)].prev = left;
    push_pair(l.prev);
    push_pair(left);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    out->push_back(symbols[static_cast<size_t>(i)].id);
  }
}

}  // namespace moeserve
