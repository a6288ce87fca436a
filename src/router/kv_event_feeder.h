// Feeds a precise prefix index (kv_event_index.h) from the engines' vLLM-format KV events, as
// llm-d-kv-cache's kvevents pool does: ZMQ SUB with a topic filter, per publisher stream in
// order, BlockStored -> add, BlockRemoved -> evict, AllBlocksCleared -> clear the endpoint.
//
// Sources (precise_prefix_cache_scorer.h, KvEventsSettings):
//  - central (discoverPods false): one subscriber on zmqEndpoint; the endpoint an event belongs
//    to is the topic's pod id ("kv@<host:port>@<model>"), which must equal the router's
//    address of that endpoint.
//  - per endpoint (discoverPods true): one subscriber per endpoint of the pool, connected to
//    tcp://<host>:<socketPort> or the endpoint's `moeserve.ai/kv-events` label; events are
//    attributed to that endpoint whatever the topic says (the model still comes from the topic).
//    Subscribers follow the pool (checked every `pool_poll`).
//
// Order: publishers number their batches. A gap (lost batches), a sequence that goes backwards
// (the engine restarted) or a first batch numbered above 0 (the router joined late) triggers a
// resync: when the endpoint has a replay address (`moeserve.ai/kv-events-replay` label, or
// podDiscoveryConfig.replayPort) a new per-endpoint subscription first replays everything the
// engine still buffers (applied at once when the endpoint has an llm-d.ai/model label, else with
// the first live batch's model), and the missing batches are fetched from its replay socket and
// applied before the current one; a restart first clears the endpoint's blocks. When replay is
// unavailable or incomplete after a gap or a restart, the endpoint's blocks are cleared and
// indexing resumes from the current batch (an index that under-reports is safe; one that keeps
// blocks the engine has evicted is not).
//
// Thread-safety: start()/destructor from one controlling thread; stats() from any thread.
// Events are applied on the subscribers' threads (KvEventIndex locks itself).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "kv_events/kv_event_replay.h"
#include "kv_events/kv_event_subscriber.h"
#include "router/endpoint_pool.h"
#include "router/kv_event_index.h"
#include "router/precise_prefix_cache_scorer.h"

namespace moeserve::router {

struct KvEventFeederStats {
  uint64_t batches = 0;           // applied from the live stream
  uint64_t events = 0;            // events applied (live and replayed)
  uint64_t gaps = 0;              // gaps seen in sequence numbers
  uint64_t restarts = 0;          // sequences that went backwards
  uint64_t replayed_batches = 0;  // applied from replay sockets
  uint64_t clears = 0;            // endpoint indexes cleared for lack of a complete replay
  uint64_t dropped = 0;           // messages whose topic or endpoint could not be resolved
};

// Converts decoded events to the index's form (medium "CPU" -> cpu tier, anything else gpu).
KvEvent to_index_event(const kv_events::KvCacheEvent& event);

class KvEventFeeder final {
 public:
  // `pool` may be null in central mode; required with discoverPods. Both must outlive the feeder.
  static StatusOr<std::unique_ptr<KvEventFeeder>> start(
      KvEventsSettings settings, std::shared_ptr<KvEventIndex> index, const EndpointPool* pool,
      std::chrono::milliseconds pool_poll = std::chrono::milliseconds(500));
  ~KvEventFeeder();
  KvEventFeeder(const KvEventFeeder&) = delete;
  KvEventFeeder& operator=(const KvEventFeeder&) = delete;

  KvEventFeederStats stats() const;
  // Prometheus text: the counters above (moeserve_router_kv_events_*) and the indexed blocks
  // per endpoint (moeserve_router_kv_index_blocks{endpoint}).
  std::string render_metrics(const std::vector<EndpointState>& endpoints) const;
  // Central mode: the bound/connected address (wildcard ports resolved); "" otherwise.
  std::string central_endpoint() const;

 private:
  // Initial sync of one per-endpoint source: deliveries wait until the replay of what the
  // engine published before the subscription has been applied.
  struct SourceSync {
    absl::Mutex mu;
    bool ready ABSL_GUARDED_BY(mu) = false;
    uint64_t next_seq ABSL_GUARDED_BY(mu) = 0;  // first seq the initial replay did not cover
    // Replayed batches not yet applied for want of a model name (the replay carries no topic;
    // without an llm-d.ai/model label they wait for the first live batch).
    std::vector<kv_events::ReplayedBatch> held ABSL_GUARDED_BY(mu);
    bool first_seen = false;  // subscriber thread only
  };
  struct Source {
    std::string publisher;  // ZMQ address subscribed to
    std::string replay;     // "" without replay
    std::unique_ptr<kv_events::KvEventSubscriber> subscriber;
  };

  KvEventFeeder(KvEventsSettings settings, std::shared_ptr<KvEventIndex> index,
                const EndpointPool* pool)
      : settings_(std::move(settings)), index_(std::move(index)), pool_(pool) {}
  // Called on subscriber threads. `endpoint` is "" in central mode.
  void on_delivery(const std::string& endpoint, const std::string& replay,
                   const kv_events::KvEventDelivery& d, SourceSync* sync);
  void initial_replay(const std::string& endpoint, const std::string& replay,
                      const std::string& model, SourceSync& sync);
  void apply_batch(const std::string& endpoint, const std::string& model,
                   const kv_events::KvEventBatch& batch);
  void reconcile() ABSL_LOCKS_EXCLUDED(mu_);
  void poll_loop(std::chrono::milliseconds every) ABSL_LOCKS_EXCLUDED(mu_);

  KvEventsSettings settings_;
  std::shared_ptr<KvEventIndex> index_;
  const EndpointPool* pool_;
  std::unique_ptr<kv_events::KvEventSubscriber> central_;

  absl::Mutex mu_;
  std::map<std::string, Source> sources_ ABSL_GUARDED_BY(mu_);  // by endpoint address
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread poller_;

  std::atomic<uint64_t> batches_{0}, events_{0}, gaps_{0}, restarts_{0}, replayed_{0}, clears_{0},
      dropped_{0};
};

}  // namespace moeserve::router
