// `moeserve eplb plan --load LOAD.json --num-redundant-experts R --num-groups G --num-nodes N
//  --num-ranks M [--policy hierarchical|global|balanced] [--json]`
//
// LOAD.json is {"load": [[tokens per logical expert] per MoE layer]} (what the server's
// /eplb/load endpoint reports). Prints the placement: physical slots are rank-major, rank r
// holds slots [r·S, (r+1)·S) with S = (E + R) / M.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "moe/eplb_placement.h"
#include "net/json_intake.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

StatusOr<std::vector<std::vector<double>>> read_load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrFormat("%s: cannot open the file", path));
  std::ostringstream text;
  text << in.rdbuf();
  net::JsonLimits limits;
  limits.max_bytes = std::size_t{1} << 30;
  limits.max_values = std::size_t{1} << 26;
  StatusOr<nlohmann::json> doc = net::parse_json(text.str(), limits);
  if (!doc.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s", path, std::string(doc.status().message())));
  }
  const nlohmann::json* load =
      doc->is_object() && doc->contains("load") ? &(*doc)["load"] : nullptr;
  if (!load || !load->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected {\"load\": [[tokens per logical expert] per layer]}", path));
  }
  std::vector<std::vector<double>> out;
  for (size_t l = 0; l < load->size(); ++l) {
    const nlohmann::json& row = (*load)[l];
    if (!row.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: load[%d] is not an array of token counts", path, l));
    }
    std::vector<double>& w = out.emplace_back();
    for (size_t e = 0; e < row.size(); ++e) {
      if (!row[e].is_number()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: load[%d][%d] is not a number", path, l, e));
      }
      w.push_back(row[e].get<double>());
    }
  }
  return out;
}

nlohmann::json plan_json(const eplb::Plan& plan) {
  nlohmann::json p2l = nlohmann::json::array(), counts = nlohmann::json::array();
  for (const eplb::LayerPlacement& l : plan.layers) {
    p2l.push_back(l.physical_to_logical);
    counts.push_back(l.replica_count);
  }
  return {{"physical_to_logical", std::move(p2l)},
          {"logical_to_physical", plan.logical_to_physical()},
          {"logical_replica_count", std::move(counts)},
          {"imbalance", plan.imbalance}};
}

int plan_main(int argc, char** argv) {
  CLI::App app{"Place logical experts and their replicas on expert-parallel ranks",
               "moeserve eplb plan"};
  std::string load_path, policy_name = "balanced";
  int64_t redundant = 0;
  int groups = 1, nodes = 1, ranks = 1;
  bool json = false;
  app.add_option("--load", load_path, "LOAD.json: {\"load\": [[tokens per expert] per layer]}")
      ->required();
  app.add_option("--num-redundant-experts", redundant, "R: extra physical slots")->required();
  app.add_option("--num-groups", groups, "G: expert groups (n_group)")->required();
  app.add_option("--num-nodes", nodes, "N: nodes")->required();
  app.add_option("--num-ranks", ranks, "M: expert-parallel ranks")->required();
  app.add_option("--policy", policy_name, "hierarchical | global | balanced (default)");
  app.add_flag("--json", json, "print the placement as JSON");
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const Status& st) {
    std::fprintf(stderr, "moeserve eplb plan: %s\n", std::string(st.message()).c_str());
    return 1;
  };
  StatusOr<eplb::Policy> policy = eplb::parse_policy(policy_name);
  if (!policy.ok()) return fail(policy.status());
  StatusOr<std::vector<std::vector<double>>> load = read_load(load_path);
  if (!load.ok()) return fail(load.status());
  eplb::PlacementShape shape;
  shape.num_logical_experts = load->empty() ? 0 : static_cast<int64_t>((*load)[0].size());
  shape.num_physical_experts = shape.num_logical_experts + redundant;
  shape.num_groups = groups;
  shape.num_nodes = nodes;
  shape.num_ranks = ranks;
  StatusOr<eplb::Plan> plan = eplb::plan_placement(*load, shape, *policy);
  if (!plan.ok()) return fail(plan.status());

  if (json) {
    std::printf("%s\n", plan_json(*plan).dump().c_str());
    return 0;
  }
  const int64_t slots = shape.slots_per_rank();
  std::printf(
      "policy %s: %ld experts + %ld redundant on %d ranks (%ld slots each), %d nodes, "
      "%d groups\n",
      eplb::policy_name(*policy), static_cast<long>(shape.num_logical_experts),
      static_cast<long>(redundant), ranks, static_cast<long>(slots), nodes, groups);
  for (size_t l = 0; l < plan->layers.size(); ++l) {
    std::printf("layer %zu: imbalance %.4f", l, plan->imbalance[l]);
    if (shape.node_local() && nodes > 1) {
      std::printf(", groups split over nodes %d", eplb::num_split_groups(plan->layers[l], shape));
    }
    std::printf("\n");
    for (int r = 0; r < ranks; ++r) {
      std::printf("  rank %d:", r);
      for (int64_t s = r * slots; s < (r + 1) * slots; ++s) {
        std::printf(" %d", plan->layers[l].physical_to_logical[s]);
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace

int eplb_main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "plan") return plan_main(argc - 1, argv + 1);
  std::fprintf(stderr,
               "usage: moeserve eplb plan --load LOAD.json --num-redundant-experts R "
               "--num-groups G --num-nodes N --num-ranks M [--policy "
               "hierarchical|global|balanced] [--json]\n");
  return argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") ? 0 : 2;
}

}  // namespace moeserve
