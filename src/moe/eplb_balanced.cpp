// The "balanced" EPLB policy (see eplb_placement.h): node locality where it is (nearly) free,
// the global policy's balance where it is not.
//
// Why the hierarchical policy loses balance: a node's load is the sum of its groups' loads
// (every replica of a group's experts stays on the node), so the node-level packing of whole
// groups bounds the rank imbalance from below. Under a Zipf-skewed load one group can carry more
// than 1/N of the tokens and no group packing can fix that; only putting some of its replicas
// on another node can. The candidates below cover both regimes; the selection keeps locality
// unless it costs more than 0.01 of imbalance.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "moe/eplb_placement.h"

namespace moeserve::eplb {
namespace {

// A placement being refined: the expert and the load of every slot, the load of every rank.
struct Layout {
  int num_ranks = 1;
  int64_t slots_per_rank = 1;
  int ranks_per_node = 1;
  std::vector<int32_t> replica_count;  // [E]
  std::vector<int32_t> expert;         // [P], rank-major
  std::vector<double> load;            // [P]
  std::vector<double> rank_load;       // [M]

  int node_of_rank(int r) const { return r / ranks_per_node; }
  int rank_of_slot(int64_t slot) const { return static_cast<int>(slot / slots_per_rank); }
};

Layout make_layout(const PlacementShape& shape, std::vector<int32_t> replica_count) {
  Layout l;
  l.num_ranks = shape.num_ranks;
  l.slots_per_rank = shape.slots_per_rank();
  l.ranks_per_node = shape.num_ranks / shape.num_nodes;
  l.replica_count = std::move(replica_count);
  l.expert.assign(shape.num_physical_experts, -1);
  l.load.assign(shape.num_physical_experts, 0.0);
  l.rank_load.assign(shape.num_ranks, 0.0);
  return l;
}

void put(Layout& l, std::span<const double> weight, int64_t slot, int32_t e) {
  l.expert[slot] = e;
  l.load[slot] = weight[e] / l.replica_count[e];
  l.rank_load[l.rank_of_slot(slot)] += l.load[slot];
}

Layout layout_of(std::span<const double> weight, const PlacementShape& shape,
                 const LayerPlacement& p) {
  Layout l = make_layout(shape, p.replica_count);
  for (size_t slot = 0; slot < p.physical_to_logical.size(); ++slot) {
    put(l, weight, static_cast<int64_t>(slot), p.physical_to_logical[slot]);
  }
  return l;
}

LayerPlacement placement_of(const Layout& l) {
  LayerPlacement p;
  p.physical_to_logical = l.expert;
  p.replica_count = l.replica_count;
  p.replica_index.resize(l.expert.size());
  std::vector<int32_t> seen(l.replica_count.size(), 0);
  for (size_t slot = 0; slot < l.expert.size(); ++slot) {
    p.replica_index[slot] = seen[l.expert[slot]]++;
  }
  return p;
}

// Local-swap refinement: while some slot of the most loaded rank can trade places with a
// lighter slot of another rank so that both end below that rank's load, make the trade that
// (first) moves the fewest replicas off their home node and (then) leaves the lowest maximum.
// `home` is [E] (a node per expert) or empty (no preference). `same_node_only` restricts trades
// to ranks of one node (the placement then stays exactly as node-local as it was).
// Every trade lowers the sorted vector of rank loads lexicographically, so this terminates;
// the cap only bounds the work.
void refine_swaps(Layout& l, std::span<const int32_t> home, bool same_node_only) {
  const double total = std::accumulate(l.rank_load.begin(), l.rank_load.end(), 0.0);
  if (!(total > 0)) return;
  const double eps = total * 1e-12;
  const int64_t max_trades = 8 * static_cast<int64_t>(l.expert.size()) + 64;
  auto off_home = [&](int32_t e, int rank) {
    return !home.empty() && home[e] >= 0 && home[e] != l.node_of_rank(rank) ? 1 : 0;
  };
  for (int64_t trade = 0; trade < max_trades; ++trade) {
    const int r = static_cast<int>(std::max_element(l.rank_load.begin(), l.rank_load.end()) -
                                   l.rank_load.begin());
    const double top = l.rank_load[r];
    int64_t best_i = -1, best_j = -1;
    int best_moved = std::numeric_limits<int>::max();
    double best_max = top - eps;
    for (int64_t i = r * l.slots_per_rank; i < (r + 1) * l.slots_per_rank; ++i) {
      for (int q = 0; q < l.num_ranks; ++q) {
        if (q == r || (same_node_only && l.node_of_rank(q) != l.node_of_rank(r))) continue;
        for (int64_t j = q * l.slots_per_rank; j < (q + 1) * l.slots_per_rank; ++j) {
          const double d = l.load[i] - l.load[j];
          if (d <= eps) continue;
          const double new_max = std::max(top - d, l.rank_load[q] + d);
          if (new_max >= top - eps) continue;
          const int moved = off_home(l.expert[i], q) + off_home(l.expert[j], r) -
                            off_home(l.expert[i], r) - off_home(l.expert[j], q);
          if (moved < best_moved || (moved == best_moved && new_max < best_max)) {
            best_moved = moved;
            best_max = new_max;
            best_i = i;
            best_j = j;
          }
        }
      }
    }
    if (best_i < 0) return;
    const int q = l.rank_of_slot(best_j);
    const double d = l.load[best_i] - l.load[best_j];
    std::swap(l.expert[best_i], l.expert[best_j]);
    std::swap(l.load[best_i], l.load[best_j]);
    l.rank_load[r] -= d;
    l.rank_load[q] += d;
  }
}

// Brings replicas home without raising the maximum rank load: trades two slots on different
// nodes when each holds an expert whose home is the other's node and neither rank ends above
// the current maximum.
void bring_home(Layout& l, std::span<const int32_t> home) {
  const int64_t num_slots = static_cast<int64_t>(l.expert.size());
  for (int pass = 0; pass < 4; ++pass) {
    const double top = *std::max_element(l.rank_load.begin(), l.rank_load.end());
    bool traded = false;
    for (int64_t i = 0; i < num_slots; ++i) {
      const int ri = l.rank_of_slot(i), ni = l.node_of_rank(ri);
      if (home[l.expert[i]] == ni) continue;
      for (int64_t j = i + 1; j < num_slots; ++j) {
        const int rj = l.rank_of_slot(j), nj = l.node_of_rank(rj);
        if (home[l.expert[i]] != nj || home[l.expert[j]] != ni) continue;
        const double d = l.load[i] - l.load[j];
        if (l.rank_load[ri] - d > top || l.rank_load[rj] + d > top) continue;
        std::swap(l.expert[i], l.expert[j]);
        std::swap(l.load[i], l.load[j]);
        l.rank_load[ri] -= d;
        l.rank_load[rj] += d;
        traded = true;
        break;
      }
    }
    if (!traded) return;
  }
}

// Refines a packing of groups onto nodes (equal counts) by pairwise swaps that lower the
// heaviest node's load.
Packing refine_group_packing(std::span<const double> group_load, int num_nodes, Packing p) {
  const int num_groups = static_cast<int>(group_load.size());
  std::vector<double> node_load(num_nodes, 0.0);
  double total = 0;
  for (int g = 0; g < num_groups; ++g) {
    node_load[p.pack[g]] += group_load[g];
    total += group_load[g];
  }
  if (!(total > 0) || num_nodes == 1) return p;
  const double eps = total * 1e-12;
  for (int trade = 0; trade < 8 * num_groups + 64; ++trade) {
    const int a =
        static_cast<int>(std::max_element(node_load.begin(), node_load.end()) - node_load.begin());
    const double top = node_load[a];
    int best_g = -1, best_h = -1;
    double best_max = top - eps;
    for (int g = 0; g < num_groups; ++g) {
      if (p.pack[g] != a) continue;
      for (int h = 0; h < num_groups; ++h) {
        if (p.pack[h] == a) continue;
        const double d = group_load[g] - group_load[h];
        if (d <= eps) continue;
        const double new_max = std::max(top - d, node_load[p.pack[h]] + d);
        if (new_max < best_max) {
          best_max = new_max;
          best_g = g;
          best_h = h;
        }
      }
    }
    if (best_g < 0) break;
    const int b = p.pack[best_h];
    const double d = group_load[best_g] - group_load[best_h];
    std::swap(p.pack[best_g], p.pack[best_h]);
    std::swap(p.rank_in_pack[best_g], p.rank_in_pack[best_h]);
    node_load[a] -= d;
    node_load[b] += d;
  }
  return p;
}

// Global replica counts (the highest load per replica is as low as P slots allow), packed
// heaviest replica first. A replica goes to the lightest free rank of its home node unless
// that would leave the rank above both `slack`·(ideal rank load) and what the lightest free
// rank anywhere would reach; then (or when its node is full) it spills to that rank.
Layout pack_with_home_preference(std::span<const double> weight, const PlacementShape& shape,
                                 std::span<const int32_t> home, double slack) {
  const LayerPlacement counts = replicate_experts(weight, shape.num_physical_experts);
  Layout l = make_layout(shape, counts.replica_count);
  struct Item {
    int32_t expert;
    double load;
  };
  std::vector<Item> items;
  items.reserve(shape.num_physical_experts);
  double total = 0, heaviest = 0;
  for (int32_t e = 0; e < static_cast<int32_t>(weight.size()); ++e) {
    total += weight[e];
    const double per = weight[e] / l.replica_count[e];
    heaviest = std::max(heaviest, per);
    for (int32_t k = 0; k < l.replica_count[e]; ++k) items.push_back({e, per});
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.load > b.load; });
  const double bound = std::max(total / shape.num_ranks, heaviest) * slack;
  std::vector<int64_t> used(shape.num_ranks, 0);
  auto lightest = [&](int first, int last) {
    int best = -1;
    for (int r = first; r < last; ++r) {
      if (used[r] < l.slots_per_rank && (best < 0 || l.rank_load[r] < l.rank_load[best])) best = r;
    }
    return best;
  };
  for (const Item& it : items) {
    const int node = home[it.expert];
    const int rh = lightest(node * l.ranks_per_node, (node + 1) * l.ranks_per_node);
    const int rg = lightest(0, shape.num_ranks);
    int r = rg;
    if (rh >= 0 && l.rank_load[rh] + it.load <= std::max(l.rank_load[rg] + it.load, bound)) {
      r = rh;
    }
    put(l, weight, r * l.slots_per_rank + used[r]++, it.expert);
  }
  return l;
}

// Node first: decide how many replicas of each expert each node serves, then pack each node's
// replicas onto its ranks. Starts with every replica (global counts) on its expert's home node;
// moves replicas out of nodes with more than P / N of them (the cheapest to move, or, from an
// overloaded node, the one that best evens the two nodes), then trades replicas between the
// heaviest node and the others, choosing the trade that brings the least load away from home
// per unit of load taken off the heaviest node.
Layout place_node_first(std::span<const double> weight, const PlacementShape& shape,
                        std::span<const int32_t> home) {
  const LayerPlacement counts = replicate_experts(weight, shape.num_physical_experts);
  Layout l = make_layout(shape, counts.replica_count);
  const int num_nodes = shape.num_nodes;
  const int64_t per_node = shape.num_physical_experts / num_nodes;
  std::vector<double> u(weight.size());
  double total = 0;
  for (size_t e = 0; e < weight.size(); ++e) {
    u[e] = weight[e] / l.replica_count[e];
    total += weight[e];
  }
  std::vector<std::vector<int32_t>> on(num_nodes);  // one entry per replica
  std::vector<double> node_load(num_nodes, 0.0);
  for (size_t e = 0; e < weight.size(); ++e) {
    for (int32_t k = 0; k < l.replica_count[e]; ++k) on[home[e]].push_back(static_cast<int32_t>(e));
    node_load[home[e]] += weight[e];
  }
  const double target = total / num_nodes;
  const double eps = total * 1e-12;
  auto remote_cost = [&](int32_t e, int from, int to) {
    return (home[e] == from ? u[e] : 0.0) - (home[e] == to ? u[e] : 0.0);
  };
  // 1. Slot counts.
  while (true) {
    int a = -1, b = -1;
    for (int n = 0; n < num_nodes; ++n) {
      const int64_t d = static_cast<int64_t>(on[n].size());
      if (d > per_node && (a < 0 || node_load[n] > node_load[a])) a = n;
      if (d < per_node && (b < 0 || node_load[n] < node_load[b])) b = n;
    }
    if (a < 0 || b < 0) break;
    size_t pick = 0;
    for (size_t i = 1; i < on[a].size(); ++i) {
      const double ui = u[on[a][i]], up = u[on[a][pick]];
      if (node_load[a] > target) {
        const double mi = std::max(node_load[a] - ui, node_load[b] + ui);
        const double mp = std::max(node_load[a] - up, node_load[b] + up);
        if (mi < mp - eps || (mi <= mp + eps && ui < up)) pick = i;
      } else if (ui < up) {
        pick = i;
      }
    }
    const int32_t e = on[a][pick];
    on[a].erase(on[a].begin() + static_cast<std::ptrdiff_t>(pick));
    on[b].push_back(e);
    node_load[a] -= u[e];
    node_load[b] += u[e];
  }
  // 2. Loads.
  for (int trade = 0; trade < 64 * num_nodes + 64; ++trade) {
    const int a =
        static_cast<int>(std::max_element(node_load.begin(), node_load.end()) - node_load.begin());
    const double top = node_load[a];
    if (top <= target + eps) break;
    int best_b = -1;
    size_t best_i = 0, best_j = 0;
    double best_cost = std::numeric_limits<double>::infinity();
    for (int b = 0; b < num_nodes; ++b) {
      if (b == a) continue;
      for (size_t i = 0; i < on[a].size(); ++i) {
        for (size_t j = 0; j < on[b].size(); ++j) {
          const int32_t ei = on[a][i], ej = on[b][j];
          const double d = u[ei] - u[ej];
          if (d <= eps) continue;
          const double gain = top - std::max(top - d, node_load[b] + d);
          if (gain <= eps) continue;
          const double cost = (remote_cost(ei, a, b) + remote_cost(ej, b, a)) / gain;
          if (cost < best_cost) {
            best_cost = cost;
            best_b = b;
            best_i = i;
            best_j = j;
          }
        }
      }
    }
    if (best_b < 0) break;
    const double d = u[on[a][best_i]] - u[on[best_b][best_j]];
    std::swap(on[a][best_i], on[best_b][best_j]);
    node_load[a] -= d;
    node_load[best_b] += d;
  }
  // 3. Ranks within each node.
  const int ranks_per_node = l.ranks_per_node;
  std::vector<double> loads;
  for (int n = 0; n < num_nodes; ++n) {
    loads.clear();
    for (int32_t e : on[n]) loads.push_back(u[e]);
    const Packing ranks = balanced_packing(loads, ranks_per_node);
    for (size_t i = 0; i < on[n].size(); ++i) {
      put(l, weight, n * per_node + ranks.pack[i] * l.slots_per_rank + ranks.rank_in_pack[i],
          on[n][i]);
    }
  }
  return l;
}

struct Candidate {
  LayerPlacement placement;
  double imbalance = 0;
  double remote = 0;  // remote_load_fraction
};

}  // namespace

LayerPlacement rebalance_balanced(std::span<const double> weight, const PlacementShape& shape) {
  PlacementShape global = shape;
  global.num_groups = 1;
  global.num_nodes = 1;
  std::vector<Candidate> candidates;
  auto add = [&](LayerPlacement p) {
    Candidate c;
    c.imbalance = imbalance(weight, p, shape.num_ranks);
    c.remote = shape.node_local() ? remote_load_fraction(weight, p, shape) : 0.0;
    c.placement = std::move(p);
    candidates.push_back(std::move(c));
  };
  // 0: DeepSeek's choice (hierarchical, or global when groups cannot stay on nodes): the bound
  // every result must meet.
  add(place_layer(weight, shape, Policy::kHierarchical));

  std::vector<int32_t> home;  // [E] home node of each expert, when locality applies
  if (shape.node_local() && shape.num_nodes > 1) {
    const int64_t group_size = shape.num_logical_experts / shape.num_groups;
    std::vector<double> group_load(shape.num_groups, 0.0);
    for (int64_t e = 0; e < shape.num_logical_experts; ++e) {
      group_load[e / group_size] += weight[e];
    }
    const Packing groups = refine_group_packing(group_load, shape.num_nodes,
                                                balanced_packing(group_load, shape.num_nodes));
    home.resize(shape.num_logical_experts);
    for (int64_t e = 0; e < shape.num_logical_experts; ++e) home[e] = groups.pack[e / group_size];

    // Node-local candidates: the hierarchical placement and one over the refined group
    // packing, each refined by swaps inside nodes.
    for (const LayerPlacement& start :
         {candidates[0].placement, rebalance_hierarchical_with(weight, shape, groups)}) {
      Layout l = layout_of(weight, shape, start);
      refine_swaps(l, {}, /*same_node_only=*/true);
      add(placement_of(l));
    }
    // Node first: the least load away from home that evens the nodes.
    {
      Layout l = place_node_first(weight, shape, home);
      refine_swaps(l, home, /*same_node_only=*/true);
      add(placement_of(l));
      refine_swaps(l, home, /*same_node_only=*/false);
      bring_home(l, home);
      add(placement_of(l));
    }
    // Spilling candidates, from "spill readily" to "spill only when the node is full".
    for (double slack : {1.0, 1.02, 1.05, 1.1, 1.25, std::numeric_limits<double>::infinity()}) {
      Layout l = pack_with_home_preference(weight, shape, home, slack);
      refine_swaps(l, home, /*same_node_only=*/false);
      bring_home(l, home);
      add(placement_of(l));
    }
  }
  // The global placement, refined (nudged towards home nodes when there are any).
  {
    Layout l = layout_of(weight, shape, rebalance_hierarchical(weight, global));
    refine_swaps(l, home, /*same_node_only=*/false);
    if (!home.empty()) bring_home(l, home);
    add(placement_of(l));
  }

  double best = candidates[0].imbalance;
  for (const Candidate& c : candidates) best = std::min(best, c.imbalance);
  // Locality may cost up to 0.01 of imbalance, but never lifts the result above 1.05 when the
  // best candidate is within it, nor above DeepSeek's choice.
  const double threshold =
      std::min(candidates[0].imbalance, std::max(best, std::min(best + 0.01, 1.05))) + 1e-12;
  const Candidate* chosen = nullptr;
  for (const Candidate& c : candidates) {
    if (c.imbalance > threshold) continue;
    if (!chosen || c.remote < chosen->remote ||
        (c.remote == chosen->remote && c.imbalance < chosen->imbalance)) {
      chosen = &c;
    }
  }
  MS_CHECK(chosen != nullptr);
  return chosen->placement;
}

}  // namespace moeserve::eplb
