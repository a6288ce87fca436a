#include "engine/llm_engine.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "core/logging.h"
#include "engine/expert_load_stats.h"
#include "engine/model_runner.h"
#include "engine/stop_checker.h"
#include "model/deepseek.h"
#include "tokenizer/incremental_decoder.h"

namespace moeserve::engine {

// Engine-loop-side state of one request.
struct LlmEngine::Tracked {
  std::shared_ptr<OutputSink> sink;
  std::optional<IncrementalDecoder> decoder;
  StopChecker stop;
  bool want_logprobs = false;
  int32_t num_prompt_tokens = 0;
  int32_t num_output_tokens = 0;
  // Engine-side timestamps of the request's phases (scheduled/first_token unset: epoch).
  std::chrono::steady_clock::time_point queued, scheduled, first_token, last_token;

  Tracked(std::shared_ptr<OutputSink> s, const Tokenizer* tok, const SamplingParams& p,
          int32_t prompt_len)
      : sink(std::move(s)),
        stop(p.stop, p.include_stop_str_in_output),
        want_logprobs(p.logprobs.has_value()),
        num_prompt_tokens(prompt_len) {
    if (tok) decoder.emplace(*tok, p.skip_special_tokens);
  }
};

StatusOr<std::unique_ptr<LlmEngine>> LlmEngine::create(EngineConfig config,
                                                       std::unique_ptr<DeepseekModel> model,
                                                       std::shared_ptr<const Tokenizer> tokenizer,
                                                       KVEventSink* events) {
  auto e = std::unique_ptr<LlmEngine>(new LlmEngine());
  const ModelConfig& mc = model->config();
  if (config.scheduler.max_model_len <= 0) {
    config.scheduler.max_model_len = static_cast<int32_t>(mc.max_position_embeddings);
  }
  if (config.scheduler.max_model_len > mc.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max-model-len (%d) exceeds the model's max_position_embeddings (%d)",
                        config.scheduler.max_model_len, mc.max_position_embeddings));
  }
  config.cache.max_model_len = config.scheduler.max_model_len;
  const int64_t per_block = LatentCache::bytes_per_block(
      mc.num_hidden_layers, config.cache.block_size, model->cache_entry_dim());
  if (config.cache.num_blocks <= 0) {
    if (config.kv_cache_memory_bytes <= 0) {
      return absl::InvalidArgumentError("KV cache: give a number of blocks or a memory size");
    }
    config.cache.num_blocks = static_cast<int32_t>(
        std::min<int64_t>(config.kv_cache_memory_bytes / per_block, int64_t{1} << 30));
  }
  const int64_t blocks_per_seq =
      (config.scheduler.max_model_len + config.cache.block_size - 1) / config.cache.block_size;
  if (config.cache.num_blocks - 1 < blocks_per_seq) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "KV cache: %d blocks of %d tokens cannot hold one sequence of --max-model-len %d "
        "tokens (%d blocks); raise --kv-cache-memory or lower --max-model-len",
        config.cache.num_blocks - 1, config.cache.block_size, config.scheduler.max_model_len,
        blocks_per_seq));
  }
  MS_ASSIGN_OR_RETURN(e->scheduler_, Scheduler::create(config.scheduler, config.cache, events));
  MS_ASSIGN_OR_RETURN(LatentCache cache,
                      LatentCache::create(mc.num_hidden_layers, config.cache.num_blocks,
                                          config.cache.block_size, model->cache_entry_dim()));
  e->runner_ = std::make_unique<ModelRunner>(model.get(), std::move(cache), config.sampler_seed);
  MS_ASSIGN_OR_RETURN(e->input_processor_,
                      InputProcessor::create(InputProcessorConfig::from_model(
                          mc, config.scheduler.max_model_len, tokenizer.get(),
                          config.generation_defaults)));
  e->events_ = events;
  if (ProcessGroup* g = model->ep_group(); g != nullptr && g->world_size() > 1) {
    e->dp_ = std::make_unique<DpCoordinator>(g, config.data_parallel);
    MS_LOG_INFO("engine: data-parallel rank {} of {} (expert-parallel MoE, lockstep steps)",
                g->rank(), g->world_size());
  }
  if (!model->moe_layer_ids().empty()) {
    if (config.expert_load_window < 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the expert load window must be at least one step (got %d)",
          config.expert_load_window));
    }
    e->expert_load_ = std::make_unique<ExpertLoadStats>(model.get(), model->ep_group(),
                                                        config.expert_load_window);
  }
  e->config_ = config;
  e->model_ = std::move(model);
  e->tokenizer_ = std::move(tokenizer);
  {
    absl::MutexLock lk(&e->mu_);
    e->stats_.num_gpu_blocks = config.cache.num_blocks - 1;
    e->stats_.block_size = config.cache.block_size;
  }
  MS_LOG_INFO("engine: KV cache of {} blocks x {} tokens ({:.1f} MiB), max_model_len {}",
              config.cache.num_blocks - 1, config.cache.block_size,
              per_block * static_cast<double>(config.cache.num_blocks) / (1 << 20),
              config.scheduler.max_model_len);
  e->thread_ = std::thread([p = e.get()] { p->loop(); });
  return e;
}

LlmEngine::~LlmEngine() {
  shutdown(false);
}

const ModelConfig& LlmEngine::model_config() const {
  return model_->config();
}

Status LlmEngine::add_request(NewRequest r) {
  std::vector<NewRequest> one;
  one.push_back(std::move(r));
  return add_requests(std::move(one));
}

Status LlmEngine::add_requests(std::vector<NewRequest> requests) {
  for (const NewRequest& r : requests) MS_RETURN_IF_ERROR(check_new_request(r));
  if (dead_.load()) return absl::UnavailableError("the engine has stopped after an error");
  absl::MutexLock lk(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  const int64_t limit = config_.scheduler.max_waiting_requests;
  if (limit > 0 &&
      int64_t{stats_.num_waiting} + queued_ + static_cast<int64_t>(requests.size()) > limit) {
    return absl::UnavailableError("too many requests are waiting; retry later");
  }
  const auto now = std::chrono::steady_clock::now();
  for (NewRequest& r : requests) {
    ++queued_;
    r.queued_at = now;
    pending_adds_.push_back(std::move(r));
  }
  return absl::OkStatus();
}

Status LlmEngine::check_new_request(const NewRequest& r) const {
  if (!r.sink) return absl::InvalidArgumentError("request has no output sink");
  MS_RETURN_IF_ERROR(input_processor_->check_prompt(r.prompt_token_ids));
  return absl::OkStatus();
}

void LlmEngine::abort(const std::string& request_id) {
  absl::MutexLock lk(&mu_);
  pending_aborts_.push_back(request_id);
}

EngineStats LlmEngine::stats() {
  absl::MutexLock lk(&mu_);
  EngineStats s = stats_;
  stats_.iteration_tokens.clear();
  if (expert_load_) s.expert_load = expert_load_->snapshot();
  return s;
}

std::shared_ptr<const ExpertLoadSnapshot> LlmEngine::expert_load() const {
  return expert_load_ ? expert_load_->snapshot() : nullptr;
}

void LlmEngine::shutdown(bool drain) {
  {
    absl::MutexLock lk(&mu_);
    stopping_ = true;
    if (!drain) stop_now_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace moeserve::engine

namespace moeserve::engine {

void LlmEngine::die(const Status& st) {
  MS_LOG_ERROR("engine: {}; failing every request", std::string(st.message()));
  dead_.store(true);
  for (auto& [id, t] : tracked_) fail(*t, id, FinishReason::kError, std::string(st.message()));
  tracked_.clear();
  absl::MutexLock lk(&mu_);
  stopping_ = true;
  for (auto& r : pending_adds_) {
    EngineOutput o;
    o.request_id = r.request_id;
    o.finished = true;
    o.finish_reason = FinishReason::kError;
    o.error = std::string(st.message());
    r.sink->on_output(std::move(o));
  }
  pending_adds_.clear();
}

void LlmEngine::abort_all() {
  for (auto& [id, t] : tracked_) {
    scheduler_->abort(id);
    fail(*t, id, FinishReason::kAbort, "");
  }
  tracked_.clear();
}

void LlmEngine::loop() {
  if (dp_) {
    dp_loop();
    return;
  }
  while (true) {
    {
      absl::MutexLock lk(&mu_);
      mu_.Await(absl::Condition(this, &LlmEngine::has_input_or_work));
      if (stopping_ && !stop_now_ && pending_adds_.empty() &&
          !scheduler_->has_unfinished_requests()) {
        return;  // drained
      }
    }
    if (!drain_inputs()) break;
    if (!scheduler_->has_unfinished_requests()) {
      end_event_step();
      continue;
    }
    Status st;
    try {
      st = step();
    } catch (const std::exception& ex) {
      st = absl::InternalError(absl::StrCat("engine step threw: ", ex.what()));
    }
    end_event_step();
    if (st.ok() && expert_load_ &&
        (expert_load_->publish_due() || !scheduler_->has_unfinished_requests())) {
      st = expert_load_->publish();
    }
    if (!st.ok()) {
      die(st);
      return;
    }
  }
  // Stopped without draining: abort what is left.
  abort_all();
}

void LlmEngine::dp_loop() {
  ProcessGroup* group = model_->ep_group();
  const int me = dp_->rank();
  auto wait_local = [this](std::chrono::microseconds timeout) {
    absl::MutexLock lk(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(this, &LlmEngine::has_input),
                                absl::FromChrono(timeout));
  };
  while (true) {
    DpRankState mine;
    mine.stop_now = !drain_inputs();
    {
      absl::MutexLock lk(&mu_);
      mine.draining = stopping_ && !stop_now_;
    }
    SchedulerOutput so;
    Status local;
    if (!mine.stop_now && scheduler_->has_unfinished_requests()) {
      mine.has_work = true;
      so = scheduler_->schedule();
      if (so.scheduled.empty() && scheduler_->num_running() == 0 && !tracked_.empty()) {
        local = absl::ResourceExhaustedError("the KV cache cannot hold a waiting request");
      }
      mine.num_tokens = so.total_num_scheduled_tokens;
    }
    mine.failed = !local.ok();
    StatusOr<DpStep> agreed = dp_->sync(mine);
    if (!agreed.ok()) return die(agreed.status());
    if (!local.ok()) return die(local);
    if (const int leaving = agreed->leaving_rank(); leaving >= 0) {
      (void)dp_->discard_wakes();
      if (mine.stop_now || mine.draining) break;
      const DpRankState& l = agreed->ranks[leaving];
      return die(absl::UnavailableError(absl::StrFormat(
          "data-parallel rank %d %s; rank %d cannot run the expert-parallel MoE layers without "
          "it",
          leaving, l.failed ? "failed" : "shut down", me)));
    }
    if (!agreed->any_work()) {
      // Every rank is here at the same lockstep point: publish what the busy period left.
      if (expert_load_) {
        if (Status st = expert_load_->publish(); !st.ok()) return die(st);
      }
      {
        absl::MutexLock lk(&mu_);
        ++stats_.dp_idle_waits;
      }
      StatusOr<DpCoordinator::Wake> w = dp_->wait_idle(wait_local);
      if (!w.ok()) return die(w.status());
      continue;
    }
    if (expert_load_ && expert_load_->publish_due()) {
      if (Status st = expert_load_->publish(); !st.ok()) return die(st);
    }
    Status st;
    try {
      st = run_step(so, agreed->max_tokens());
    } catch (const std::exception& ex) {
      st = absl::InternalError(absl::StrCat("engine step threw: ", ex.what()));
    }
    end_event_step();
    if (!st.ok()) {
      // The model kept the exchanges in lockstep; tell the peers we leave (unless the group
      // itself failed, when they notice on their own).
      if (group->check_peer(-1, "").ok()) {
        DpRankState failed;
        failed.failed = true;
        (void)dp_->sync(failed);
      }
      return die(st);
    }
  }
  abort_all();
  end_event_step();
}

bool LlmEngine::has_input() const {
  return stop_now_ || stopping_ || !pending_adds_.empty() || !pending_aborts_.empty();
}

bool LlmEngine::has_input_or_work() const {
  return has_input() || scheduler_->has_unfinished_requests();
}

bool LlmEngine::drain_inputs() {
  std::deque<NewRequest> adds;
  std::deque<std::string> aborts;
  {
    absl::MutexLock lk(&mu_);
    if (stop_now_) return false;
    adds.swap(pending_adds_);
    aborts.swap(pending_aborts_);
    queued_ = 0;
  }
  const std::optional<int32_t> eos = input_processor_->eos_token_id();
  for (NewRequest& r : adds) {
    auto t = std::make_unique<Tracked>(r.sink, tokenizer_.get(), r.params,
                                       static_cast<int32_t>(r.prompt_token_ids.size()));
    t->queued = r.queued_at;
    const std::string id = r.request_id;
    if (tracked_.contains(id)) {
      fail(*t, id, FinishReason::kError, absl::StrCat("duplicate request id ", id));
      continue;
    }
    auto req = std::make_unique<Request>(id, std::move(r.prompt_token_ids), std::move(r.params),
                                         eos, std::move(r.cache_salt));
    Status st = scheduler_->add_request(std::move(req));
    if (!st.ok()) {
      fail(*t, id, FinishReason::kError, std::string(st.message()));
      continue;
    }
    tracked_.emplace(id, std::move(t));
  }
  for (const std::string& id : aborts) {
    auto it = tracked_.find(id);
    if (it == tracked_.end()) continue;
    scheduler_->abort(id);
    fail(*it->second, id, FinishReason::kAbort, "");
    tracked_.erase(it);
  }
  if (!aborts.empty()) publish_stats(SchedulerOutput{}, 0);
  return true;
}

std::optional<RequestPhaseTimes> LlmEngine::phase_times(const Tracked& t) {
  if (t.scheduled.time_since_epoch().count() == 0 || t.first_token.time_since_epoch().count() == 0) {
    return std::nullopt;
  }
  auto secs = [](std::chrono::steady_clock::duration d) {
    return std::max(0.0, std::chrono::duration<double>(d).count());
  };
  RequestPhaseTimes p;
  p.queue_seconds = secs(t.scheduled - t.queued);
  p.prefill_seconds = secs(t.first_token - t.scheduled);
  p.decode_seconds = secs(t.last_token - t.first_token);
  p.inference_seconds = secs(t.last_token - t.scheduled);
  return p;
}

void LlmEngine::fail(Tracked& t, const std::string& id, FinishReason reason,
                     const std::string& error) {
  EngineOutput o;
  o.request_id = id;
  o.finished = true;
  o.finish_reason = reason;
  o.error = error;
  o.num_prompt_tokens = t.num_prompt_tokens;
  o.num_output_tokens = t.num_output_tokens;
  o.phase_times = phase_times(t);
  t.sink->on_output(std::move(o));
}

Status LlmEngine::step() {
  SchedulerOutput so = scheduler_->schedule();
  if (so.scheduled.empty()) {
    // Nothing fits: with nothing running, the head of the queue can never be admitted.
    if (scheduler_->num_running() == 0 && !tracked_.empty()) {
      return absl::ResourceExhaustedError("the KV cache cannot hold a waiting request");
    }
    return absl::OkStatus();
  }
  return run_step(so, -1);
}

Status LlmEngine::run_step(const SchedulerOutput& so, int64_t max_tokens_across_dp) {
  const auto step_start = std::chrono::steady_clock::now();
  for (const ScheduledRequest& r : so.scheduled) {
    if (!r.is_new) continue;  // a first scheduling is always new
    auto it = tracked_.find(r.request_id);
    if (it != tracked_.end() && it->second->scheduled.time_since_epoch().count() == 0) {
      it->second->scheduled = step_start;
    }
  }
  ModelRunnerOutput ran;
  MS_RETURN_IF_ERROR(runner_->execute(
      so, [this](const std::string& id) { return scheduler_->get_request(id); }, &ran,
      max_tokens_across_dp));
  if (expert_load_) expert_load_->end_step(/*is_dummy=*/so.scheduled.empty());
  if (so.scheduled.empty()) {
    absl::MutexLock lk(&mu_);
    ++stats_.dp_dummy_steps;
    return absl::OkStatus();
  }
  absl::flat_hash_map<std::string, std::vector<int32_t>> sampled;
  absl::flat_hash_map<std::string, TokenLogprobs> lps;
  for (size_t i = 0; i < ran.req_ids.size(); ++i) {
    sampled[ran.req_ids[i]] = {ran.sampled_token_ids[i]};
    if (ran.logprobs[i]) lps[ran.req_ids[i]] = std::move(*ran.logprobs[i]);
  }
  std::vector<RequestOutput> outs = scheduler_->update_from_output(so, sampled);
  int64_t new_tokens = 0;
  std::vector<Delivery> deliveries;
  for (const RequestOutput& o : outs) {
    new_tokens += static_cast<int64_t>(o.new_token_ids.size());
    std::vector<TokenLogprobs> l;
    if (auto it = lps.find(o.request_id); it != lps.end() && !o.new_token_ids.empty()) {
      l.push_back(std::move(it->second));
    }
    if (auto d = emit(o, std::move(l))) deliveries.push_back(std::move(*d));
  }
  // Stats first, so a client that sees its final output also sees the step in stats().
  publish_stats(so, new_tokens);
  for (Delivery& d : deliveries) d.sink->on_output(std::move(d.output));
  return absl::OkStatus();
}

std::optional<LlmEngine::Delivery> LlmEngine::emit(const RequestOutput& out,
                                                   std::vector<TokenLogprobs> logprobs) {
  auto it = tracked_.find(out.request_id);
  if (it == tracked_.end()) return std::nullopt;
  Tracked& t = *it->second;
  EngineOutput o;
  o.request_id = out.request_id;
  o.token_ids = out.new_token_ids;
  o.logprobs = std::move(logprobs);
  o.num_prompt_tokens = t.num_prompt_tokens;
  o.num_cached_tokens = std::max(0, out.num_cached_tokens);
  t.num_output_tokens += static_cast<int32_t>(out.new_token_ids.size());
  o.num_output_tokens = t.num_output_tokens;
  if (!out.new_token_ids.empty()) {
    t.last_token = std::chrono::steady_clock::now();
    if (t.first_token.time_since_epoch().count() == 0) t.first_token = t.last_token;
  }
  bool finished = out.finished;
  RequestStatus status = out.status;
  StopReason reason = out.stop_reason;
  if (t.decoder) {
    std::string piece;
    for (int32_t id : out.new_token_ids) piece += t.decoder->push(id);
    if (finished) piece += t.decoder->flush();
    StopCheckResult sr = t.stop.push(piece);
    o.text = std::move(sr.text_safe_to_emit);
    if (sr.stopped && !finished) {
      scheduler_->finish_request(out.request_id, RequestStatus::kFinishedStopped, sr.stop_reason);
      finished = true;
      status = RequestStatus::kFinishedStopped;
      reason = sr.stop_reason;
    } else if (sr.stopped) {
      status = RequestStatus::kFinishedStopped;
      reason = sr.stop_reason;
    }
    if (finished && !sr.stopped) o.text += t.stop.flush();
  }
  o.finished = finished;
  if (finished) {
    o.finish_reason = finish_reason(status);
    o.stop_reason = reason;
    o.phase_times = phase_times(t);
  }
  Delivery d{t.sink, std::move(o)};
  if (finished) tracked_.erase(it);
  return d;
}

void LlmEngine::publish_stats(const SchedulerOutput& so, int64_t new_tokens) {
  SchedulerStats s = scheduler_->stats();
  int64_t prompt = 0;
  for (const ScheduledRequest& r : so.scheduled) {
    if (!r.is_new) continue;
    if (const Request* q = scheduler_->get_request(r.request_id); q && q->num_preemptions == 0) {
      prompt += q->num_prompt_tokens();
    }
  }
  absl::MutexLock lk(&mu_);
  stats_.num_running = s.num_running;
  stats_.num_waiting = s.num_waiting;
  stats_.kv_cache_usage = s.kv_cache_usage;
  stats_.num_preemptions = s.num_preemptions;
  stats_.prefix_cache_queries += s.prefix_cache.queries;
  stats_.prefix_cache_hits += s.prefix_cache.hits;
  stats_.prefix_cache_entries = s.prefix_cache_entries;
  stats_.prompt_tokens += prompt;
  stats_.generation_tokens += new_tokens;
  if (so.scheduled.empty()) return;
  stats_.steps += 1;
  if (stats_.iteration_tokens.size() < 100000) {
    stats_.iteration_tokens.push_back(so.total_num_scheduled_tokens);
  }
}

}  // namespace moeserve::engine
