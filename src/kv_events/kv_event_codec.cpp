#include "kv_events/kv_event_codec.h"

#include <exception>
#include <functional>
#include <limits>
#include <msgpack.hpp>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace moeserve::kv_events {
namespace {

using msgpack::object;
namespace type = msgpack::type;

constexpr size_t kMaxDepth = 8;

// absl::string_view is not std::string_view in this build.
absl::string_view av(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

absl::Status bad(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("KV event batch: ", av(what)));
}

std::string_view as_sv(const object& o) {
  if (o.type == type::STR) return {o.via.str.ptr, o.via.str.size};
  if (o.type == type::BIN) return {o.via.bin.ptr, o.via.bin.size};
  return {};
}

bool is_text(const object& o) {
  return o.type == type::STR;
}

// Finds `key` in a map object; null when absent.
const object* map_get(const object& m, std::string_view key) {
  for (uint32_t i = 0; i < m.via.map.size; ++i) {
    const msgpack::object_kv& kv = m.via.map.ptr[i];
    if (is_text(kv.key) && as_sv(kv.key) == key) return &kv.val;
  }
  return nullptr;
}

StatusOr<uint64_t> read_hash(const object& o) {
  switch (o.type) {
    case type::POSITIVE_INTEGER:
      return o.via.u64;
    case type::NEGATIVE_INTEGER:
      return static_cast<uint64_t>(o.via.i64);
    case type::BIN: {
      std::string_view b = as_sv(o);
      if (b.empty()) return bad("empty block hash");
      if (b.size() > 8) b = b.substr(b.size() - 8);
      uint64_t v = 0;
      for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
      return v;
    }
    default:
      return bad("a block hash is neither an integer nor bytes");
  }
}

StatusOr<std::vector<uint64_t>> read_hashes(const object* o) {
  if (o == nullptr || o->type != type::ARRAY) return bad("block_hashes is not an array");
  std::vector<uint64_t> out;
  out.reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    MS_ASSIGN_OR_RETURN(uint64_t h, read_hash(o->via.array.ptr[i]));
    out.push_back(h);
  }
  return out;
}

StatusOr<int64_t> read_int(const object* o, std::string_view name) {
  if (o != nullptr && o->type == type::POSITIVE_INTEGER &&
      o->via.u64 <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(o->via.u64);
  }
  if (o != nullptr && o->type == type::NEGATIVE_INTEGER) return o->via.i64;
  return bad(absl::StrCat(av(name), " is not an integer"));
}

StatusOr<std::optional<int64_t>> read_opt_int(const object* o, std::string_view name) {
  if (o == nullptr || o->type == type::NIL) return std::optional<int64_t>();
  MS_ASSIGN_OR_RETURN(int64_t v, read_int(o, name));
  return std::optional<int64_t>(v);
}

StatusOr<std::optional<std::string>> read_opt_str(const object* o, std::string_view name) {
  if (o == nullptr || o->type == type::NIL) return std::optional<std::string>();
  if (!is_text(*o)) return bad(absl::StrCat(av(name), " is not a string"));
  return std::optional<std::string>(std::string(as_sv(*o)));
}

StatusOr<std::vector<int32_t>> read_tokens(const object* o) {
  if (o == nullptr || o->type != type::ARRAY) return bad("token_ids is not an array");
  std::vector<int32_t> out;
  out.reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    const object& t = o->via.array.ptr[i];
    if (t.type != type::POSITIVE_INTEGER ||
        t.via.u64 > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      return bad("a token id is not a non-negative 32-bit integer");
    }
    out.push_back(static_cast<int32_t>(t.via.u64));
  }
  return out;
}

// A struct's field by position (array_like) or by name (map encoding); null when absent.
using FieldFn = std::function<const object*(uint32_t index, std::string_view name)>;

StatusOr<BlockStored> read_block_stored(const FieldFn& f) {
  BlockStored e;
  MS_ASSIGN_OR_RETURN(e.block_hashes, read_hashes(f(0, "block_hashes")));
  const object* parent = f(1, "parent_block_hash");
  if (parent != nullptr && parent->type != type::NIL) {
    MS_ASSIGN_OR_RETURN(uint64_t p, read_hash(*parent));
    e.parent_block_hash = p;
  }
  MS_ASSIGN_OR_RETURN(e.token_ids, read_tokens(f(2, "token_ids")));
  MS_ASSIGN_OR_RETURN(e.block_size, read_int(f(3, "block_size"), "block_size"));
  if (e.block_size <= 0) return bad("block_size is not positive");
  MS_ASSIGN_OR_RETURN(e.lora_id, read_opt_int(f(4, "lora_id"), "lora_id"));
  MS_ASSIGN_OR_RETURN(e.medium, read_opt_str(f(5, "medium"), "medium"));
  MS_ASSIGN_OR_RETURN(e.lora_name, read_opt_str(f(6, "lora_name"), "lora_name"));
  return e;
}

StatusOr<BlockRemoved> read_block_removed(const FieldFn& f) {
  BlockRemoved e;
  MS_ASSIGN_OR_RETURN(e.block_hashes, read_hashes(f(0, "block_hashes")));
  MS_ASSIGN_OR_RETURN(e.medium, read_opt_str(f(1, "medium"), "medium"));
  return e;
}

// Appends the event to `out`; unknown tags only count.
Status read_event(const object& o, KvEventBatch* out) {
  std::string_view tag;
  FieldFn fields;
  if (o.type == type::ARRAY) {
    if (o.via.array.size == 0 || !is_text(o.via.array.ptr[0])) {
      return bad("an event array does not start with its tag");
    }
    tag = as_sv(o.via.array.ptr[0]);
    fields = [&o](uint32_t i, std::string_view) -> const object* {
      return i + 1 < o.via.array.size ? &o.via.array.ptr[i + 1] : nullptr;
    };
  } else if (o.type == type::MAP) {
    const object* t = map_get(o, "type");
    if (t == nullptr || !is_text(*t)) return bad("an event map has no \"type\" tag");
    tag = as_sv(*t);
    fields = [&o](uint32_t, std::string_view name) { return map_get(o, name); };
  } else {
    return bad("an event is neither an array nor a map");
  }
  if (tag == "BlockStored") {
    MS_ASSIGN_OR_RETURN(BlockStored e, read_block_stored(fields));
    out->events.emplace_back(std::move(e));
  } else if (tag == "BlockRemoved") {
    MS_ASSIGN_OR_RETURN(BlockRemoved e, read_block_removed(fields));
    out->events.emplace_back(std::move(e));
  } else if (tag == "AllBlocksCleared") {
    out->events.emplace_back(AllBlocksCleared{});
  } else {
    out->skipped_events++;
  }
  return absl::OkStatus();
}

StatusOr<KvEventBatch> read_batch(const object& root) {
  const object* ts = nullptr;
  const object* events = nullptr;
  const object* rank = nullptr;
  if (root.type == type::ARRAY) {
    const uint32_t n = root.via.array.size;
    if (n < 2) return bad("the batch array has fewer than 2 fields");
    ts = &root.via.array.ptr[0];
    events = &root.via.array.ptr[1];
    if (n >= 3) rank = &root.via.array.ptr[2];
  } else if (root.type == type::MAP) {
    ts = map_get(root, "ts");
    events = map_get(root, "events");
    rank = map_get(root, "data_parallel_rank");
  } else {
    return bad("the payload is neither an array nor a map");
  }
  KvEventBatch b;
  if (ts == nullptr) return bad("no ts");
  switch (ts->type) {
    case type::FLOAT32:
    case type::FLOAT64:
      b.ts = ts->via.f64;
      break;
    case type::POSITIVE_INTEGER:
      b.ts = static_cast<double>(ts->via.u64);
      break;
    case type::NEGATIVE_INTEGER:
      b.ts = static_cast<double>(ts->via.i64);
      break;
    default:
      return bad("ts is not a number");
  }
  if (events == nullptr || events->type != type::ARRAY) return bad("events is not an array");
  b.events.reserve(events->via.array.size);
  for (uint32_t i = 0; i < events->via.array.size; ++i) {
    MS_RETURN_IF_ERROR(read_event(events->via.array.ptr[i], &b));
  }
  MS_ASSIGN_OR_RETURN(b.data_parallel_rank, read_opt_int(rank, "data_parallel_rank"));
  return b;
}

// ---------------------------------------------------------------- encoding

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_opt_str(Packer& pk, const std::optional<std::string>& s) {
  if (s.has_value()) {
    pack_str(pk, *s);
  } else {
    pk.pack_nil();
  }
}

void pack_opt_int(Packer& pk, const std::optional<int64_t>& v) {
  if (v.has_value()) {
    pk.pack_int64(*v);
  } else {
    pk.pack_nil();
  }
}

void pack_hashes(Packer& pk, const std::vector<uint64_t>& hashes) {
  pk.pack_array(static_cast<uint32_t>(hashes.size()));
  for (uint64_t h : hashes) pk.pack_fix_uint64(h);
}

void pack_parent(Packer& pk, const std::optional<uint64_t>& parent) {
  if (parent.has_value()) {
    pk.pack_fix_uint64(*parent);
  } else {
    pk.pack_nil();
  }
}

void pack_tokens(Packer& pk, const std::vector<int32_t>& token_ids) {
  pk.pack_array(static_cast<uint32_t>(token_ids.size()));
  for (int32_t t : token_ids) pk.pack_int32(t);
}

// Writes a struct's header and then each field, keyed by name in the map encoding.
class StructWriter {
 public:
  StructWriter(Packer& pk, KvEventEncoding encoding)
      : pk_(pk), map_(encoding == KvEventEncoding::kMap) {}
  // A tagged-union member: the tag is the first element (array) or the "type" field (map).
  void begin(std::string_view tag, uint32_t num_fields) {
    if (map_) {
      pk_.pack_map(num_fields + 1);
      pack_str(pk_, "type");
    } else {
      pk_.pack_array(num_fields + 1);
    }
    pack_str(pk_, tag);
  }
  void begin_untagged(uint32_t num_fields) {
    if (map_) {
      pk_.pack_map(num_fields);
    } else {
      pk_.pack_array(num_fields);
    }
  }
  // The field's name (map encoding only); the caller then packs its value.
  Packer& field(std::string_view name) {
    if (map_) pack_str(pk_, name);
    return pk_;
  }

 private:
  Packer& pk_;
  bool map_;
};

void pack_event(Packer& pk, KvEventEncoding encoding, const KvCacheEvent& event) {
  StructWriter w(pk, encoding);
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, BlockStored>) {
          w.begin("BlockStored", e.lora_name.has_value() ? 7 : 6);
          pack_hashes(w.field("block_hashes"), e.block_hashes);
          pack_parent(w.field("parent_block_hash"), e.parent_block_hash);
          pack_tokens(w.field("token_ids"), e.token_ids);
          w.field("block_size").pack_int64(e.block_size);
          pack_opt_int(w.field("lora_id"), e.lora_id);
          pack_opt_str(w.field("medium"), e.medium);
          if (e.lora_name.has_value()) pack_str(w.field("lora_name"), *e.lora_name);
        } else if constexpr (std::is_same_v<T, BlockRemoved>) {
          w.begin("BlockRemoved", 2);
          pack_hashes(w.field("block_hashes"), e.block_hashes);
          pack_opt_str(w.field("medium"), e.medium);
        } else {
          static_assert(std::is_same_v<T, AllBlocksCleared>);
          w.begin("AllBlocksCleared", 0);
        }
      },
      event);
}

}  // namespace

std::string encode_kv_event_batch(const KvEventBatch& batch, KvEventEncoding encoding) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  StructWriter w(pk, encoding);
  w.begin_untagged(3);
  w.field("ts").pack_double(batch.ts);
  w.field("events").pack_array(static_cast<uint32_t>(batch.events.size()));
  for (const KvCacheEvent& e : batch.events) pack_event(pk, encoding, e);
  pack_opt_int(w.field("data_parallel_rank"), batch.data_parallel_rank);
  return std::string(buf.data(), buf.size());
}

std::string encode_kv_event_seq(uint64_t seq) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(seq & 0xff);
    seq >>= 8;
  }
  return out;
}

StatusOr<KvTopic> parse_kv_topic(std::string_view topic) {
  const size_t a = topic.find('@');
  if (a == std::string_view::npos) return bad(absl::StrCat("topic \"", av(topic), "\" has no '@'"));
  const size_t b = topic.find('@', a + 1);
  if (b == std::string_view::npos) {
    return bad(absl::StrCat("topic \"", av(topic), "\" is not <prefix>@<pod>@<model>"));
  }
  return KvTopic{std::string(topic.substr(a + 1, b - a - 1)), std::string(topic.substr(b + 1))};
}

StatusOr<KvEventBatch> decode_kv_event_payload(std::string_view payload) {
  // Every msgpack element takes at least one byte, so no count may exceed the payload size;
  // the limits keep a hostile header from asking for a huge allocation.
  const size_t n = payload.size();
  const msgpack::unpack_limit limit(n, n, n, n, n, kMaxDepth);
  try {
    size_t offset = 0;
    msgpack::object_handle h =
        msgpack::unpack(payload.data(), payload.size(), offset, nullptr, nullptr, limit);
    if (offset != payload.size()) return bad("trailing bytes after the batch");
    return read_batch(h.get());
  } catch (const std::exception& ex) {
    return bad(absl::StrCat("malformed msgpack (", ex.what(), ")"));
  }
}

StatusOr<KvEventMessage> decode_kv_event_message(std::span<const std::string> frames) {
  if (frames.size() != 3) {
    return bad(absl::StrCat("a message has ", frames.size(), " frames, not 3"));
  }
  if (frames[1].size() != 8) return bad("the sequence frame is not 8 bytes");
  KvEventMessage m;
  m.topic = frames[0];
  for (char c : frames[1]) m.seq = (m.seq << 8) | static_cast<uint8_t>(c);
  MS_ASSIGN_OR_RETURN(m.batch, decode_kv_event_payload(frames[2]));
  return m;
}

}  // namespace moeserve::kv_events
