// Expert-parallel load balancing (EPLB): where each logical expert's replicas live.
//
// Glossary: E logical experts, R redundant experts, P = E + R physical slots, M ranks,
// N nodes (M / N ranks each), G expert groups (E / G experts each, contiguous ids),
// S = P / M slots per rank. Physical slots are rank-major: rank r holds slots [r·S, (r+1)·S).
//
// Three policies, all plain functions of one layer's load vector:
//  - kHierarchical: DeepSeek's eplb.py `rebalance_experts`. When G % N == 0: pack expert groups
//    onto nodes (equal group counts), replicate within each node (P / N slots per node), pack the
//    node's physical experts onto its ranks. Otherwise it falls back to the global policy, as
//    eplb.py does. The port reproduces eplb.py's tie rules: stable descending sort, the first
//    argmax wins, the lightest pack with the lowest index wins.
//  - kGlobal: the same algorithm with one group and one node (no locality).
//  - kBalanced: ours. Keeps the hierarchical policy's node locality where it costs (almost) no
//    balance and reaches the global policy's balance where locality cannot: it builds several
//    candidates (the hierarchical placement, a hierarchical placement with refined group packing
//    and per-node swap refinement, global replica counts packed with a home-node preference that
//    spills only what its node cannot carry, the global placement with swap refinement; the
//    last two then trade slots across nodes to bring replicas home without raising the maximum)
//    and keeps the most node-local one (least remote_load_fraction) whose imbalance is within
//    0.01 of the best — never above 1.05 when the best is at most 1.05, never above the
//    hierarchical policy's.
//
// Imbalance of a placement = max rank load / mean rank load, where an expert's load is split
// evenly over its replicas (what the serve-time mapping does). 1.0 is perfect; a layer with no
// load at all has imbalance 1.0.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace moeserve::eplb {

struct PlacementShape {
  int64_t num_logical_experts = 0;   // E
  int64_t num_physical_experts = 0;  // P = E + R
  int num_groups = 1;                // G
  int num_nodes = 1;                 // N
  int num_ranks = 1;                 // M

  // Every policy needs: E, G, N, M >= 1; P >= E; P % M == 0; M % N == 0; and E % G == 0 when
  // G % N == 0. (G % N != 0 is allowed: groups cannot stay on nodes, every policy then places
  // globally, as eplb.py does.)
  Status validate() const;
  int64_t slots_per_rank() const { return num_physical_experts / num_ranks; }
  // True when groups can be kept whole on nodes (G % N == 0).
  bool node_local() const { return num_groups % num_nodes == 0; }
};

enum class Policy { kHierarchical, kGlobal, kBalanced };

// "hierarchical" | "global" | "balanced".
StatusOr<Policy> parse_policy(std::string_view name);
const char* policy_name(Policy policy);

// One layer's placement.
struct LayerPlacement {
  std::vector<int32_t> physical_to_logical;  // [P], rank-major
  std::vector<int32_t> replica_index;        // [P], which replica (0..count-1) of its expert
  std::vector<int32_t> replica_count;        // [E], >= 1
};

// ---- DeepSeek's building blocks (exposed for tests) ----

struct Packing {
  std::vector<int32_t> pack;          // [n] pack of each item
  std::vector<int32_t> rank_in_pack;  // [n] position of the item inside its pack
};
// Greedy packing of n weighted items into `num_packs` packs of exactly n / num_packs items
// each: heaviest first, into the lightest pack that is not full. n % num_packs == 0.
Packing balanced_packing(std::span<const double> weight, int num_packs);

// Replicates experts into `num_physical` >= E slots: slots [0, E) hold experts 0..E-1, each
// further slot goes to the expert with the highest load per replica.
LayerPlacement replicate_experts(std::span<const double> weight, int64_t num_physical);

// DeepSeek's hierarchical policy (requires G % N == 0; `shape` validated).
LayerPlacement rebalance_hierarchical(std::span<const double> weight, const PlacementShape& shape);
// Its steps 2 and 3 (replicate within each node, pack onto the node's ranks) for a given
// packing of the G groups onto the N nodes (equal group counts).
LayerPlacement rebalance_hierarchical_with(std::span<const double> weight,
                                           const PlacementShape& shape,
                                           const Packing& groups_to_nodes);

// Ours (eplb_balanced.cpp); `shape` validated.
LayerPlacement rebalance_balanced(std::span<const double> weight, const PlacementShape& shape);

// ---- Policies ----

// One layer. `weight` is [E], finite and >= 0; `shape` validated.
LayerPlacement place_layer(std::span<const double> weight, const PlacementShape& shape,
                           Policy policy);

// Max rank load / mean rank load (see above). `placement` must match `weight` and `num_ranks`.
double imbalance(std::span<const double> weight, const LayerPlacement& placement, int num_ranks);
// Per-rank load of `placement` ([M]).
std::vector<double> rank_loads(std::span<const double> weight, const LayerPlacement& placement,
                               int num_ranks);
// Groups whose physical slots lie on more than one node (0 for a node-local placement).
int num_split_groups(const LayerPlacement& placement, const PlacementShape& shape);
// Share of the load served away from its group's node (the node holding most of the group's
// load): the tokens that cross nodes beyond what group-limited routing needs. 0 for a
// node-local placement.
double remote_load_fraction(std::span<const double> weight, const LayerPlacement& placement,
                            const PlacementShape& shape);

// A whole model's plan.
struct Plan {
  std::vector<LayerPlacement> layers;
  std::vector<double> imbalance;  // [L]
  // [L][E][max replica count over all layers]: the physical slots of each expert in replica
  // order, padded with -1.
  std::vector<std::vector<std::vector<int32_t>>> logical_to_physical() const;
};

// Checks `load` ([L][E], every row E long, values finite and >= 0) and `shape`, then places
// every layer.
StatusOr<Plan> plan_placement(const std::vector<std::vector<double>>& load,
                              const PlacementShape& shape, Policy policy);

}  // namespace moeserve::eplb
