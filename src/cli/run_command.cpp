// `moeserve run MODEL (--prompt TEXT | --prompt-ids 3,14,15) [--max-tokens N]
//  [--temperature T] [--seed S] [--ignore-eos] [--logprobs K] [--json]`
#include <cstdio>
#include <iostream>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "cli/offline_generator.h"
#include "core/logging.h"
#include "core/progress.h"
#include "nlohmann/json.hpp"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

namespace moeserve {
namespace {

StatusOr<std::vector<int32_t>> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    int32_t v;
    if (!absl::SimpleAtoi(part, &v) || v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids: '", part, "' is not a non-negative token id"));
    }
    ids.push_back(v);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--prompt-ids: no token ids given");
  return ids;
}

int fail(const Status& st) {
  std::fprintf(stderr, "moeserve run: %s\n", std::string(st.message()).c_str());
  return 1;
}

}  // namespace

int run_main(int argc, char** argv) {
  CLI::App app{"Generate text from a model directory", "moeserve run"};
  std::string model_dir, prompt, prompt_ids;
  GenerateOptions opts;
  bool json = false;
  app.add_option("MODEL", model_dir, "Hugging Face checkpoint directory")->required();
  auto* p1 = app.add_option("--prompt", prompt, "prompt text (needs tokenizer.json)");
  auto* p2 = app.add_option("--prompt-ids", prompt_ids, "comma-separated prompt token ids");
  p1->excludes(p2);
  app.add_option("--max-tokens", opts.max_tokens, "tokens to generate")->check(CLI::PositiveNumber);
  app.add_option("--temperature", opts.temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0));
  app.add_option("--seed", opts.seed, "sampling seed");
  app.add_flag("--ignore-eos", opts.ignore_eos, "keep generating past EOS");
  app.add_option("--logprobs", opts.top_logprobs, "top-K log-probabilities per token")
      ->check(CLI::Range(0, 1000));
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (prompt.empty() && prompt_ids.empty()) {
    return fail(absl::InvalidArgumentError("give --prompt TEXT or --prompt-ids IDS"));
  }

  std::optional<Tokenizer> tok;
  auto loaded = Tokenizer::load(model_dir);
  if (loaded.ok()) {
    tok.emplace(std::move(*loaded));
  } else if (!absl::IsNotFound(loaded.status()) || !prompt.empty()) {
    return fail(loaded.status());
  }
  std::vector<int32_t> ids;
  if (!prompt.empty()) {
    ids = tok->encode(prompt, /*add_special_tokens=*/true);
  } else {
    auto parsed = parse_ids(prompt_ids);
    if (!parsed.ok()) return fail(parsed.status());
    ids = std::move(*parsed);
  }

  std::optional<ProgressBar> bar;
  if (!json) bar.emplace("loading " + model_dir + " (layers)", 0);
  ModelLoadOptions lo;
  lo.progress = [&bar](size_t done, size_t total) {
    if (bar) bar->update(done, total);
  };
  auto model = DeepseekModel::load(model_dir, lo);
  if (bar) bar->finish();
  if (!model.ok()) return fail(model.status());
  const ModelConfig& cfg = (*model)->config();
  if (cfg.eos_token_id) opts.eos_ids.push_back(*cfg.eos_token_id);
  if (tok && tok->eos_id() && (!cfg.eos_token_id || *tok->eos_id() != *cfg.eos_token_id)) {
    opts.eos_ids.push_back(*tok->eos_id());
  }

  std::optional<IncrementalDecoder> stream;
  if (tok && !json) stream.emplace(*tok, /*skip_special_tokens=*/true);
  auto on_token = [&](int32_t id) {
    if (json) return;
    if (stream) {
      std::cout << stream->push(id) << std::flush;
    } else {
      std::cout << id << ' ' << std::flush;
    }
  };
  auto res = generate(**model, ids, opts, on_token);
  if (!res.ok()) return fail(res.status());
  if (!json) {
    if (stream) std::cout << stream->flush();
    std::cout << std::endl;
    return 0;
  }
  nlohmann::json out;
  out["token_ids"] = res->token_ids;
  out["text"] = tok ? tok->decode(res->token_ids, true) : std::string();
  nlohmann::json lps = nlohmann::json::array();
  for (const auto& step : res->logprobs) {
    nlohmann::json s = nlohmann::json::array();
    for (const auto& e : step) s.push_back({{"id", e.id}, {"logprob", e.logprob}});
    lps.push_back(s);
  }
  out["logprobs"] = lps;
  out["prompt_tokens"] = ids.size();
  out["prefill_tokens_per_s"] = ids.size() / std::max(res->prefill_seconds, 1e-9);
  const size_t decoded = res->token_ids.size() > 1 ? res->token_ids.size() - 1 : 0;
  out["decode_tokens_per_s"] = decoded / std::max(res->decode_seconds, 1e-9);
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return 0;
}

}  // namespace moeserve
