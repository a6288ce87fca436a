#include "model/reference_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "model/checkpoint.h"

namespace moeserve {
namespace reference {

double yarn_mscale(double scale, double m) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * m * std::log(scale) + 1.0;
}

RopeTable rope_table(const ModelConfig& c) {
  const int64_t dim = c.qk_rope_head_dim;
  const int64_t half = dim / 2;
  RopeTable t;
  t.inv_freq.resize(half);
  std::vector<double> extra(half);
  for (int64_t i = 0; i < half; ++i) {
    extra[i] = std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
  }
  if (!c.rope_scaling.yarn) {
    t.inv_freq = extra;
    return t;
  }
  const RopeScaling& y = c.rope_scaling;
  const double pi = std::acos(-1.0);
  auto correction_dim = [&](double rotations) {
    return static_cast<double>(dim) *
           std::log(static_cast<double>(y.original_max_position_embeddings) /
                    (rotations * 2.0 * pi)) /
           (2.0 * std::log(c.rope_theta));
  };
  const double low = std::max(std::floor(correction_dim(y.beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(y.beta_slow)), static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extra_weight = 1.0 - ramp;  // HF's inv_freq_mask
    const double inter = extra[i] / y.factor;
    t.inv_freq[i] = inter * (1.0 - extra_weight) + extra[i] * extra_weight;
  }
  t.attention_factor = yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim);
  return t;
}

double softmax_scale(const ModelConfig& c) {
  double s = 1.0 / std::sqrt(static_cast<double>(c.qk_nope_head_dim + c.qk_rope_head_dim));
  if (c.rope_scaling.yarn && c.rope_scaling.mscale_all_dim != 0.0) {
    const double m = yarn_mscale(c.rope_scaling.factor, c.rope_scaling.mscale_all_dim);
    s *= m * m;
  }
  return s;
}

void apply_rope(const RopeTable& t, int64_t pos, double* v) {
  for (size_t i = 0; i < t.inv_freq.size(); ++i) {
    const double angle = static_cast<double>(pos) * t.inv_freq[i];
    const double cs = std::cos(angle);
    const double sn = std::sin(angle);
    const double x0 = v[2 * i];
    const double x1 = v[2 * i + 1];
    v[2 * i] = (x0 * cs - x1 * sn) * t.attention_factor;
    v[2 * i + 1] = (x0 * sn + x1 * cs) * t.attention_factor;
  }
}

std::vector<double> score_experts(const std::vector<double>& logits, ScoringFunc f) {
  std::vector<double> s(logits.size());
  if (f == ScoringFunc::kSigmoid) {
    for (size_t i = 0; i < s.size(); ++i) s[i] = 1.0 / (1.0 + std::exp(-logits[i]));
    return s;
  }
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = std::exp(logits[i] - mx);
    sum += s[i];
  }
  for (double& v : s) v /= sum;
  return s;
}

namespace {

// Indices of the k largest values; ties go to the lower index.
std::vector<int64_t> top_k(const std::vector<double>& v, int64_t k) {
  std::vector<int64_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  idx.resize(std::min<size_t>(idx.size(), static_cast<size_t>(k)));
  return idx;
}

}  // namespace

Routing select_experts(const std::vector<double>& scores, const std::vector<double>& bias,
                       const ModelConfig& c) {
  const int64_t num_experts = static_cast<int64_t>(scores.size());
  std::vector<double> choice = scores;
  const bool noaux = c.topk_method == TopkMethod::kNoauxTc;
  if (noaux && !bias.empty()) {
    for (int64_t e = 0; e < num_experts; ++e) choice[e] += bias[e];
  }
  if (c.topk_method != TopkMethod::kGreedy && c.n_group > 1) {
    const int64_t per_group = num_experts / c.n_group;
    std::vector<double> group_score(c.n_group);
    for (int64_t g = 0; g < c.n_group; ++g) {
      std::vector<double> members(choice.begin() + g * per_group,
                                  choice.begin() + (g + 1) * per_group);
      std::sort(members.begin(), members.end(), std::greater<>());
      if (noaux) {  // sum of the group's two best biased scores
        group_score[g] = members[0] + (members.size() > 1 ? members[1] : 0.0);
      } else {  // group_limited_greedy: the group's best score
        group_score[g] = members[0];
      }
    }
    const std::vector<int64_t> kept = top_k(group_score, c.topk_group);
    std::vector<bool> keep(c.n_group, false);
    for (int64_t g : kept) keep[g] = true;
    for (int64_t e = 0; e < num_experts; ++e) {
      if (!keep[e / per_group]) choice[e] = -std::numeric_limits<double>::infinity();
    }
  }
  Routing r;
  r.ids = top_k(choice, c.num_experts_per_tok);
  for (int64_t id : r.ids) r.weights.push_back(scores[id]);
  if (c.norm_topk_prob && c.num_experts_per_tok > 1) {
    double sum = 0.0;
    for (double w : r.weights) sum += w;
    for (double& w : r.weights) w /= (sum + 1e-20);
  }
  for (double& w : r.weights) w *= c.routed_scaling_factor;
  return r;
}

}  // namespace reference

namespace {

using Matrix = ReferenceModel::Matrix;
using Mlp = ReferenceModel::Mlp;

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&out, i ? ", " : "", s[i]);
  return out + "]";
}

// The stored tensor `name`, checked against `shape`, as doubles (fp8 blocks dequantised with
// `<name>_scale_inv`).
StatusOr<std::vector<double>> load_values(const Checkpoint& ck, const ModelConfig& c,
                                          const std::string& name,
                                          const std::vector<int64_t>& shape) {
  MS_ASSIGN_OR_RETURN(Tensor t, ck.get(name));
  if (t.shape() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(ck.file_of(name), ": tensor ", name,
                                                   " has shape ", shape_str(t.shape()),
                                                   ", the config implies ", shape_str(shape)));
  }
  const int64_t n = t.numel();
  std::vector<double> v(n);
  switch (t.dtype()) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) v[i] = t.data<float>()[i];
      return v;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) v[i] = bf16_to_f32(t.data<uint16_t>()[i]);
      return v;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) v[i] = f16_to_f32(t.data<uint16_t>()[i]);
      return v;
    case DType::kF8E4M3:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(ck.file_of(name), ": tensor ", name,
                                                     " has unsupported dtype ",
                                                     std::string(dtype_name(t.dtype()))));
  }
  if (shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(ck.file_of(name), ": fp8 tensor ", name, " is not 2-D"));
  }
  const std::string scale_name = name + "_scale_inv";
  MS_ASSIGN_OR_RETURN(Tensor s, ck.get(scale_name));
  const int64_t bn = c.fp8_block_n;
  const int64_t bk = c.fp8_block_k;
  const std::vector<int64_t> scale_shape = {(shape[0] + bn - 1) / bn, (shape[1] + bk - 1) / bk};
  if (s.dtype() != DType::kF32 || s.shape() != scale_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        ck.file_of(scale_name), ": ", scale_name, " must be F32 ", shape_str(scale_shape),
        ", found ", std::string(dtype_name(s.dtype())), " ", shape_str(s.shape())));
  }
  for (int64_t r = 0; r < shape[0]; ++r) {
    for (int64_t col = 0; col < shape[1]; ++col) {
      const double scale = s.data<float>()[(r / bn) * scale_shape[1] + col / bk];
      const int64_t i = r * shape[1] + col;
      v[i] = static_cast<double>(fp8e4m3_to_f32(t.data<uint8_t>()[i])) * scale;
    }
  }
  return v;
}

StatusOr<Matrix> load_matrix(const Checkpoint& ck, const ModelConfig& c, const std::string& name,
                             int64_t rows, int64_t cols) {
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  MS_ASSIGN_OR_RETURN(m.w, load_values(ck, c, name, {rows, cols}));
  return m;
}

StatusOr<Mlp> load_mlp(const Checkpoint& ck, const ModelConfig& c, const std::string& prefix,
                       int64_t inter) {
  const int64_t h = c.hidden_size;
  Mlp m;
  MS_ASSIGN_OR_RETURN(m.gate, load_matrix(ck, c, prefix + ".gate_proj.weight", inter, h));
  MS_ASSIGN_OR_RETURN(m.up, load_matrix(ck, c, prefix + ".up_proj.weight", inter, h));
  MS_ASSIGN_OR_RETURN(m.down, load_matrix(ck, c, prefix + ".down_proj.weight", h, inter));
  return m;
}

// y = W x
std::vector<double> matvec(const Matrix& m, const std::vector<double>& x) {
  MS_CHECK(static_cast<int64_t>(x.size()) == m.cols);
  std::vector<double> y(m.rows, 0.0);
  for (int64_t r = 0; r < m.rows; ++r) {
    double acc = 0.0;
    const double* row = m.w.data() + r * m.cols;
    for (int64_t i = 0; i < m.cols; ++i) acc += row[i] * x[i];
    y[r] = acc;
  }
  return y;
}

std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w,
                             double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

std::vector<double> mlp_forward(const Mlp& m, const std::vector<double>& x) {
  std::vector<double> g = matvec(m.gate, x);
  const std::vector<double> u = matvec(m.up, x);
  for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return matvec(m.down, g);
}

}  // namespace

StatusOr<ReferenceModel> ReferenceModel::load(const std::string& dir) {
  ReferenceModel m;
  MS_ASSIGN_OR_RETURN(m.config_, load_model_config(dir));
  MS_ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::open(dir));
  const ModelConfig& c = m.config_;
  const int64_t h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  m.rope_ = reference::rope_table(c);
  m.softmax_scale_ = reference::softmax_scale(c);
  MS_ASSIGN_OR_RETURN(m.embed_, load_matrix(ck, c, "model.embed_tokens.weight", c.vocab_size, h));
  MS_ASSIGN_OR_RETURN(m.final_norm_, load_values(ck, c, "model.norm.weight", {h}));
  if (c.tie_word_embeddings) {
    m.lm_head_ = m.embed_;
  } else {
    MS_ASSIGN_OR_RETURN(m.lm_head_, load_matrix(ck, c, "lm_head.weight", c.vocab_size, h));
  }
  for (int64_t li = 0; li < c.num_hidden_layers; ++li) {
    Layer l;
    const std::string p = absl::StrCat("model.layers.", li, ".");
    const std::string a = p + "self_attn.";
    MS_ASSIGN_OR_RETURN(l.input_norm, load_values(ck, c, p + "input_layernorm.weight", {h}));
    MS_ASSIGN_OR_RETURN(l.post_attention_norm,
                        load_values(ck, c, p + "post_attention_layernorm.weight", {h}));
    if (c.q_lora_rank.has_value()) {
      const int64_t r = *c.q_lora_rank;
      MS_ASSIGN_OR_RETURN(l.q_a, load_matrix(ck, c, a + "q_a_proj.weight", r, h));
      MS_ASSIGN_OR_RETURN(l.q_a_norm, load_values(ck, c, a + "q_a_layernorm.weight", {r}));
      MS_ASSIGN_OR_RETURN(l.q_b,
                          load_matrix(ck, c, a + "q_b_proj.weight", heads * c.qk_head_dim(), r));
    } else {
      MS_ASSIGN_OR_RETURN(Matrix q,
                          load_matrix(ck, c, a + "q_proj.weight", heads * c.qk_head_dim(), h));
      l.q_proj = std::move(q);
    }
    MS_ASSIGN_OR_RETURN(l.kv_a, load_matrix(ck, c, a + "kv_a_proj_with_mqa.weight",
                                            c.kv_lora_rank + c.qk_rope_head_dim, h));
    MS_ASSIGN_OR_RETURN(l.kv_a_norm,
                        load_values(ck, c, a + "kv_a_layernorm.weight", {c.kv_lora_rank}));
    MS_ASSIGN_OR_RETURN(l.kv_b,
                        load_matrix(ck, c, a + "kv_b_proj.weight",
                                    heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank));
    MS_ASSIGN_OR_RETURN(l.o, load_matrix(ck, c, a + "o_proj.weight", h, heads * c.v_head_dim));
    l.moe = c.is_moe_layer(li);
    if (!l.moe) {
      MS_ASSIGN_OR_RETURN(l.dense, load_mlp(ck, c, p + "mlp", c.intermediate_size));
    } else {
      MS_ASSIGN_OR_RETURN(l.router,
                          load_matrix(ck, c, p + "mlp.gate.weight", c.n_routed_experts, h));
      if (c.topk_method == TopkMethod::kNoauxTc) {
        MS_ASSIGN_OR_RETURN(l.score_bias, load_values(ck, c, p + "mlp.gate.e_score_correction_bias",
                                                      {c.n_routed_experts}));
      }
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        MS_ASSIGN_OR_RETURN(
            Mlp ex, load_mlp(ck, c, absl::StrCat(p, "mlp.experts.", e), c.moe_intermediate_size));
        l.experts.push_back(std::move(ex));
      }
      if (c.n_shared_experts > 0) {
        MS_ASSIGN_OR_RETURN(Mlp sh, load_mlp(ck, c, p + "mlp.shared_experts",
                                             c.moe_intermediate_size * c.n_shared_experts));
        l.shared = std::move(sh);
      }
    }
    m.layers_.push_back(std::move(l));
  }
  return m;
}

std::vector<std::vector<double>> ReferenceModel::attention(
    const Layer& l, const std::vector<std::vector<double>>& x) const {
  const ModelConfig& c = config_;
  const int64_t num_tokens = static_cast<int64_t>(x.size());
  const int64_t heads = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim;
  const int64_t rope = c.qk_rope_head_dim;
  const int64_t qk = nope + rope;
  const int64_t vd = c.v_head_dim;
  std::vector<std::vector<double>> q(num_tokens);     // [T][H*qk], rope part rotated
  std::vector<std::vector<double>> k_pe(num_tokens);  // [T][rope], rotated
  std::vector<std::vector<double>> kv(num_tokens);    // [T][H*(nope+v)]
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (l.q_proj.has_value()) {
      q[t] = matvec(*l.q_proj, x[t]);
    } else {
      q[t] = matvec(l.q_b, rms_norm(matvec(l.q_a, x[t]), l.q_a_norm, c.rms_norm_eps));
    }
    for (int64_t hd = 0; hd < heads; ++hd) reference::apply_rope(rope_, t, &q[t][hd * qk + nope]);
    const std::vector<double> ckv_kpe = matvec(l.kv_a, x[t]);
    const std::vector<double> c_kv(ckv_kpe.begin(), ckv_kpe.begin() + c.kv_lora_rank);
    k_pe[t].assign(ckv_kpe.begin() + c.kv_lora_rank, ckv_kpe.end());
    reference::apply_rope(rope_, t, k_pe[t].data());
    kv[t] = matvec(l.kv_b, rms_norm(c_kv, l.kv_a_norm, c.rms_norm_eps));
  }
  std::vector<std::vector<double>> out(num_tokens);
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::vector<double> concat(heads * vd, 0.0);  // [H*v]
    for (int64_t hd = 0; hd < heads; ++hd) {
      const double* qh = &q[t][hd * qk];
      std::vector<double> score(t + 1);
      for (int64_t s = 0; s <= t; ++s) {
        const double* kh = &kv[s][hd * (nope + vd)];
        double dot = 0.0;
        for (int64_t i = 0; i < nope; ++i) dot += qh[i] * kh[i];
        for (int64_t i = 0; i < rope; ++i) dot += qh[nope + i] * k_pe[s][i];
        score[s] = dot * softmax_scale_;
      }
      const double mx = *std::max_element(score.begin(), score.end());
      double sum = 0.0;
      for (double& v : score) {
        v = std::exp(v - mx);
        sum += v;
      }
      for (int64_t s = 0; s <= t; ++s) {
        const double p = score[s] / sum;
        const double* vh = &kv[s][hd * (nope + vd) + nope];
        for (int64_t i = 0; i < vd; ++i) concat[hd * vd + i] += p * vh[i];
      }
    }
    out[t] = matvec(l.o, concat);
  }
  return out;
}

std::vector<double> ReferenceModel::moe(const Layer& l, const std::vector<double>& x,
                                        MoeRouting* routing) const {
  const ModelConfig& c = config_;
  const std::vector<double> scores = reference::score_experts(matvec(l.router, x), c.scoring_func);
  const reference::Routing r = reference::select_experts(scores, l.score_bias, c);
  if (routing) {
    for (size_t k = 0; k < r.ids.size(); ++k) {
      routing->topk_ids.push_back(static_cast<int32_t>(r.ids[k]));
      routing->topk_weights.push_back(static_cast<float>(r.weights[k]));
    }
  }
  std::vector<double> y(c.hidden_size, 0.0);
  for (size_t k = 0; k < r.ids.size(); ++k) {
    const std::vector<double> e = mlp_forward(l.experts[r.ids[k]], x);
    for (int64_t i = 0; i < c.hidden_size; ++i) y[i] += r.weights[k] * e[i];
  }
  if (l.shared.has_value()) {
    const std::vector<double> s = mlp_forward(*l.shared, x);
    for (int64_t i = 0; i < c.hidden_size; ++i) y[i] += s[i];
  }
  return y;
}

std::vector<std::vector<double>> ReferenceModel::forward(const std::vector<int32_t>& tokens,
                                                         std::vector<MoeRouting>* routing) const {
  const ModelConfig& c = config_;
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  const int64_t h = c.hidden_size;
  std::vector<std::vector<double>> hidden(num_tokens);  // [T][hidden] residual stream
  for (int64_t t = 0; t < num_tokens; ++t) {
    MS_CHECK(tokens[t] >= 0 && tokens[t] < c.vocab_size);
    hidden[t].assign(embed_.w.begin() + tokens[t] * h, embed_.w.begin() + (tokens[t] + 1) * h);
  }
  if (routing) routing->assign(layers_.size(), MoeRouting{});
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& l = layers_[li];
    std::vector<std::vector<double>> x(num_tokens);
    for (int64_t t = 0; t < num_tokens; ++t)
      x[t] = rms_norm(hidden[t], l.input_norm, c.rms_norm_eps);
    const std::vector<std::vector<double>> a = attention(l, x);
    for (int64_t t = 0; t < num_tokens; ++t) {
      for (int64_t i = 0; i < h; ++i) hidden[t][i] += a[t][i];
      const std::vector<double> xn = rms_norm(hidden[t], l.post_attention_norm, c.rms_norm_eps);
      const std::vector<double> f =
          l.moe ? moe(l, xn, routing ? &(*routing)[li] : nullptr) : mlp_forward(l.dense, xn);
      for (int64_t i = 0; i < h; ++i) hidden[t][i] += f[i];
    }
  }
  std::vector<std::vector<double>> logits(num_tokens);
  for (int64_t t = 0; t < num_tokens; ++t) {
    logits[t] = matvec(lm_head_, rms_norm(hidden[t], final_norm_, c.rms_norm_eps));
  }
  return logits;
}

}  // namespace moeserve
