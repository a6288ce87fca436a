// `moeserve run MODEL (--prompt TEXT | --prompt-ids 3,14,15) [--max-tokens N]
//  [--temperature T] [--seed S] [--ignore-eos] [--logprobs K] [--generation-config auto]
//  [--json]`: one request through an LlmEngine, built by its InputProcessor like a server
// request, so `run --seed S --temperature T` and a completion request with the same seed,
// temperature and max_tokens give the same tokens.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/offline_engine.h"
#include "core/logging.h"
#include "core/progress.h"
#include "model/deepseek.h"
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
  std::string model_dir, prompt, prompt_ids, generation_config = "auto";
  int32_t max_tokens = 16;
  double temperature = 0.0;
  std::optional<int64_t> seed;
  int32_t top_logprobs = 0;
  bool ignore_eos = false, json = false;
  app.add_option("MODEL", model_dir, "Hugging Face checkpoint directory")->required();
  auto* p1 = app.add_option("--prompt", prompt, "prompt text (needs tokenizer.json)");
  auto* p2 = app.add_option("--prompt-ids", prompt_ids, "comma-separated prompt token ids");
  p1->excludes(p2);
  app.add_option("--max-tokens", max_tokens, "tokens to generate")->check(CLI::PositiveNumber);
  app.add_option("--temperature", temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0));
  app.add_option("--seed", seed,
                 "sampling seed (the request's own random stream, as a server request's "
                 "\"seed\"); unset: unseeded");
  app.add_flag("--ignore-eos", ignore_eos, "keep generating past EOS");
  app.add_option("--logprobs", top_logprobs, "top-K log-probabilities per token")
      ->check(CLI::Range(0, 1000));
  app.add_option("--generation-config", generation_config,
                 "'auto' (the model's generation_config.json), 'vllm' (none) or a folder");
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (prompt.empty() && prompt_ids.empty()) {
    return fail(absl::InvalidArgumentError("give --prompt TEXT or --prompt-ids IDS"));
  }

  std::shared_ptr<const Tokenizer> tok;
  auto loaded = Tokenizer::load(model_dir);
  if (loaded.ok()) {
    tok = std::make_shared<Tokenizer>(std::move(*loaded));
  } else if (!absl::IsNotFound(loaded.status()) || !prompt.empty()) {
    return fail(loaded.status());
  }
  engine::RequestInputs in;
  if (!prompt.empty()) {
    in.prompt_token_ids = tok->encode(prompt, /*add_special_tokens=*/true);
  } else {
    auto parsed = parse_ids(prompt_ids);
    if (!parsed.ok()) return fail(parsed.status());
    in.prompt_token_ids = std::move(*parsed);
  }
  // The fields a server request sets; the rest come from generation_config like the server's.
  in.sampling.temperature = temperature;
  in.params.seed = seed;
  in.params.ignore_eos = ignore_eos;
  if (top_logprobs > 0) in.params.logprobs = top_logprobs;
  in.max_tokens = max_tokens;

  auto defaults =
      engine::GenerationDefaults::load(generation_config, model_dir, nlohmann::json::object());
  if (!defaults.ok()) return fail(defaults.status());
  std::optional<ProgressBar> bar;
  if (!json) bar.emplace("loading " + model_dir + " (layers)", 0);
  ModelLoadOptions lo;
  lo.progress = [&bar](size_t done, size_t total) {
    if (bar) bar->update(done, total);
  };
  auto model = DeepseekModel::load(model_dir, lo);
  if (bar) bar->finish();
  if (!model.ok()) return fail(model.status());

  OfflineEngineOptions eo;
  eo.max_model_len = static_cast<int64_t>(in.prompt_token_ids.size()) + max_tokens;
  eo.max_num_batched_tokens =
      std::max<int32_t>(2048, static_cast<int32_t>(in.prompt_token_ids.size()));
  eo.generation_defaults = std::move(*defaults);
  auto eng = make_offline_engine(std::move(*model), tok, eo);
  if (!eng.ok()) return fail(eng.status());

  auto on_output = [&](const engine::EngineOutput& o) {
    if (json) return;
    if (tok) {
      std::cout << o.text << std::flush;
    } else {
      for (int32_t id : o.token_ids) std::cout << id << ' ';
      std::cout << std::flush;
    }
  };
  auto res = generate_one(**eng, "run-0", in, on_output);
  if (!res.ok()) return fail(res.status());
  if (!json) {
    std::cout << std::endl;
    return 0;
  }
  nlohmann::json out;
  out["token_ids"] = res->token_ids;
  out["text"] = res->text;
  nlohmann::json lps = nlohmann::json::array();
  for (const auto& step : res->logprobs) {
    nlohmann::json s = nlohmann::json::array();
    for (const auto& e : step.top) s.push_back({{"id", e.token_id}, {"logprob", e.logprob}});
    lps.push_back(s);
  }
  out["logprobs"] = lps;
  out["finish_reason"] = std::string(engine::finish_reason_name(res->finish_reason));
  out["prompt_tokens"] = in.prompt_token_ids.size();
  out["prefill_tokens_per_s"] =
      in.prompt_token_ids.size() / std::max(res->times.prefill_seconds, 1e-9);
  const size_t decoded = res->token_ids.size() > 1 ? res->token_ids.size() - 1 : 0;
  out["decode_tokens_per_s"] = decoded / std::max(res->times.decode_seconds, 1e-9);
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return 0;
}

}  // namespace moeserve
