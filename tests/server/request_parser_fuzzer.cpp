// Fuzz entry point for the OpenAI request parsers: any bytes must yield a request or an
// ApiError, never a crash, an exception or unbounded work. Built as a libFuzzer target with
// clang; otherwise linked with the small driver below that runs a built-in corpus, mutations
// of it and random inputs (a ctest).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moeserve::server;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  ApiResult<Json> json = parse_json_body(body);
  if (auto* j = std::get_if<Json>(&json)) {
    (void)parse_completion_request(*j);
    (void)parse_chat_request(*j);
    (void)parse_tokenize_request(*j);
    (void)parse_detokenize_request(*j);
    if (auto m = j->find("messages"); m != j->end()) (void)normalize_messages(*m);
  }
  return 0;
}

#ifndef MOESERVE_LIBFUZZER
#include <cstdio>
#include <random>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const std::vector<std::string> corpus = {
      R"({"prompt":"hello","max_tokens":5,"temperature":0.7,"stop":["a","b"],"n":2})",
      R"({"prompt":[1,2,3],"logprobs":3,"echo":false,"stream":true,"stream_options":{"include_usage":true}})",
      R"({"prompt":[[1],[2,3]],"seed":-1,"top_k":-1,"min_p":0.5,"suffix":null})",
      R"({"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":3,"logprobs":true,"top_logprobs":2})",
      R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"continue_final_message":true,"add_generation_prompt":false})",
      R"({"messages":[{"role":"system","content":null},{"role":"assistant","content":"x"}],"chat_template_kwargs":{"k":1},"tools":[{"type":"function"}]})",
      R"({"prompt":"x","return_token_strs":true,"add_special_tokens":false})",
      R"({"tokens":[1,2,3,4294967296]})",
      R"({"prompt":"x","max_tokens":1e400,"seed":18446744073709551616,"n":-0.0})",
      "{\"prompt\":\"\xff\xfe\",\"stop\":\"\xc3\"}",
      R"({"prompt":"x","temperature":"NaN","top_p":[],"stop_token_ids":{"a":1}})",
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
  };
  std::mt19937_64 rng(argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 12345);
  size_t runs = 0;
  auto run = [&](const std::string& s) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ++runs;
  };
  for (const auto& s : corpus) run(s);
  const std::string alphabet = "{}[]\":,0123456789.-eE truefalsnl\\u\xff\xc3promptmessagesrole";
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = corpus[rng() % corpus.size()];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 2:
          s.erase(pos, 1 + rng() % 4);
          break;
        default:
          s = s.substr(0, pos);
          break;
      }
    }
    run(s);
  }
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s(rng() % 256, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    run(s);
  }
  run(std::string(100000, '['));  // deep nesting is refused, not recursed into
  std::printf("request_parser_fuzzer: %zu inputs, no crash\n", runs);
  return 0;
}
#endif
