#include "server/generation_job.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "net/sse.h"
#include "server/api_error.h"
#include "server/response_format.h"

namespace moeserve::server {

net::HttpResponse error_response(const ApiError& error, int retry_after_seconds) {
  net::HttpResponse r;
  r.status = error.status;
  r.body = error_body(error);
  if (error.status == 503)
    r.headers.emplace_back("retry-after", std::to_string(retry_after_seconds));
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

class Job : public std::enable_shared_from_this<Job> {
 public:
  Job(const JobContext* ctx, JobSpec spec, std::shared_ptr<net::Responder> responder)
      : ctx_(ctx),
        spec_(std::move(spec)),
        responder_(std::move(responder)),
        created_(unix_seconds()),
        arrival_(Clock::now()) {}

  void start();
  void on_output(size_t index, engine::EngineOutput out);
  void client_gone();

 private:
  struct Choice {
    size_t prompt_index = 0;
    std::string engine_id;
    std::string text;
    int32_t num_output_tokens = 0;
    int32_t num_prompt_tokens = 0;
    int32_t num_cached_tokens = 0;
    CompletionLogprobs completion_logprobs;
    Json chat_logprobs = Json::array();
    int64_t text_offset = 0;
    bool first_chunk_sent = false;
    bool finished = false;
    std::optional<engine::FinishReason> finish_reason;
    engine::StopReason stop_reason;
    bool any_token = false;
    Clock::time_point last_token;
    std::optional<double> ttft;
    std::vector<double> itl;
    std::optional<engine::RequestPhaseTimes> phase_times;
  };

  const char* object_name() const {
    if (spec_.kind == JobKind::kCompletion) return "text_completion";
    return spec_.stream ? "chat.completion.chunk" : "chat.completion";
  }
  Json chunk_header() const {
    Json j;
    j["id"] = spec_.id;
    j["object"] = object_name();
    j["created"] = created_;
    j["model"] = ctx_->model_name;
    return j;
  }
  void record(const Choice& c, size_t index);
  void fail(const ApiError& error);
  void abort_unfinished();
  void stream_output(size_t index, const engine::EngineOutput& out, const Json& new_logprobs);
  void finish_stream();
  void send_full_response();
  Json total_usage() const;

  const JobContext* ctx_;
  JobSpec spec_;
  std::shared_ptr<net::Responder> responder_;
  int64_t created_;
  Clock::time_point arrival_;
  std::vector<Choice> choices_;
  size_t num_finished_ = 0;
  bool gone_ = false;
  bool failed_ = false;
  bool done_ = false;
  bool stream_started_ = false;
};

class JobSink final : public engine::OutputSink {
 public:
  JobSink(std::shared_ptr<Job> job, std::shared_ptr<net::Responder> responder, size_t index)
      : job_(std::move(job)), responder_(std::move(responder)), index_(index) {}
  void on_output(engine::EngineOutput output) override {
    responder_->post([job = job_, i = index_, o = std::move(output)]() mutable {
      job->on_output(i, std::move(o));
    });
  }

 private:
  std::shared_ptr<Job> job_;
  std::shared_ptr<net::Responder> responder_;
  size_t index_;
};

void Job::start() {
  const size_t n = static_cast<size_t>(spec_.n);
  choices_.resize(spec_.prompts.size() * n);
  for (size_t i = 0; i < choices_.size(); ++i) {
    choices_[i].prompt_index = i / n;
    choices_[i].engine_id = absl::StrCat(spec_.id, "-", i);
    choices_[i].num_prompt_tokens = static_cast<int32_t>(spec_.prompts[i / n].token_ids.size());
    choices_[i].text_offset = static_cast<int64_t>(spec_.prompts[i / n].echo_text.size());
  }
  auto self = shared_from_this();
  responder_->on_close([self] { self->client_gone(); });
  std::vector<engine::NewRequest> requests;
  requests.reserve(choices_.size());
  for (size_t i = 0; i < choices_.size(); ++i) {
    const JobPrompt& p = spec_.prompts[choices_[i].prompt_index];
    engine::NewRequest req;
    req.request_id = choices_[i].engine_id;
    req.prompt_token_ids = p.token_ids;
    req.params = p.params;
    req.params.n = 1;
    if (req.params.seed) {
      // Wraps instead of overflowing for seeds near the int64 extremes.
      req.params.seed = static_cast<int64_t>(static_cast<uint64_t>(*req.params.seed) + i % n);
    }
    req.cache_salt = spec_.cache_salt;
    req.sink = std::make_shared<JobSink>(self, responder_, i);
    requests.push_back(std::move(req));
  }
  // All choices are queued, or none (then nothing is left in the engine to abort).
  absl::Status st = ctx_->engine->add_requests(std::move(requests));
  if (!st.ok()) {
    for (Choice& c : choices_) {
      c.finished = true;
      c.finish_reason = engine::FinishReason::kAbort;
    }
    num_finished_ = choices_.size();
    fail(error_from_status(st));
    return;
  }
  if (spec_.stream) {
    responder_->start_stream(200, "text/event-stream; charset=utf-8");
    stream_started_ = true;
    if (spec_.kind == JobKind::kChat) {
      for (size_t i = 0; i < choices_.size(); ++i) {
        Json chunk = chunk_header();
        Json choice;
        choice["index"] = i;
        choice["delta"] = Json{{"role", "assistant"}, {"content", ""}};
        choice["logprobs"] = nullptr;
        choice["finish_reason"] = nullptr;
        chunk["choices"] = Json::array({choice});
        if (spec_.continuous_usage_stats) {
          chunk["usage"] = Json{{"prompt_tokens", choices_[i].num_prompt_tokens},
                                {"total_tokens", choices_[i].num_prompt_tokens},
                                {"completion_tokens", 0}};
        }
        responder_->write(net::sse_event(chunk));
      }
    }
  }
}

void Job::client_gone() {
  if (done_) return;
  gone_ = true;
  abort_unfinished();
}

void Job::abort_unfinished() {
  for (const Choice& c : choices_) {
    if (!c.finished) ctx_->engine->abort(c.engine_id);
  }
}

void Job::fail(const ApiError& error) {
  if (failed_ || done_) return;
  failed_ = true;
  done_ = true;
  abort_unfinished();
  if (gone_) return;
  if (stream_started_) {
    responder_->write(net::sse_data(error_body(error)));
    responder_->write(net::sse_done());
    responder_->end_stream();
  } else {
    responder_->send(error_response(error, ctx_->retry_after_seconds));
  }
}

void Job::record(const Choice& c, size_t index) {
  RequestRecord r;
  r.finish_reason = c.finish_reason.value_or(engine::FinishReason::kAbort);
  r.e2e_seconds = seconds(Clock::now() - arrival_);
  r.ttft_seconds = c.ttft;
  r.inter_token_seconds = c.itl;
  r.num_prompt_tokens = c.num_prompt_tokens;
  r.num_generation_tokens = c.num_output_tokens;
  r.max_tokens = spec_.prompts[c.prompt_index].params.max_tokens.value_or(0);
  r.n = spec_.n;
  r.count_params = index % static_cast<size_t>(spec_.n) == 0;
  r.phase_times = c.phase_times;
  ctx_->metrics->observe_request(r);
}

void Job::on_output(size_t index, engine::EngineOutput out) {
  if (index >= choices_.size()) return;
  Choice& c = choices_[index];
  if (c.finished) return;
  const Clock::time_point now = Clock::now();
  if (!out.token_ids.empty()) {
    if (!c.any_token) {
      c.ttft = seconds(now - arrival_);
    } else {
      c.itl.push_back(seconds(now - c.last_token));
    }
    c.any_token = true;
    c.last_token = now;
  }
  if (out.num_prompt_tokens > 0) c.num_prompt_tokens = out.num_prompt_tokens;
  c.num_cached_tokens = out.num_cached_tokens;
  c.num_output_tokens = std::max(c.num_output_tokens, out.num_output_tokens);
  c.text += out.text;

  const Tokenizer* tok = ctx_->tokenizer.get();
  Json new_logprobs = nullptr;
  if (spec_.logprobs && !out.logprobs.empty()) {
    if (spec_.kind == JobKind::kCompletion) {
      CompletionLogprobs delta;
      for (const auto& lp : out.logprobs) {
        delta.append(tok, lp, spec_.num_top_logprobs, &c.text_offset);
      }
      for (size_t k = 0; k < delta.tokens.size(); ++k) {
        c.completion_logprobs.text_offset.push_back(delta.text_offset[k]);
        c.completion_logprobs.token_logprobs.push_back(delta.token_logprobs[k]);
        c.completion_logprobs.tokens.push_back(delta.tokens[k]);
        c.completion_logprobs.top_logprobs.push_back(delta.top_logprobs[k]);
      }
      new_logprobs = delta.to_json();
    } else {
      Json content = Json::array();
      for (const auto& lp : out.logprobs)
        append_chat_logprob(tok, lp, spec_.num_top_logprobs, &content);
      for (const auto& e : content) c.chat_logprobs.push_back(e);
      new_logprobs = Json{{"content", content}};
    }
  }
  if (out.finished) {
    c.finished = true;
    c.finish_reason = out.finish_reason;
    c.stop_reason = out.stop_reason;
    c.phase_times = out.phase_times;
    ++num_finished_;
    record(c, index);
  }
  if (done_ || gone_) return;
  if (out.finished && out.finish_reason == engine::FinishReason::kError) {
    return fail(server_error(out.error.empty() ? "engine error" : out.error));
  }
  if (out.finished && out.finish_reason == engine::FinishReason::kAbort) {
    return fail(unavailable("The request was aborted by the engine (shutting down)."));
  }
  if (spec_.stream) stream_output(index, out, new_logprobs);
  if (num_finished_ == choices_.size()) {
    done_ = true;
    if (spec_.stream) {
      finish_stream();
    } else {
      send_full_response();
    }
  }
}

void Job::stream_output(size_t index, const engine::EngineOutput& out, const Json& new_logprobs) {
  Choice& c = choices_[index];
  std::string text = out.text;
  if (!c.first_chunk_sent && spec_.kind == JobKind::kCompletion) {
    text = spec_.prompts[c.prompt_index].echo_text + text;
  }
  if (text.empty() && new_logprobs.is_null() && !out.finished) return;  // nothing to show
  c.first_chunk_sent = true;
  Json chunk = chunk_header();
  Json choice;
  choice["index"] = index;
  if (spec_.kind == JobKind::kCompletion) {
    choice["text"] = text;
    choice["logprobs"] = new_logprobs;
  } else {
    choice["delta"] = text.empty() ? Json::object() : Json{{"content", text}};
    choice["logprobs"] = new_logprobs;
  }
  choice["finish_reason"] = out.finished ? finish_reason_json(out.finish_reason) : Json(nullptr);
  if (out.finished || spec_.kind == JobKind::kCompletion) {
    choice["stop_reason"] = out.finished ? stop_reason_json(out.stop_reason) : Json(nullptr);
  }
  chunk["choices"] = Json::array({choice});
  if (spec_.continuous_usage_stats) {
    chunk["usage"] = Json{{"prompt_tokens", c.num_prompt_tokens},
                          {"total_tokens", c.num_prompt_tokens + c.num_output_tokens},
                          {"completion_tokens", c.num_output_tokens}};
  }
  responder_->write(net::sse_event(chunk));
}

Json Job::total_usage() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  const size_t n = static_cast<size_t>(spec_.n);
  for (size_t i = 0; i < choices_.size(); ++i) {
    completion += choices_[i].num_output_tokens;
    if (i % n == 0) {
      prompt += choices_[i].num_prompt_tokens;
      cached += choices_[i].num_cached_tokens;
    }
  }
  return usage_json(
      prompt, completion,
      ctx_->enable_prompt_tokens_details ? std::optional<int64_t>(cached) : std::nullopt);
}

void Job::finish_stream() {
  if (spec_.include_usage) {
    Json chunk = chunk_header();
    chunk["choices"] = Json::array();
    Json usage = total_usage();
    if (usage["prompt_tokens_details"].is_null()) usage.erase("prompt_tokens_details");
    chunk["usage"] = std::move(usage);
    responder_->write(net::sse_event(chunk));
  }
  responder_->write(net::sse_done());
  responder_->end_stream();
}

void Job::send_full_response() {
  Json body = chunk_header();
  Json choices = Json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    const std::string text = spec_.prompts[c.prompt_index].echo_text + c.text;
    Json choice;
    choice["index"] = i;
    if (spec_.kind == JobKind::kCompletion) {
      choice["text"] = text;
      choice["logprobs"] = spec_.logprobs ? c.completion_logprobs.to_json() : Json(nullptr);
    } else {
      choice["message"] =
          Json{{"role", "assistant"}, {"content", text}, {"tool_calls", Json::array()}};
      choice["logprobs"] = spec_.logprobs ? Json{{"content", c.chat_logprobs}} : Json(nullptr);
    }
    choice["finish_reason"] = finish_reason_json(c.finish_reason);
    choice["stop_reason"] = stop_reason_json(c.stop_reason);
    choices.push_back(std::move(choice));
  }
  body["choices"] = std::move(choices);
  body["usage"] = total_usage();
  net::HttpResponse r;
  r.body = net::dump_json(body);
  responder_->send(std::move(r));
}

}  // namespace

void start_generation_job(const JobContext* context, JobSpec spec,
                          std::shared_ptr<net::Responder> responder) {
  auto job = std::make_shared<Job>(context, std::move(spec), std::move(responder));
  job->start();
}

}  // namespace moeserve::server
