#include "moe/eplb_placement.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moeserve::eplb {

Status PlacementShape::validate() const {
  if (num_logical_experts < 1) {
    return absl::InvalidArgumentError("eplb: the load has no experts (each layer needs >= 1)");
  }
  if (num_groups < 1 || num_nodes < 1 || num_ranks < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eplb: --num-groups (%d), --num-nodes (%d) and --num-ranks (%d) must all be >= 1",
        num_groups, num_nodes, num_ranks));
  }
  if (num_physical_experts < num_logical_experts) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eplb: --num-redundant-experts must be >= 0 (got %d physical slots for %d experts)",
        num_physical_experts, num_logical_experts));
  }
  // Groups matter only where they can be kept on nodes (eplb.py never looks at them otherwise).
  if (node_local() && num_logical_experts % num_groups != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eplb: %d experts cannot be split into %d equal groups; --num-groups must divide the "
        "number of experts",
        num_logical_experts, num_groups));
  }
  if (num_ranks % num_nodes != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eplb: %d ranks cannot be split evenly over %d nodes; --num-nodes must divide "
        "--num-ranks",
        num_ranks, num_nodes));
  }
  if (num_physical_experts % num_ranks != 0) {
    const int64_t r = num_physical_experts - num_logical_experts;
    const int64_t next = (num_physical_experts + num_ranks - 1) / num_ranks * num_ranks;
    return absl::InvalidArgumentError(absl::StrFormat(
        "eplb: %d experts + %d redundant = %d physical slots cannot be split evenly over %d "
        "ranks; choose --num-redundant-experts so that experts + redundant is a multiple of "
        "--num-ranks (e.g. %d)",
        num_logical_experts, r, num_physical_experts, num_ranks, next - num_logical_experts));
  }
  return absl::OkStatus();
}

StatusOr<Policy> parse_policy(std::string_view name) {
  if (name == "hierarchical") return Policy::kHierarchical;
  if (name == "global") return Policy::kGlobal;
  if (name == "balanced") return Policy::kBalanced;
  return absl::InvalidArgumentError(
      absl::StrFormat("eplb: unknown policy '%s' (hierarchical | global | balanced)", name));
}

const char* policy_name(Policy policy) {
  switch (policy) {
    case Policy::kHierarchical:
      return "hierarchical";
    case Policy::kGlobal:
      return "global";
    case Policy::kBalanced:
      return "balanced";
  }
  return "?";
}

Packing balanced_packing(std::span<const double> weight, int num_packs) {
  const int64_t n = static_cast<int64_t>(weight.size());
  MS_CHECK(num_packs >= 1 && n % num_packs == 0);
  const int64_t per_pack = n / num_packs;
  Packing out;
  out.pack.assign(n, -1);
  out.rank_in_pack.assign(n, -1);
  if (per_pack == 1) {  // eplb.py's shortcut: item i alone in pack i
    std::iota(out.pack.begin(), out.pack.end(), 0);
    std::fill(out.rank_in_pack.begin(), out.rank_in_pack.end(), 0);
    return out;
  }
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return weight[a] > weight[b]; });
  std::vector<double> pack_weight(num_packs, 0.0);
  std::vector<int32_t> pack_items(num_packs, 0);
  for (int32_t item : order) {
    int best = -1;
    for (int p = 0; p < num_packs; ++p) {
      if (pack_items[p] >= per_pack) continue;
      if (best < 0 || pack_weight[p] < pack_weight[best]) best = p;
    }
    out.pack[item] = best;
    out.rank_in_pack[item] = pack_items[best]++;
    pack_weight[best] += weight[item];
  }
  return out;
}

LayerPlacement replicate_experts(std::span<const double> weight, int64_t num_physical) {
  const int64_t num_logical = static_cast<int64_t>(weight.size());
  MS_CHECK(num_physical >= num_logical);
  LayerPlacement out;
  out.physical_to_logical.resize(num_physical);
  out.replica_index.assign(num_physical, 0);
  out.replica_count.assign(num_logical, 1);
  std::iota(out.physical_to_logical.begin(), out.physical_to_logical.begin() + num_logical, 0);
  for (int64_t slot = num_logical; slot < num_physical; ++slot) {
    int32_t best = 0;
    double best_load = weight[0] / out.replica_count[0];
    for (int32_t e = 1; e < num_logical; ++e) {
      const double per_replica = weight[e] / out.replica_count[e];
      if (per_replica > best_load) {
        best = e;
        best_load = per_replica;
      }
    }
    out.physical_to_logical[slot] = best;
    out.replica_index[slot] = out.replica_count[best]++;
  }
  return out;
}

namespace {

std::vector<int32_t> inverse(const std::vector<int32_t>& perm) {
  std::vector<int32_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int32_t>(i);
  return inv;
}

}  // namespace

LayerPlacement rebalance_hierarchical(std::span<const double> weight, const PlacementShape& shape) {
  MS_CHECK(shape.num_groups % shape.num_nodes == 0);
  const int64_t group_size = shape.num_logical_experts / shape.num_groups;
  std::vector<double> group_load(shape.num_groups, 0.0);
  for (int64_t e = 0; e < shape.num_logical_experts; ++e) group_load[e / group_size] += weight[e];
  return rebalance_hierarchical_with(weight, shape, balanced_packing(group_load, shape.num_nodes));
}

LayerPlacement rebalance_hierarchical_with(std::span<const double> weight,
                                           const PlacementShape& shape, const Packing& groups) {
  const int64_t num_logical = shape.num_logical_experts;
  const int num_groups = shape.num_groups;
  const int num_nodes = shape.num_nodes;
  MS_CHECK(static_cast<int64_t>(weight.size()) == num_logical && num_groups % num_nodes == 0);
  const int64_t group_size = num_logical / num_groups;
  const int64_t groups_per_node = num_groups / num_nodes;
  const int ranks_per_node = shape.num_ranks / num_nodes;
  const int64_t slots_per_rank = shape.slots_per_rank();
  const int64_t logical_per_node = num_logical / num_nodes;
  const int64_t physical_per_node = shape.num_physical_experts / num_nodes;

  // 1. (done by the caller) groups onto nodes. "Node-major" logical ids (mlog) number the
  // experts node by node, in the order their groups were packed.
  std::vector<int32_t> log_to_mlog(num_logical);
  for (int64_t e = 0; e < num_logical; ++e) {
    const int64_t g = e / group_size;
    log_to_mlog[e] = static_cast<int32_t>(
        (groups.pack[g] * groups_per_node + groups.rank_in_pack[g]) * group_size + e % group_size);
  }
  const std::vector<int32_t> mlog_to_log = inverse(log_to_mlog);

  LayerPlacement out;
  out.physical_to_logical.resize(shape.num_physical_experts);
  out.replica_index.resize(shape.num_physical_experts);
  out.replica_count.resize(num_logical);
  std::vector<double> node_weight(logical_per_node);
  std::vector<double> slot_weight(physical_per_node);
  for (int node = 0; node < num_nodes; ++node) {
    // 2. Replicate within the node.
    for (int64_t i = 0; i < logical_per_node; ++i) {
      node_weight[i] = weight[mlog_to_log[node * logical_per_node + i]];
    }
    const LayerPlacement rep = replicate_experts(node_weight, physical_per_node);
    for (int64_t i = 0; i < logical_per_node; ++i) {
      out.replica_count[mlog_to_log[node * logical_per_node + i]] = rep.replica_count[i];
    }
    // 3. The node's physical experts onto its ranks.
    for (int64_t j = 0; j < physical_per_node; ++j) {
      const int32_t m = rep.physical_to_logical[j];
      slot_weight[j] = node_weight[m] / rep.replica_count[m];
    }
    const Packing ranks = balanced_packing(slot_weight, ranks_per_node);
    for (int64_t j = 0; j < physical_per_node; ++j) {
      const int64_t slot =
          node * physical_per_node + ranks.pack[j] * slots_per_rank + ranks.rank_in_pack[j];
      out.physical_to_logical[slot] =
          mlog_to_log[node * logical_per_node + rep.physical_to_logical[j]];
      out.replica_index[slot] = rep.replica_index[j];
    }
  }
  return out;
}

LayerPlacement place_layer(std::span<const double> weight, const PlacementShape& shape,
                           Policy policy) {
  PlacementShape global = shape;
  global.num_groups = 1;
  global.num_nodes = 1;
  switch (policy) {
    case Policy::kHierarchical:
      return rebalance_hierarchical(weight, shape.node_local() ? shape : global);
    case Policy::kGlobal:
      return rebalance_hierarchical(weight, global);
    case Policy::kBalanced:
      return rebalance_balanced(weight, shape);
  }
  MS_CHECK(false);
  return {};
}

std::vector<double> rank_loads(std::span<const double> weight, const LayerPlacement& placement,
                               int num_ranks) {
  const int64_t num_slots = static_cast<int64_t>(placement.physical_to_logical.size());
  const int64_t slots_per_rank = num_slots / num_ranks;
  std::vector<double> loads(num_ranks, 0.0);
  for (int64_t slot = 0; slot < num_slots; ++slot) {
    const int32_t e = placement.physical_to_logical[slot];
    loads[slot / slots_per_rank] += weight[e] / placement.replica_count[e];
  }
  return loads;
}

double imbalance(std::span<const double> weight, const LayerPlacement& placement, int num_ranks) {
  const std::vector<double> loads = rank_loads(weight, placement, num_ranks);
  const double total = std::accumulate(loads.begin(), loads.end(), 0.0);
  if (!(total > 0)) return 1.0;
  return *std::max_element(loads.begin(), loads.end()) / (total / num_ranks);
}

int num_split_groups(const LayerPlacement& placement, const PlacementShape& shape) {
  const int64_t group_size = shape.num_logical_experts / shape.num_groups;
  const int64_t slots_per_node = shape.num_physical_experts / shape.num_nodes;
  std::vector<int> node_of_group(shape.num_groups, -1);
  std::vector<bool> split(shape.num_groups, false);
  for (size_t slot = 0; slot < placement.physical_to_logical.size(); ++slot) {
    const int64_t g = placement.physical_to_logical[slot] / group_size;
    const int node = static_cast<int>(static_cast<int64_t>(slot) / slots_per_node);
    if (node_of_group[g] < 0) node_of_group[g] = node;
    if (node_of_group[g] != node) split[g] = true;
  }
  return static_cast<int>(std::count(split.begin(), split.end(), true));
}

double remote_load_fraction(std::span<const double> weight, const LayerPlacement& placement,
                            const PlacementShape& shape) {
  const int64_t group_size = shape.num_logical_experts / shape.num_groups;
  const int64_t slots_per_node = shape.num_physical_experts / shape.num_nodes;
  // [G][N] load each node serves for each group.
  std::vector<double> served(static_cast<size_t>(shape.num_groups) * shape.num_nodes, 0.0);
  double total = 0;
  for (size_t slot = 0; slot < placement.physical_to_logical.size(); ++slot) {
    const int32_t e = placement.physical_to_logical[slot];
    const double load = weight[e] / placement.replica_count[e];
    served[(e / group_size) * shape.num_nodes + static_cast<int64_t>(slot) / slots_per_node] +=
        load;
    total += load;
  }
  if (!(total > 0)) return 0.0;
  double remote = 0;
  for (int g = 0; g < shape.num_groups; ++g) {
    const double* row = served.data() + static_cast<size_t>(g) * shape.num_nodes;
    double sum = 0, most = 0;
    for (int n = 0; n < shape.num_nodes; ++n) {
      sum += row[n];
      most = std::max(most, row[n]);
    }
    remote += sum - most;
  }
  return remote / total;
}

std::vector<std::vector<std::vector<int32_t>>> Plan::logical_to_physical() const {
  int32_t width = 1;
  for (const LayerPlacement& l : layers) {
    for (int32_t c : l.replica_count) width = std::max(width, c);
  }
  std::vector<std::vector<std::vector<int32_t>>> out(layers.size());
  for (size_t li = 0; li < layers.size(); ++li) {
    const LayerPlacement& l = layers[li];
    out[li].assign(l.replica_count.size(), std::vector<int32_t>(width, -1));
    for (size_t slot = 0; slot < l.physical_to_logical.size(); ++slot) {
      out[li][l.physical_to_logical[slot]][l.replica_index[slot]] = static_cast<int32_t>(slot);
    }
  }
  return out;
}

StatusOr<Plan> plan_placement(const std::vector<std::vector<double>>& load,
                              const PlacementShape& shape, Policy policy) {
  if (load.empty()) {
    return absl::InvalidArgumentError(
        "eplb: the load has no layers (need [[tokens per expert] "
        "per layer])");
  }
  for (size_t l = 0; l < load.size(); ++l) {
    if (static_cast<int64_t>(load[l].size()) != shape.num_logical_experts) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "eplb: layer %d of the load has %d experts, layer 0 has %d; every layer needs one "
          "value per logical expert",
          l, load[l].size(), shape.num_logical_experts));
    }
    for (size_t e = 0; e < load[l].size(); ++e) {
      if (!std::isfinite(load[l][e]) || load[l][e] < 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "eplb: load[%d][%d] is %g; token counts must be finite and >= 0", l, e, load[l][e]));
      }
    }
  }
  MS_RETURN_IF_ERROR(shape.validate());
  Plan plan;
  plan.layers.reserve(load.size());
  for (const std::vector<double>& w : load) {
    plan.layers.push_back(place_layer(w, shape, policy));
    plan.imbalance.push_back(imbalance(w, plan.layers.back(), shape.num_ranks));
  }
  return plan;
}

}  // namespace moeserve::eplb
