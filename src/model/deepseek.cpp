#include "model/deepseek.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "core/parallel.h"
#include "kernels/ops.h"
#include "model/weight_loader.h"

namespace moeserve {
namespace {

GateParams gate_params(const ModelConfig& c) {
  GateParams g;
  g.num_experts = c.n_routed_experts;
  g.top_k = c.num_experts_per_tok;
  g.num_groups = c.n_group;
  g.topk_groups = c.topk_group;
  g.scoring =
      c.scoring_func == ScoringFunc::kSigmoid ? GateScoring::kSigmoid : GateScoring::kSoftmax;
  switch (c.topk_method) {
    case TopkMethod::kGreedy:
      g.method = GateTopk::kGreedy;
      break;
    case TopkMethod::kGroupLimitedGreedy:
      g.method = GateTopk::kGroupLimitedGreedy;
      break;
    case TopkMethod::kNoauxTc:
      g.method = GateTopk::kNoauxTc;
      break;
  }
  g.renormalize = c.norm_topk_prob;
  g.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  return g;
}

RopeParams rope_params(const ModelConfig& c) {
  RopeParams r;
  r.rotary_dim = c.qk_rope_head_dim;
  r.theta = c.rope_theta;
  r.yarn = c.rope_scaling.yarn;
  r.factor = c.rope_scaling.factor;
  r.original_max_position = c.rope_scaling.original_max_position_embeddings;
  r.beta_fast = c.rope_scaling.beta_fast;
  r.beta_slow = c.rope_scaling.beta_slow;
  r.mscale = c.rope_scaling.mscale;
  r.mscale_all_dim = c.rope_scaling.mscale_all_dim;
  return r;
}

StatusOr<GatedMlp> load_mlp(const WeightLoader& w, const std::string& prefix, int64_t hidden,
                            int64_t inter) {
  MS_ASSIGN_OR_RETURN(Tensor g, w.linear(prefix + "gate_proj.weight", inter, hidden));
  MS_ASSIGN_OR_RETURN(Tensor u, w.linear(prefix + "up_proj.weight", inter, hidden));
  MS_ASSIGN_OR_RETURN(Tensor d, w.linear(prefix + "down_proj.weight", hidden, inter));
  return GatedMlp::create(std::move(g), std::move(u), std::move(d));
}

}  // namespace

StatusOr<std::unique_ptr<DeepseekModel>> DeepseekModel::load(const std::string& dir,
                                                             const ModelLoadOptions& opts) {
  auto m = std::unique_ptr<DeepseekModel>(new DeepseekModel());
  MS_ASSIGN_OR_RETURN(m->cfg_, load_model_config(dir));
  MS_ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::open(dir));
  m->ckpt_ = std::make_shared<Checkpoint>(std::move(ck));
  const ModelConfig& c = m->cfg_;
  const WeightLoader w(*m->ckpt_, c);
  const int64_t H = c.hidden_size;
  m->rope_ = std::make_unique<RopeTable>(rope_params(c));

  MS_ASSIGN_OR_RETURN(m->embed_, w.embedding("model.embed_tokens.weight", c.vocab_size, H));
  MS_ASSIGN_OR_RETURN(m->final_norm_, w.vector_f32("model.norm.weight", H));
  Tensor head;
  if (c.tie_word_embeddings && !w.has("lm_head.weight")) {
    head = m->embed_;
  } else {
    MS_ASSIGN_OR_RETURN(head, w.linear("lm_head.weight", c.vocab_size, H));
  }
  MS_ASSIGN_OR_RETURN(m->lm_head_, Linear::create(head));

  // Expert parallelism: one set of backends shared by every MoE layer (collective).
  m->num_local_experts_ = c.n_routed_experts;
  if (opts.expert_parallel && opts.expert_parallel->group == nullptr) {
    return absl::InvalidArgumentError("expert parallel: no process group given");
  }
  if (opts.expert_parallel && opts.expert_parallel->group->world_size() > 1) {
    const ExpertParallelOptions& ep = *opts.expert_parallel;
    EpKernelConfig kc;
    kc.backend = ep.all2all_backend;
    kc.experts_format = opts.experts_format;
    kc.num_experts = c.n_routed_experts;
    kc.hidden = H;
    kc.top_k = c.num_experts_per_tok;
    kc.max_tokens_per_rank = ep.max_tokens_per_rank;
    MS_ASSIGN_OR_RETURN(EpKernels k, EpKernels::create(ep.group, kc));
    m->ep_.emplace(std::move(k));
    const int rank = ep.group->rank();
    m->first_local_expert_ = m->ep_->placement().first_expert(rank);
    m->num_local_experts_ = m->ep_->placement().num_local_experts(rank);
  }

  const size_t total = static_cast<size_t>(c.num_hidden_layers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    Layer layer;
    MS_ASSIGN_OR_RETURN(layer.input_norm, w.vector_f32(p + "input_layernorm.weight", H));
    MS_ASSIGN_OR_RETURN(layer.post_norm, w.vector_f32(p + "post_attention_layernorm.weight", H));
    MS_ASSIGN_OR_RETURN(MlaAttention attn, MlaAttention::load(w, c, l, m->rope_.get()));
    layer.attn = std::make_unique<MlaAttention>(std::move(attn));
    if (c.is_moe_layer(l)) {
      const int64_t I = c.moe_intermediate_size, E = c.n_routed_experts;
      auto experts = std::make_shared<ExpertWeights>();
      experts->hidden = H;
      // Only this rank's experts (all of them without expert parallelism).
      const int64_t first = m->first_local_expert_;
      for (int64_t e = first; e < first + m->num_local_experts_; ++e) {
        MS_ASSIGN_OR_RETURN(GatedMlp mlp,
                            load_mlp(w, absl::StrCat(p, "mlp.experts.", e, "."), H, I));
        experts->experts.push_back(std::move(mlp));
      }
      std::optional<GatedMlp> shared;
      if (c.n_shared_experts > 0) {
        MS_ASSIGN_OR_RETURN(shared,
                            load_mlp(w, p + "mlp.shared_experts.", H, I * c.n_shared_experts));
      }
      MS_ASSIGN_OR_RETURN(Tensor gw, w.linear(p + "mlp.gate.weight", E, H));
      Tensor bias;
      const std::string bname = p + "mlp.gate.e_score_correction_bias";
      if (w.has(bname)) {
        MS_ASSIGN_OR_RETURN(bias, w.vector_f32(bname, E));
      }
      auto moe =
          m->ep_ ? m->ep_->make_layer(gate_params(c), std::move(gw), std::move(bias),
                                      std::move(shared), std::move(experts))
                 : make_local_moe_layer(gate_params(c), std::move(gw), std::move(bias),
                                        std::move(shared), std::move(experts),
                                        opts.experts_format.value_or(ActivationFormat::kStandard));
      if (!moe.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(dir, ": layer ", l, ": ", moe.status().message()));
      }
      layer.moe.emplace(std::move(*moe));
    } else {
      MS_ASSIGN_OR_RETURN(GatedMlp mlp, load_mlp(w, p + "mlp.", H, c.intermediate_size));
      layer.dense = std::move(mlp);
    }
    m->layers_.push_back(std::move(layer));
    if (opts.progress) opts.progress(static_cast<size_t>(l + 1), total);
  }
  return m;
}

Status DeepseekModel::validate_batch(const ForwardBatch& b, const LatentCache& cache) const {
  if (cache.num_layers() != cfg_.num_hidden_layers || cache.entry_dim() != cache_entry_dim()) {
    return absl::InvalidArgumentError("forward: KV cache geometry does not match the model");
  }
  int64_t row = 0;
  for (const SeqChunk& s : b.seqs) {
    if (s.token_begin != row || s.num_tokens <= 0 || s.num_computed < 0) {
      return absl::InvalidArgumentError("forward: sequence chunks must tile the token rows");
    }
    row += s.num_tokens;
    const int64_t need =
        (s.num_computed + s.num_tokens + cache.block_size() - 1) / cache.block_size();
    if (s.num_blocks < need ||
        s.block_table_begin + s.num_blocks > static_cast<int64_t>(b.block_tables.size())) {
      return absl::InvalidArgumentError("forward: block table does not cover the chunk");
    }
    for (int64_t i = 0; i < need; ++i) {
      const int32_t blk = b.block_tables[s.block_table_begin + i];
      if (blk < 0 || blk >= cache.num_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat("forward: block id ", blk, " out of range"));
      }
    }
    if (s.num_computed + s.num_tokens > cfg_.max_position_embeddings && !cfg_.rope_scaling.yarn) {
      return absl::InvalidArgumentError("forward: position beyond max_position_embeddings");
    }
  }
  if (row != b.num_tokens()) {
    return absl::InvalidArgumentError("forward: sequence chunks must tile the token rows");
  }
  for (int32_t t : b.tokens) {
    if (t < 0 || t >= cfg_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " is outside the vocabulary [0, ", cfg_.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

void DeepseekModel::embed(const ForwardBatch& b, float* h) const {
  const int64_t H = cfg_.hidden_size;
  parallel_for(b.num_tokens(), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t id = b.tokens[t];
      if (embed_.dtype() == DType::kBF16) {
        bf16_to_f32(embed_.data<uint16_t>() + id * H, h + t * H, H);
      } else {
        std::memcpy(h + t * H, embed_.data<float>() + id * H, H * sizeof(float));
      }
    }
  });
}

std::string DeepseekModel::last_moe_backend() const {
  for (const Layer& l : layers_) {
    if (l.moe) return l.moe->last_prepare_finalize_name();
  }
  return "";
}

std::vector<int> DeepseekModel::moe_layer_ids() const {
  std::vector<int> ids;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (layers_[l].moe) ids.push_back(static_cast<int>(l));
  }
  return ids;
}

void DeepseekModel::set_expert_load_counters(ExpertLoadWindow* window) {
  int i = 0;
  for (Layer& l : layers_) {
    if (l.moe) l.moe->set_load_counters(window ? window->step_counters(i++) : nullptr);
  }
}

Status DeepseekModel::forward(const ForwardBatch& batch, const LatentCache& cache,
                              std::vector<float>* logits, std::vector<MoeRouting>* routing,
                              const std::vector<MoeRouting>* replay) {
  Status valid = validate_batch(batch, cache);
  if (valid.ok() && replay) valid = validate_replay(batch, *replay);
  if (valid.ok()) {
    const StepPlan plan = StepPlan::build(batch, cache.block_size());
    return run_layers(batch, plan, cache, logits, routing, replay);
  }
  if (ep_) {
    // Keep the peers in lockstep: run the layers' exchanges with no tokens of ours.
    ForwardBatch dummy;
    dummy.max_tokens_across_dp = batch.max_tokens_across_dp;
    const StepPlan plan = StepPlan::build(dummy, cache.block_size());
    MS_RETURN_IF_ERROR(run_layers(dummy, plan, cache, logits, nullptr, nullptr));
    logits->clear();
  }
  return valid;
}

Status DeepseekModel::validate_replay(const ForwardBatch& batch,
                                      const std::vector<MoeRouting>& replay) const {
  if (replay.size() != layers_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("forward: replayed routing has ", replay.size(),
                                                   " layers, the model ", layers_.size()));
  }
  const int64_t want = batch.num_tokens() * cfg_.num_experts_per_tok;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (layers_[l].moe && static_cast<int64_t>(replay[l].topk_ids.size()) != want) {
      return absl::InvalidArgumentError(absl::StrCat("forward: replayed routing of layer ", l,
                                                     " has ", replay[l].topk_ids.size(),
                                                     " choices, the batch needs ", want));
    }
  }
  return absl::OkStatus();
}

Status DeepseekModel::run_layers(const ForwardBatch& batch, const StepPlan& plan,
                                 const LatentCache& cache, std::vector<float>* logits,
                                 std::vector<MoeRouting>* routing,
                                 const std::vector<MoeRouting>* replay) {
  const int64_t T = batch.num_tokens(), H = cfg_.hidden_size;
  // The largest token count over the ranks, when known (-1: not known): the data-parallel
  // lockstep agreed on it, or layers that pick their kernel by it (auto) need it agreed now.
  // Backends with static buffers also size their chunking from it without a collective.
  int64_t max_tokens = -1;
  if (ep_) {
    if (batch.max_tokens_across_dp >= 0) {
      max_tokens = std::max(batch.max_tokens_across_dp, T);
    } else if (ep_->needs_agreed_tokens()) {
      int64_t v = T;
      MS_RETURN_IF_ERROR(ep_->group()->all_reduce(std::span<int64_t>(&v, 1), ReduceOp::kMax));
      max_tokens = v;
    }
  }
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  // Every temporary of the step comes from the arena; the layers release theirs on return,
  // so the arena's high-water mark is the step's buffers plus one layer's scratch.
  arena_.reset();
  std::span<float> h = arena_.alloc<float>(T * H);    // [T, H] residual stream
  std::span<float> x = arena_.alloc<float>(T * H);    // [T, H] normalised
  std::span<float> out = arena_.alloc<float>(T * H);  // [T, H] sublayer output
  embed(batch, h.data());
  if (routing) routing->assign(layers_.size(), MoeRouting{});
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    if (T > 0) {
      rmsnorm(h.data(), H, layer.input_norm.data<float>(), x.data(), H, T, H, eps);
      layer.attn->forward(x.data(), batch, plan, cache, static_cast<int64_t>(l), arena_,
                          out.data());
      axpy(1.0f, out.data(), h.data(), T * H);
      rmsnorm(h.data(), H, layer.post_norm.data<float>(), x.data(), H, T, H, eps);
    }
    if (layer.moe) {
      // Runs with T == 0 too: expert-parallel layers are collective.
      MS_RETURN_IF_ERROR(layer.moe->forward(x.data(), T, out.data(),
                                            routing ? &(*routing)[l] : nullptr, max_tokens,
                                            replay ? &(*replay)[l] : nullptr, &arena_));
    } else if (T > 0) {
      layer.dense->forward(x.data(), T, out.data(), 0, 0, &arena_);
    }
    axpy(1.0f, out.data(), h.data(), T * H);
  }
  // Final norm and LM head only for the rows that need logits.
  const int64_t n = static_cast<int64_t>(plan.logit_rows.size());
  std::span<float> last = arena_.alloc<float>(n * H);  // [n, H]
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(last.data() + i * H, h.data() + plan.logit_rows[i] * H, H * sizeof(float));
  }
  rmsnorm(last.data(), H, final_norm_.data<float>(), last.data(), H, n, H, eps);
  logits->resize(static_cast<size_t>(n * cfg_.vocab_size));
  if (n > 0) lm_head_.forward(last.data(), n, logits->data());
  return absl::OkStatus();
}

}  // namespace moeserve
