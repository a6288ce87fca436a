#include "kv_events/kv_event_publisher.h"

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/logging.h"
#include "kv_events/kv_event_codec.h"
#include "nlohmann/json.hpp"

namespace moeserve::kv_events {
namespace {

// absl::string_view is not std::string_view in this build.
absl::string_view av(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

constexpr uint64_t kMaxBufferSteps = uint64_t{1} << 24;
constexpr int64_t kMaxQueueSize = int64_t{1} << 24;

std::string zmq_error(std::string_view what) {
  return absl::StrCat(av(what), ": ", zmq_strerror(zmq_errno()));
}

void wake(int fd) {
  const uint64_t one = 1;
  if (::write(fd, &one, sizeof(one)) < 0) {
    // EAGAIN: the counter is already non-zero, so the thread wakes anyway.
  }
}

// Sends `frames` as one multipart message; false on error.
bool send_multipart(void* socket, std::initializer_list<std::string_view> frames) {
  size_t i = 0;
  for (std::string_view f : frames) {
    const int flags = ZMQ_DONTWAIT | (++i < frames.size() ? ZMQ_SNDMORE : 0);
    if (zmq_send(socket, f.data(), f.size(), flags) < 0) return false;
  }
  return true;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

StatusOr<KvEventsConfig> parse_kv_events_config(std::string_view text) {
  using nlohmann::json;
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("--kv-events-config: not a JSON object");
  }
  KvEventsConfig c;
  std::optional<std::string> publisher;
  auto bad = [](const std::string& key, std::string_view want) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv-events-config: \"", key, "\" must be ", av(want)));
  };
  auto get_int = [&](const std::string& key, const json& v, int64_t lo,
                     int64_t hi) -> StatusOr<int64_t> {
    if (!v.is_number_integer()) return bad(key, "an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
      return bad(key, absl::StrCat("at most ", hi));
    }
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) return bad(key, absl::StrCat("in [", lo, ", ", hi, "]"));
    return x;
  };
  for (const auto& [key, v] : j.items()) {
    if (key == "enable_kv_cache_events") {
      if (!v.is_boolean()) return bad(key, "true or false");
      c.enable_kv_cache_events = v.get<bool>();
    } else if (key == "publisher") {
      if (v.is_null()) continue;
      if (!v.is_string()) return bad(key, "a string");
      publisher = v.get<std::string>();
    } else if (key == "endpoint") {
      if (!v.is_string()) return bad(key, "a string");
      c.endpoint = v.get<std::string>();
    } else if (key == "replay_endpoint") {
      if (v.is_null()) continue;
      if (!v.is_string()) return bad(key, "a string or null");
      c.replay_endpoint = v.get<std::string>();
    } else if (key == "topic") {
      if (!v.is_string()) return bad(key, "a string");
      c.topic = v.get<std::string>();
    } else if (key == "buffer_steps") {
      MS_ASSIGN_OR_RETURN(c.buffer_steps,
                          get_int(key, v, 0, static_cast<int64_t>(kMaxBufferSteps)));
    } else if (key == "hwm") {
      MS_ASSIGN_OR_RETURN(c.hwm, get_int(key, v, 0, INT_MAX));
    } else if (key == "max_queue_size") {
      MS_ASSIGN_OR_RETURN(c.max_queue_size, get_int(key, v, 1, kMaxQueueSize));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--kv-events-config: unknown key \"", key, "\""));
    }
  }
  c.publisher = publisher.value_or(c.enable_kv_cache_events ? "zmq" : "null");
  if (c.publisher != "zmq" && c.publisher != "null") {
    return absl::InvalidArgumentError(absl::StrCat("--kv-events-config: unknown publisher \"",
                                                   c.publisher, "\" (use \"zmq\" or \"null\")"));
  }
  if (c.enabled()) {
    MS_RETURN_IF_ERROR(offset_endpoint_port(c.endpoint, 0).status());
    if (c.replay_endpoint) MS_RETURN_IF_ERROR(offset_endpoint_port(*c.replay_endpoint, 0).status());
  }
  return c;
}

StatusOr<std::string> offset_endpoint_port(std::string_view endpoint, int dp_rank) {
  if (dp_rank < 0) return absl::InvalidArgumentError("data-parallel rank must be >= 0");
  const bool tcp = endpoint.starts_with("tcp://");
  if (endpoint.starts_with("inproc://") || endpoint.starts_with("ipc://")) {
    // vLLM offsets only ranks > 0: rank 0 binds the configured endpoint as given.
    if (dp_rank == 0) return std::string(endpoint);
    return absl::StrCat(av(endpoint), "_dp", dp_rank);
  }
  if (!tcp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV events endpoint \"", av(endpoint), "\" must start with tcp://, ipc:// or inproc://"));
  }
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string_view::npos || colon < 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV events endpoint \"", av(endpoint), "\" has no port"));
  }
  const std::string_view host = endpoint.substr(0, colon);
  const std::string_view port = endpoint.substr(colon + 1);
  if (host.size() <= 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV events endpoint \"", av(endpoint), "\" has no host"));
  }
  if (port == "*") return std::string(endpoint);  // ephemeral port: nothing to offset
  int p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || p <= 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV events endpoint \"", av(endpoint), "\" has a bad port"));
  }
  if (p + dp_rank > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("KV events endpoint \"", av(endpoint),
                                                   "\": port + data-parallel rank > 65535"));
  }
  return absl::StrCat(av(host), ":", p + dp_rank);
}

bool endpoint_binds(std::string_view endpoint) {
  return endpoint.find('*') != std::string_view::npos ||
         endpoint.find("::") != std::string_view::npos || endpoint.starts_with("ipc://") ||
         endpoint.starts_with("inproc://");
}

StatusOr<std::unique_ptr<ZmqKvEventPublisher>> ZmqKvEventPublisher::create(
    const KvEventsConfig& config, Options options) {
  if (!config.enabled()) {
    return absl::InvalidArgumentError("KV events are not enabled in this configuration");
  }
  if (config.max_queue_size < 1) return absl::InvalidArgumentError("max_queue_size must be >= 1");
  if (config.hwm < 0 || config.hwm > INT_MAX) return absl::InvalidArgumentError("bad hwm");
  auto p = std::unique_ptr<ZmqKvEventPublisher>(new ZmqKvEventPublisher());
  p->config_ = config;
  p->options_ = options;
  MS_ASSIGN_OR_RETURN(const std::string endpoint,
                      offset_endpoint_port(config.endpoint, options.data_parallel_rank));
  p->ctx_ = zmq_ctx_new();
  if (p->ctx_ == nullptr) return absl::InternalError(zmq_error("zmq_ctx_new"));
  p->pub_ = zmq_socket(p->ctx_, ZMQ_PUB);
  if (p->pub_ == nullptr) return absl::InternalError(zmq_error("zmq_socket(PUB)"));
  const int hwm = static_cast<int>(config.hwm);
  const int linger = std::max(0, options.linger_ms);
  zmq_setsockopt(p->pub_, ZMQ_SNDHWM, &hwm, sizeof(hwm));
  zmq_setsockopt(p->pub_, ZMQ_LINGER, &linger, sizeof(linger));
  auto open = [](void* socket, const std::string& ep, bool bind, std::string* actual) -> Status {
    if ((bind ? zmq_bind(socket, ep.c_str()) : zmq_connect(socket, ep.c_str())) != 0) {
      return absl::UnavailableError(
          zmq_error(absl::StrCat("KV events: cannot ", bind ? "bind " : "connect ", ep)));
    }
    *actual = ep;
    if (bind) {
      char buf[512];
      size_t len = sizeof(buf);
      if (zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, buf, &len) == 0 && len > 1) {
        actual->assign(buf, len - 1);
      }
    }
    return absl::OkStatus();
  };
  MS_RETURN_IF_ERROR(open(p->pub_, endpoint, endpoint_binds(endpoint), &p->endpoint_));
  if (config.replay_endpoint) {
    MS_ASSIGN_OR_RETURN(const std::string replay,
                        offset_endpoint_port(*config.replay_endpoint, options.data_parallel_rank));
    p->replay_ = zmq_socket(p->ctx_, ZMQ_ROUTER);
    if (p->replay_ == nullptr) return absl::InternalError(zmq_error("zmq_socket(ROUTER)"));
    const int zero = 0;
    zmq_setsockopt(p->replay_, ZMQ_LINGER, &zero, sizeof(zero));
    MS_RETURN_IF_ERROR(open(p->replay_, replay, /*bind=*/true, &p->replay_endpoint_));
  }
  p->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wake_fd_ < 0) return absl::InternalError("eventfd failed");
  p->thread_ = std::thread([raw = p.get()] { raw->run(); });
  MS_LOG_INFO("KV events: publishing on {} (topic \"{}\"){}", p->endpoint_, config.topic,
              p->replay_endpoint_.empty() ? "" : absl::StrCat(", replay on ", p->replay_endpoint_));
  return p;
}

ZmqKvEventPublisher::~ZmqKvEventPublisher() {
  if (thread_.joinable()) {
    {
      absl::MutexLock lk(&mu_);
      stopping_ = true;
    }
    wake(wake_fd_);
    thread_.join();
  }
  close_sockets();
}

void ZmqKvEventPublisher::close_sockets() {
  if (replay_ != nullptr) zmq_close(replay_);
  if (pub_ != nullptr) zmq_close(pub_);  // lingers up to linger_ms to deliver
  if (ctx_ != nullptr) zmq_ctx_term(ctx_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  replay_ = pub_ = ctx_ = nullptr;
  wake_fd_ = -1;
}

void ZmqKvEventPublisher::publish(KvCacheEvent event) {
  pending_.push_back(std::move(event));
}

void ZmqKvEventPublisher::end_step() {
  if (pending_.empty()) return;
  Batch b;
  b.seq = next_seq_++;
  b.ts = unix_seconds();
  b.events = std::exchange(pending_, {});
  bool accepted = false;
  {
    absl::MutexLock lk(&mu_);
    if (static_cast<int64_t>(queue_.size()) < config_.max_queue_size) {
      queue_.push_back(std::move(b));
      accepted = true;
    }
  }
  if (!accepted) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queued_.fetch_add(1, std::memory_order_relaxed);
  wake(wake_fd_);
}

KvEventPublisherStats ZmqKvEventPublisher::stats() const {
  KvEventPublisherStats s;
  s.batches_queued = queued_.load();
  s.batches_dropped = dropped_.load();
  s.batches_sent = sent_.load();
  s.send_errors = send_errors_.load();
  s.replay_requests = replays_.load();
  return s;
}

void ZmqKvEventPublisher::run() {
  while (true) {
    zmq_pollitem_t items[2] = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}, {replay_, 0, ZMQ_POLLIN, 0}};
    const int n = replay_ != nullptr ? 2 : 1;
    if (zmq_poll(items, n, -1) < 0) {
      if (zmq_errno() == EINTR) continue;
      MS_LOG_ERROR("KV events: {}; the publisher stops", zmq_error("zmq_poll"));
      return;
    }
    if (items[0].revents & ZMQ_POLLIN) {
      uint64_t count = 0;
      if (::read(wake_fd_, &count, sizeof(count)) < 0) {
        // EAGAIN: a concurrent wake was already consumed; nothing to do.
      }
    }
    std::deque<Batch> work;
    bool stop = false;
    {
      absl::MutexLock lk(&mu_);
      work.swap(queue_);
      stop = stopping_;
    }
    for (Batch& b : work) send_batch(b);
    if (n == 2 && (items[1].revents & ZMQ_POLLIN)) serve_replay();
    if (stop) return;
  }
}

void ZmqKvEventPublisher::send_batch(Batch& batch) {
  KvEventBatch wire;
  wire.ts = batch.ts;
  wire.events = std::move(batch.events);
  wire.data_parallel_rank = options_.data_parallel_rank;
  for (KvCacheEvent& e : wire.events) {
    if (auto* s = std::get_if<BlockStored>(&e); s != nullptr && !s->medium) {
      s->medium = options_.medium;
    } else if (auto* r = std::get_if<BlockRemoved>(&e); r != nullptr && !r->medium) {
      r->medium = options_.medium;
    }
  }
  std::string payload = encode_kv_event_batch(wire);
  const std::string seq = encode_kv_event_seq(batch.seq);
  if (send_multipart(pub_, {config_.topic, seq, payload})) {
    sent_.fetch_add(1, std::memory_order_relaxed);
  } else {
    send_errors_.fetch_add(1, std::memory_order_relaxed);
  }
  if (config_.buffer_steps > 0 && replay_ != nullptr) {
    history_.emplace_back(batch.seq, std::move(payload));
    while (static_cast<int64_t>(history_.size()) > config_.buffer_steps) history_.pop_front();
  }
}

void ZmqKvEventPublisher::serve_replay() {
  while (true) {
    std::vector<std::string> frames;
    bool more = true;
    while (more) {
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, replay_, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;  // EAGAIN: no more requests
      }
      frames.emplace_back(static_cast<const char*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
      more = zmq_msg_more(&msg) != 0;
      zmq_msg_close(&msg);
      if (frames.size() > 16) break;  // not a replay request; the rest is discarded below
    }
    while (more) {  // drain an oversized message
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, replay_, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
      }
      more = zmq_msg_more(&msg) != 0;
      zmq_msg_close(&msg);
    }
    if (frames.size() != 3 || !frames[1].empty() || frames[2].size() != 8) {
      MS_LOG_WARN("KV events: ignoring a malformed replay request ({} frames)", frames.size());
      continue;
    }
    replays_.fetch_add(1, std::memory_order_relaxed);
    uint64_t start = 0;
    for (char c : frames[2]) start = (start << 8) | static_cast<uint8_t>(c);
    const std::string& client = frames[0];
    for (const auto& [seq, payload] : history_) {
      if (seq < start) continue;
      send_multipart(replay_, {client, "", encode_kv_event_seq(seq), payload});
    }
    send_multipart(replay_, {client, "", encode_kv_event_seq(~uint64_t{0}), ""});
  }
}

StatusOr<std::unique_ptr<ZmqKvEventPublisher>> make_kv_event_publisher(
    std::string_view kv_events_config_json, int dp_rank) {
  if (kv_events_config_json.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::unique_ptr<ZmqKvEventPublisher>();
  }
  MS_ASSIGN_OR_RETURN(KvEventsConfig config, parse_kv_events_config(kv_events_config_json));
  if (!config.enabled()) return std::unique_ptr<ZmqKvEventPublisher>();
  ZmqKvEventPublisher::Options options;
  options.data_parallel_rank = dp_rank;
  return ZmqKvEventPublisher::create(config, options);
}

}  // namespace moeserve::kv_events
