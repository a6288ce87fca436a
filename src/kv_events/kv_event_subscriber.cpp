#include "kv_events/kv_event_subscriber.h"

#include <zmq.h>

#include <cerrno>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace moeserve::kv_events {
namespace {

constexpr size_t kMaxFrames = 8;  // more than this is not a KV event message

bool binds(const std::string& endpoint) {
  return endpoint.find('*') != std::string::npos || endpoint.find("::") != std::string::npos ||
         endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://");
}

}  // namespace

StatusOr<std::unique_ptr<KvEventSubscriber>> KvEventSubscriber::start(
    KvEventSubscriberOptions options, Callback callback) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no KV event endpoints");
  if (!callback) return absl::InvalidArgumentError("no KV event callback");
  auto s = std::unique_ptr<KvEventSubscriber>(new KvEventSubscriber());
  s->callback_ = std::move(callback);
  s->ctx_ = zmq_ctx_new();
  if (s->ctx_ == nullptr) return absl::InternalError("zmq_ctx_new failed");
  s->sub_ = zmq_socket(s->ctx_, ZMQ_SUB);
  if (s->sub_ == nullptr) return absl::InternalError("zmq_socket(SUB) failed");
  const int zero = 0;
  zmq_setsockopt(s->sub_, ZMQ_LINGER, &zero, sizeof(zero));
  zmq_setsockopt(s->sub_, ZMQ_RCVHWM, &options.rcvhwm, sizeof(options.rcvhwm));
  zmq_setsockopt(s->sub_, ZMQ_SUBSCRIBE, options.topic_filter.data(), options.topic_filter.size());
  for (const std::string& ep : options.endpoints) {
    const bool bind = binds(ep);
    if ((bind ? zmq_bind(s->sub_, ep.c_str()) : zmq_connect(s->sub_, ep.c_str())) != 0) {
      return absl::UnavailableError(absl::StrCat("KV events: cannot ", bind ? "bind " : "connect ",
                                                 ep, ": ", zmq_strerror(zmq_errno())));
    }
    std::string actual = ep;
    if (bind) {
      char buf[512];
      size_t len = sizeof(buf);
      if (zmq_getsockopt(s->sub_, ZMQ_LAST_ENDPOINT, buf, &len) == 0 && len > 1) {
        actual.assign(buf, len - 1);
      }
    }
    s->endpoints_.push_back(std::move(actual));
  }
  s->thread_ = std::thread([raw = s.get()] { raw->run(); });
  return s;
}

KvEventSubscriber::~KvEventSubscriber() {
  if (ctx_ != nullptr) zmq_ctx_shutdown(ctx_);  // the thread's blocking recv returns ETERM
  if (thread_.joinable()) {
    thread_.join();
  } else if (sub_ != nullptr) {
    zmq_close(sub_);  // never started
  }
  if (ctx_ != nullptr) zmq_ctx_term(ctx_);
}

KvEventSubscriberStats KvEventSubscriber::stats() const {
  KvEventSubscriberStats s;
  s.messages = messages_.load();
  s.decode_errors = decode_errors_.load();
  s.gaps = gaps_.load();
  s.missed_batches = missed_.load();
  return s;
}

void KvEventSubscriber::run() {
  // Last sequence number per stream "topic\0rank".
  absl::flat_hash_map<std::string, uint64_t> last_seq;
  std::vector<std::string> frames;
  bool stop = false;
  while (!stop) {
    frames.clear();
    bool more = true;
    while (more) {
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, sub_, 0) < 0) {
        const int err = zmq_errno();
        zmq_msg_close(&msg);
        if (err == EINTR) continue;
        if (err != ETERM) MS_LOG_ERROR("KV event subscriber: recv: {}", zmq_strerror(err));
        stop = true;
        break;
      }
      more = zmq_msg_more(&msg) != 0;
      if (frames.size() < kMaxFrames) {
        frames.emplace_back(static_cast<const char*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
      } else {
        frames.emplace_back();  // counted, not kept
      }
      zmq_msg_close(&msg);
    }
    if (stop) break;
    StatusOr<KvEventMessage> m = decode_kv_event_message(frames);
    if (!m.ok()) {
      decode_errors_.fetch_add(1, std::memory_order_relaxed);
      MS_LOG_WARN("KV event subscriber: dropping a message: {}", std::string(m.status().message()));
      continue;
    }
    KvEventDelivery d;
    std::string key = m->topic;
    key.push_back('\0');
    if (m->batch.data_parallel_rank) absl::StrAppend(&key, *m->batch.data_parallel_rank);
    auto [it, inserted] = last_seq.try_emplace(std::move(key), m->seq);
    if (inserted) {
      d.first_of_stream = true;
    } else {
      const uint64_t prev = it->second;
      if (m->seq <= prev) {
        d.sequence_restarted = true;
      } else if (m->seq != prev + 1) {
        d.missed_before = m->seq - prev - 1;
        gaps_.fetch_add(1, std::memory_order_relaxed);
        missed_.fetch_add(d.missed_before, std::memory_order_relaxed);
      }
      it->second = m->seq;
    }
    d.message = std::move(*m);
    messages_.fetch_add(1, std::memory_order_relaxed);
    callback_(d);
  }
  zmq_close(sub_);
}

}  // namespace moeserve::kv_events
