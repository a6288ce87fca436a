#include "router/kv_event_feeder.h"

#include <limits>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "kv_events/kv_event_replay.h"
#include "net/prometheus_text.h"

namespace moeserve::router {
namespace {

DeviceTier tier_of(const std::optional<std::string>& medium) {
  return medium && (*medium == "CPU" || *medium == "cpu") ? DeviceTier::kCpu : DeviceTier::kGpu;
}

// The ZMQ host part of "host:port" ("[::1]:8000" -> "[::1]").
std::string zmq_address(const std::string& endpoint, int port) {
  auto hp = split_host_port(endpoint);
  if (!hp.ok()) return "";
  const std::string& host = hp->first;
  const bool v6 = host.find(':') != std::string::npos;
  return absl::StrCat("tcp://", v6 ? "[" : "", host, v6 ? "]" : "", ":", port);
}

}  // namespace

KvEvent to_index_event(const kv_events::KvCacheEvent& event) {
  if (const auto* s = std::get_if<kv_events::BlockStored>(&event)) {
    BlockStored out;
    out.block_hashes = s->block_hashes;
    out.parent_block_hash = s->parent_block_hash;
    out.token_ids.reserve(s->token_ids.size());
    for (int32_t t : s->token_ids) out.token_ids.push_back(static_cast<uint32_t>(t));
    out.block_size =
        s->block_size > 0 && s->block_size <= (1 << 20) ? static_cast<int>(s->block_size) : 0;
    out.tier = tier_of(s->medium);
    return out;
  }
  if (const auto* r = std::get_if<kv_events::BlockRemoved>(&event)) {
    return BlockRemoved{r->block_hashes, tier_of(r->medium)};
  }
  return AllBlocksCleared{};
}

StatusOr<std::unique_ptr<KvEventFeeder>> KvEventFeeder::start(KvEventsSettings settings,
                                                              std::shared_ptr<KvEventIndex> index,
                                                              const EndpointPool* pool,
                                                              std::chrono::milliseconds pool_poll) {
  if (!index) return absl::InvalidArgumentError("KV event feeder: no index");
  if (settings.discover_pods && pool == nullptr) {
    return absl::InvalidArgumentError("KV event feeder: discoverPods needs the endpoint pool");
  }
  auto f = std::unique_ptr<KvEventFeeder>(
      new KvEventFeeder(std::move(settings), std::move(index), pool));
  if (!f->settings_.discover_pods) {
    kv_events::KvEventSubscriberOptions o;
    o.endpoints = {f->settings_.zmq_endpoint};
    o.topic_filter = f->settings_.topic_filter;
    KvEventFeeder* raw = f.get();
    MS_ASSIGN_OR_RETURN(f->central_, kv_events::KvEventSubscriber::start(
                                         std::move(o), [raw](const kv_events::KvEventDelivery& d) {
                                           raw->on_delivery("", "", d, nullptr);
                                         }));
    MS_LOG_INFO("KV events: subscribed on {} (topic filter \"{}\")",
                f->central_->endpoints().front(), f->settings_.topic_filter);
    return f;
  }
  f->reconcile();
  f->poller_ = std::thread([raw = f.get(), pool_poll] { raw->poll_loop(pool_poll); });
  return f;
}

KvEventFeeder::~KvEventFeeder() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (poller_.joinable()) poller_.join();
  central_.reset();
  std::map<std::string, Source> sources;
  {
    absl::MutexLock lock(&mu_);
    sources.swap(sources_);
  }
  sources.clear();  // joins the subscriber threads, outside the lock
}

std::string KvEventFeeder::central_endpoint() const {
  return central_ ? central_->endpoints().front() : "";
}

KvEventFeederStats KvEventFeeder::stats() const {
  KvEventFeederStats s;
  s.batches = batches_.load();
  s.events = events_.load();
  s.gaps = gaps_.load();
  s.restarts = restarts_.load();
  s.replayed_batches = replayed_.load();
  s.clears = clears_.load();
  s.dropped = dropped_.load();
  return s;
}

std::string KvEventFeeder::render_metrics(const std::vector<EndpointState>& endpoints) const {
  const KvEventFeederStats s = stats();
  std::string out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    const std::string full = absl::StrCat("moeserve_router_kv_events_", name);
    net::append_family_header(&out, full, "counter", help);
    net::append_sample(&out, full, {}, static_cast<double>(v));
  };
  counter("batches_total", "KV-event batches applied from the live streams.", s.batches);
  counter("events_total", "KV events applied to the precise prefix index.", s.events);
  counter("gaps_total", "Gaps in KV-event sequence numbers.", s.gaps);
  counter("restarts_total", "KV-event sequences that restarted.", s.restarts);
  counter("replayed_batches_total", "KV-event batches fetched from replay sockets.",
          s.replayed_batches);
  counter("index_clears_total", "Endpoint indexes cleared for lack of a complete replay.",
          s.clears);
  counter("dropped_total", "KV-event messages that could not be attributed.", s.dropped);
  net::append_family_header(&out, "moeserve_router_kv_index_blocks", "gauge",
                            "KV blocks the precise prefix index holds per endpoint.");
  for (const EndpointState& e : endpoints) {
    net::append_sample(&out, "moeserve_router_kv_index_blocks", {{"endpoint", e.address}},
                       static_cast<double>(index_->num_blocks(e.address)));
  }
  return out;
}

void KvEventFeeder::poll_loop(std::chrono::milliseconds every) {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(every))) return;
    }
    reconcile();
  }
}

void KvEventFeeder::reconcile() {
  // Wanted sources, from the pool.
  struct Wanted {
    std::string pub, replay, model;
  };
  std::map<std::string, Wanted> wanted;  // by endpoint address
  for (const EndpointState& e : pool_->snapshot()) {
    std::string pub = e.label(kKvEventsLabel);
    if (pub.empty()) pub = zmq_address(e.address, settings_.socket_port);
    std::string replay = e.label(kKvEventsReplayLabel);
    if (replay.empty() && settings_.replay_port > 0) {
      replay = zmq_address(e.address, settings_.replay_port);
    }
    if (!pub.empty()) wanted[e.address] = {pub, replay, e.label(kModelLabel)};
  }
  std::vector<Source> stale;
  std::vector<std::string> to_add;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (auto it = sources_.begin(); it != sources_.end();) {
      auto w = wanted.find(it->first);
      if (w == wanted.end() || w->second.pub != it->second.publisher ||
          w->second.replay != it->second.replay) {
        stale.push_back(std::move(it->second));
        it = sources_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [address, w] : wanted) {
      if (!sources_.contains(address)) to_add.push_back(address);
    }
  }
  stale.clear();  // stops those subscribers (joins their threads) outside the lock
  for (const std::string& address : to_add) {
    const std::string pub = wanted[address].pub;
    const std::string replay = wanted[address].replay;
    const std::string model = wanted[address].model;
    kv_events::KvEventSubscriberOptions o;
    o.endpoints = {pub};
    o.topic_filter = settings_.topic_filter;
    auto sync = std::make_shared<SourceSync>();
    auto sub = kv_events::KvEventSubscriber::start(
        std::move(o), [this, address, replay, sync](const kv_events::KvEventDelivery& d) {
          on_delivery(address, replay, d, sync.get());
        });
    if (!sub.ok()) {
      MS_LOG_WARN("KV events for {}: {}", address, std::string(sub.status().message()));
      continue;
    }
    // Subscribed first, then replayed: nothing published in between is lost.
    initial_replay(address, replay, model, *sync);
    MS_LOG_INFO("KV events for {}: subscribed to {}{}", address, pub,
                replay.empty() ? "" : absl::StrCat(" (replay ", replay, ")"));
    absl::MutexLock lock(&mu_);
    if (stopping_) break;  // `sub` is destroyed here, outside sources_
    sources_[address] = Source{pub, replay, std::move(*sub)};
  }
}

void KvEventFeeder::initial_replay(const std::string& endpoint, const std::string& replay,
                                   const std::string& model, SourceSync& sync) {
  uint64_t next = 0;
  std::vector<kv_events::ReplayedBatch> held;
  if (!replay.empty()) {
    auto got = kv_events::request_replay(replay, 0, std::numeric_limits<uint64_t>::max(),
                                         settings_.replay_timeout);
    if (!got.ok()) {
      MS_LOG_WARN("KV events for {}: initial replay failed: {}", endpoint,
                  std::string(got.status().message()));
    } else if (!got->empty()) {
      next = got->back().seq + 1;
      replayed_.fetch_add(got->size(), std::memory_order_relaxed);
      if (!model.empty()) {
        for (const auto& b : *got) apply_batch(endpoint, model, b.batch);
      } else {
        held = std::move(*got);
      }
    }
  }
  absl::MutexLock lock(&sync.mu);
  sync.ready = true;
  sync.next_seq = next;
  sync.held = std::move(held);
}

void KvEventFeeder::apply_batch(const std::string& endpoint, const std::string& model,
                                const kv_events::KvEventBatch& batch) {
  for (const auto& ev : batch.events) index_->apply(endpoint, model, to_index_event(ev));
  events_.fetch_add(batch.events.size(), std::memory_order_relaxed);
}

void KvEventFeeder::on_delivery(const std::string& source_endpoint, const std::string& replay,
                                const kv_events::KvEventDelivery& d, SourceSync* sync) {
  auto topic = kv_events::parse_kv_topic(d.message.topic);
  if (!topic.ok()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    MS_LOG_WARN("KV events: {}", std::string(topic.status().message()));
    return;
  }
  const std::string& endpoint = source_endpoint.empty() ? topic->pod_id : source_endpoint;
  const std::string& model = topic->model;
  const uint64_t seq = d.message.seq;

  if (sync != nullptr && !sync->first_seen) {
    sync->first_seen = true;
    std::vector<kv_events::ReplayedBatch> held;
    uint64_t next = 0;
    {
      absl::MutexLock lock(&sync->mu, absl::Condition(&sync->ready));
      held = std::move(sync->held);
      next = sync->next_seq;
    }
    for (const auto& b : held) apply_batch(endpoint, model, b.batch);
    if (d.first_of_stream && next > 0) {
      // The initial replay covered [0, next): skip what it applied, fetch what lies between.
      if (seq < next) {
        batches_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (seq > next && !replay.empty()) {
        auto got = kv_events::request_replay(replay, next, seq, settings_.replay_timeout);
        if (got.ok()) {
          for (const auto& b : *got) apply_batch(endpoint, model, b.batch);
          replayed_.fetch_add(got->size(), std::memory_order_relaxed);
        }
      }
      apply_batch(endpoint, model, d.message.batch);
      batches_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }

  // Which earlier batches to fetch, and whether the endpoint's blocks are stale.
  bool resync = false;
  bool must_clear = false;  // when replay cannot fill the hole
  uint64_t from = 0;
  if (d.sequence_restarted) {
    restarts_.fetch_add(1, std::memory_order_relaxed);
    MS_LOG_INFO("KV events from {}: sequence restarted at {}; clearing its blocks", endpoint, seq);
    index_->apply(endpoint, model, AllBlocksCleared{});
    resync = seq > 0;
    from = 0;
  } else if (d.missed_before > 0) {
    gaps_.fetch_add(1, std::memory_order_relaxed);
    resync = must_clear = true;
    from = seq - d.missed_before;
    MS_LOG_WARN("KV events from {}: {} batches lost before {}", endpoint, d.missed_before, seq);
  } else if (d.first_of_stream && seq > 0) {
    resync = true;  // joined late: what came before is unknown but nothing is stale
    from = 0;
  }
  if (resync && !replay.empty()) {
    auto got = kv_events::request_replay(replay, from, seq, settings_.replay_timeout);
    if (!got.ok()) {
      MS_LOG_WARN("KV events from {}: replay failed: {}", endpoint,
                  std::string(got.status().message()));
    } else {
      bool complete = true;
      uint64_t expect = from;
      for (const auto& b : *got) {
        if (b.seq != expect) complete = false;
        expect = b.seq + 1;
      }
      if (expect != seq) complete = false;
      if (must_clear && !complete) {
        // The engine's history before the hole is partly gone: start over from what it has.
        index_->apply(endpoint, model, AllBlocksCleared{});
        clears_.fetch_add(1, std::memory_order_relaxed);
      }
      for (const auto& b : *got) apply_batch(endpoint, model, b.batch);
      replayed_.fetch_add(got->size(), std::memory_order_relaxed);
      must_clear = false;
      MS_LOG_INFO("KV events from {}: replayed {} batches [{}, {}){}", endpoint, got->size(), from,
                  seq, complete ? "" : " (incomplete)");
    }
  }
  if (must_clear) {
    index_->apply(endpoint, model, AllBlocksCleared{});
    clears_.fetch_add(1, std::memory_order_relaxed);
  }
  apply_batch(endpoint, model, d.message.batch);
  batches_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace moeserve::router
