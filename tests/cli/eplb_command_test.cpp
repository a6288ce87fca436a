// `moeserve eplb plan` as a real process: the README example of DeepSeek's eplb.py through the
// command line, and clear errors (exit status 1, a message naming the problem) for bad input.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;     // exit status
  std::string output;  // stdout and stderr
};

Result run(const std::string& args) {
  Result r;
  const std::string cmd = std::string(MOESERVE_BINARY) + " eplb plan " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string write_file(const std::string& name, const std::string& text) {
  const fs::path path = fs::path(::testing::TempDir()) / name;
  std::ofstream(path) << text;
  return path.string();
}

const char* kReadme =
    R"({"load": [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                 [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]})";

TEST(EplbCommand, ReadmeExampleAsJson) {
  const std::string load = write_file("eplb_readme.json", kReadme);
  const Result r = run("--load " + load +
                       " --num-redundant-experts 4 --num-groups 4 --num-nodes 2 --num-ranks 8 "
                       "--policy hierarchical --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["physical_to_logical"],
            nlohmann::json::parse("[[5,6,5,7,8,4,3,4,10,9,10,2,0,1,11,1],"
                                  "[7,10,6,8,6,11,8,9,2,4,5,1,5,0,3,1]]"));
  EXPECT_EQ(j["logical_replica_count"],
            nlohmann::json::parse("[[1,2,1,1,2,2,1,1,1,1,2,1],[1,2,1,1,1,2,2,1,2,1,1,1]]"));
  EXPECT_EQ(j["logical_to_physical"][0],
            nlohmann::json::parse("[[12,-1],[15,13],[11,-1],[6,-1],[7,5],[0,2],[1,-1],[3,-1],"
                                  "[4,-1],[9,-1],[8,10],[14,-1]]"));
  ASSERT_EQ(j["imbalance"].size(), 2u);

  // Ours on the same input: never less balanced.
  const Result ours = run("--load " + load +
                          " --num-redundant-experts 4 --num-groups 4 --num-nodes 2 "
                          "--num-ranks 8 --json");
  ASSERT_EQ(ours.status, 0) << ours.output;
  const nlohmann::json o = nlohmann::json::parse(ours.output);
  for (int l = 0; l < 2; ++l) {
    EXPECT_LE(o["imbalance"][l].get<double>(), j["imbalance"][l].get<double>() + 1e-12);
  }
}

TEST(EplbCommand, BadInputFailsWithAClearMessage) {
  const std::string common = " --num-groups 1 --num-nodes 1 --num-ranks 2";
  struct Case {
    std::string file_text;
    std::string args;
    std::string message;
  };
  const Case cases[] = {
      {R"({"load": [[1, -5, 3, 4]]})", "--num-redundant-experts 0", "load[0][1] is -5"},
      {R"({"load": [[1, 2, 3, 4], [1, 2]]})", "--num-redundant-experts 0",
       "layer 1 of the load has 2 experts"},
      {R"({"load": [[1, 2, 3, 4]]})", "--num-redundant-experts 1",
       "cannot be split evenly over 2 ranks"},
      {R"({"loads": [[1, 2]]})", "--num-redundant-experts 0", "expected {\"load\""},
      {R"({"load": [[1, "x"]]})", "--num-redundant-experts 0", "load[0][1] is not a number"},
      {R"({"load": [[1, 2)", "--num-redundant-experts 0", "not valid JSON"},
      {R"({"load": [[1, 2, 3, 4]]})", "--num-redundant-experts -1", ">= 0"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string load = write_file("eplb_bad_" + std::to_string(i++) + ".json", c.file_text);
    const Result r = run("--load " + load + " " + c.args + common);
    EXPECT_EQ(r.status, 1) << c.file_text << ": " << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos)
        << c.file_text << " " << c.args << ": " << r.output;
  }
  const Result missing = run("--load /nonexistent/eplb.json --num-redundant-experts 0" + common);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("cannot open"), std::string::npos) << missing.output;
  const Result groups = run("--load " + write_file("eplb_g.json", R"({"load": [[1, 2, 3, 4]]})") +
                            " --num-redundant-experts 0 --num-groups 3 --num-nodes 1 "
                            "--num-ranks 2");
  EXPECT_EQ(groups.status, 1);
  EXPECT_NE(groups.output.find("--num-groups must divide"), std::string::npos) << groups.output;
  const Result policy = run("--load " + write_file("eplb_p.json", R"({"load": [[1, 2]]})") +
                            " --num-redundant-experts 0 --policy nope" + common);
  EXPECT_EQ(policy.status, 1);
  EXPECT_NE(policy.output.find("unknown policy 'nope'"), std::string::npos) << policy.output;
}

}  // namespace
