#include "engine/scheduler.h"

#include <algorithm>
#include <utility>

namespace moeserve::engine {

using absl::InvalidArgumentError;
using absl::StrCat;

absl::Status SchedulerConfig::validate() const {
  if (max_model_len < 1) {
    return InvalidArgumentError(StrCat("--max-model-len must be positive, got ", max_model_len));
  }
  if (max_num_seqs < 1) {
    return InvalidArgumentError(StrCat("--max-num-seqs must be positive, got ", max_num_seqs));
  }
  if (max_num_batched_tokens < max_num_seqs) {
    return InvalidArgumentError(StrCat("max_num_batched_tokens (", max_num_batched_tokens,
                                       ") must be greater than or equal to max_num_seqs (",
                                       max_num_seqs, ")."));
  }
  if (!enable_chunked_prefill && max_num_batched_tokens < max_model_len) {
    return InvalidArgumentError(StrCat(
        "max_num_batched_tokens (", max_num_batched_tokens, ") is smaller than max_model_len (",
        max_model_len,
        "). This effectively limits the maximum sequence length to max_num_batched_tokens and "
        "makes the engine reject longer sequences. Please increase max_num_batched_tokens or "
        "decrease max_model_len."));
  }
  if (long_prefill_token_threshold < 0 || max_waiting_requests < 0) {
    return InvalidArgumentError(
        "long_prefill_token_threshold and max_waiting_requests must be non-negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::create(const SchedulerConfig& config,
                                                             const KVCacheConfig& cache_config,
                                                             KVEventSink* sink) {
  MS_RETURN_IF_ERROR(config.validate());
  KVCacheConfig cc = cache_config;
  cc.max_model_len = config.max_model_len;
  MS_ASSIGN_OR_RETURN(std::unique_ptr<KVCacheManager> kv, KVCacheManager::create(cc, sink));
  return std::make_unique<Scheduler>(config, std::move(kv));
}

Scheduler::Scheduler(const SchedulerConfig& config, std::unique_ptr<KVCacheManager> kv)
    : config_(config), kv_(std::move(kv)) {}

bool Scheduler::can_accept() const {
  return config_.max_waiting_requests == 0 ||
         static_cast<int32_t>(waiting_.size()) < config_.max_waiting_requests;
}

absl::Status Scheduler::add_request(std::unique_ptr<Request> request) {
  if (requests_.contains(request->request_id)) {
    return absl::AlreadyExistsError(
        StrCat("request id '", request->request_id, "' is already in use"));
  }
  if (!can_accept()) {
    return absl::UnavailableError(StrCat("the waiting queue is full (",
                                         config_.max_waiting_requests, " requests); retry later"));
  }
  if (request->prompt_token_ids.empty()) {
    return InvalidArgumentError("the prompt is empty: at least one token is needed");
  }
  if (request->num_prompt_tokens() > config_.max_model_len) {
    return InvalidArgumentError(StrCat("Input length (", request->num_prompt_tokens(),
                                       ") exceeds model's maximum context length (",
                                       config_.max_model_len, ")."));
  }
  request->status = RequestStatus::kWaiting;
  Request* r = request.get();
  requests_.emplace(r->request_id, std::move(request));
  waiting_.push_back(r);
  return absl::OkStatus();
}

SchedulerOutput Scheduler::schedule() {
  StepPlan plan;
  plan.token_budget = config_.max_num_batched_tokens;
  schedule_running(plan);
  if (plan.preempted.empty()) schedule_waiting(plan);
  SchedulerOutput out = build_output(plan);
  // The step's tokens count as computed from now on (vLLM _update_after_schedule).
  for (const StepEntry& e : plan.entries) e.request->num_computed_tokens += e.num_tokens;
  return out;
}

Request* Scheduler::preempt_last_running() {
  Request* victim = running_.back();
  running_.pop_back();
  kv_->free(*victim);
  victim->status = RequestStatus::kPreempted;
  victim->num_computed_tokens = 0;
  victim->num_preemptions++;
  ++num_preemptions_;
  waiting_.push_front(victim);
  return victim;
}

void Scheduler::schedule_running(StepPlan& plan) {
  size_t index = 0;
  while (index < running_.size() && plan.token_budget > 0) {
    Request* r = running_[index];
    int32_t n = r->num_tokens() - r->num_computed_tokens;
    if (config_.long_prefill_token_threshold > 0) {
      n = std::min(n, config_.long_prefill_token_threshold);
    }
    n = std::min({n, plan.token_budget, config_.max_model_len - r->num_computed_tokens});
    if (n <= 0) {
      ++index;
      continue;
    }
    bool scheduled = false;
    while (true) {
      if (kv_->allocate_slots(*r, n).has_value()) {
        scheduled = true;
        break;
      }
      Request* victim = preempt_last_running();
      plan.preempted.push_back(victim);
      if (victim == r) break;
    }
    if (!scheduled) break;
    plan.entries.push_back({r, n, /*is_new=*/false});
    plan.token_budget -= n;
    ++index;
  }
}

void Scheduler::schedule_waiting(StepPlan& plan) {
  while (!waiting_.empty() && plan.token_budget > 0) {
    if (static_cast<int32_t>(running_.size()) >= config_.max_num_seqs) break;
    Request* r = waiting_.front();
    ComputedBlocks hit = kv_->get_computed_blocks(*r);
    int32_t n = r->num_tokens() - hit.num_computed_tokens;
    if (config_.long_prefill_token_threshold > 0) {
      n = std::min(n, config_.long_prefill_token_threshold);
    }
    if (!config_.enable_chunked_prefill && n > plan.token_budget) break;
    n = std::min(n, plan.token_budget);
    if (!kv_->allocate_slots(*r, n, hit.num_computed_tokens, hit.blocks).has_value()) break;
    waiting_.pop_front();
    running_.push_back(r);
    r->status = RequestStatus::kRunning;
    r->num_computed_tokens = hit.num_computed_tokens;
    if (r->num_cached_tokens < 0) r->num_cached_tokens = hit.num_computed_tokens;
    plan.entries.push_back({r, n, /*is_new=*/true});
    plan.token_budget -= n;
  }
}

SchedulerOutput Scheduler::build_output(const StepPlan& plan) {
  SchedulerOutput out;
  out.scheduled.reserve(plan.entries.size());
  for (const StepEntry& e : plan.entries) {
    const Request& r = *e.request;
    ScheduledRequest s;
    s.request_id = r.request_id;
    s.position_start = r.num_computed_tokens;
    s.num_computed_tokens = r.num_computed_tokens;
    s.token_ids.assign(r.all_token_ids.begin() + r.num_computed_tokens,
                       r.all_token_ids.begin() + r.num_computed_tokens + e.num_tokens);
    s.block_ids = kv_->get_block_ids(r.request_id);
    s.needs_logits = r.num_computed_tokens + e.num_tokens >= r.num_tokens();
    s.is_new = e.is_new;
    out.total_num_scheduled_tokens += e.num_tokens;
    out.scheduled.push_back(std::move(s));
  }
  out.finished_request_ids = std::exchange(finished_since_last_step_, {});
  for (const Request* r : plan.preempted) out.preempted_request_ids.push_back(r->request_id);
  return out;
}

bool Scheduler::check_stop(Request& r) const {
  const SamplingParams& sp = r.sampling_params;
  if (r.num_output_tokens() >= sp.min_tokens && !r.output_token_ids.empty()) {
    const int32_t last = r.output_token_ids.back();
    if (!sp.ignore_eos && r.eos_token_id.has_value() && last == *r.eos_token_id) {
      r.status = RequestStatus::kFinishedStopped;
      return true;
    }
    if (std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), last) !=
        sp.stop_token_ids.end()) {
      r.status = RequestStatus::kFinishedStopped;
      r.stop_reason = last;
      return true;
    }
  }
  if (r.num_tokens() >= config_.max_model_len || r.num_output_tokens() >= r.max_tokens()) {
    r.status = RequestStatus::kFinishedLengthCapped;
    return true;
  }
  return false;
}

std::vector<RequestOutput> Scheduler::update_from_output(
    const SchedulerOutput& output,
    const absl::flat_hash_map<std::string, std::vector<int32_t>>& sampled) {
  std::vector<RequestOutput> outputs;
  for (const ScheduledRequest& s : output.scheduled) {
    if (!s.needs_logits) continue;
    auto req_it = requests_.find(s.request_id);
    if (req_it == requests_.end()) continue;  // aborted since the step was scheduled
    Request* r = req_it->second.get();
    if (r->status != RequestStatus::kRunning) continue;
    auto tok_it = sampled.find(s.request_id);
    if (tok_it == sampled.end() || tok_it->second.empty()) continue;
    RequestOutput o;
    o.request_id = r->request_id;
    bool stopped = false;
    for (int32_t token : tok_it->second) {
      r->append_output_token(token);
      o.new_token_ids.push_back(token);
      if (check_stop(*r)) {
        stopped = true;
        break;
      }
    }
    o.finished = stopped;
    o.status = r->status;
    o.stop_reason = r->stop_reason;
    o.num_cached_tokens = std::max(0, r->num_cached_tokens);
    outputs.push_back(std::move(o));
    if (stopped) free_finished(r);
  }
  return outputs;
}

void Scheduler::free_finished(Request* r) {
  kv_->free(*r);
  running_.erase(std::remove(running_.begin(), running_.end(), r), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), r), waiting_.end());
  std::string id = r->request_id;
  finished_since_last_step_.push_back(id);
  requests_.erase(id);  // destroys *r
}

bool Scheduler::finish_request(const std::string& request_id, RequestStatus status,
                               StopReason stop_reason) {
  MS_CHECK(is_finished(status));
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return false;
  Request* r = it->second.get();
  r->status = status;
  r->stop_reason = std::move(stop_reason);
  free_finished(r);
  return true;
}

Request* Scheduler::get_request(const std::string& request_id) {
  auto it = requests_.find(request_id);
  return it == requests_.end() ? nullptr : it->second.get();
}

SchedulerStats Scheduler::stats() {
  SchedulerStats s;
  s.num_running = num_running();
  s.num_waiting = num_waiting();
  s.kv_cache_usage = kv_->usage();
  s.num_preemptions = num_preemptions_;
  s.prefix_cache = kv_->take_prefix_cache_stats();
  s.prefix_cache_entries = static_cast<int64_t>(kv_->block_pool().num_cached_hashes());
  return s;
}

}  // namespace moeserve::engine
