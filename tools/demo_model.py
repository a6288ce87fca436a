"""DeepSeek-V3 forward pass in PyTorch, safetensors I/O and a byte-level BPE tokenizer.

Shared by tools/train_demo_model.py (training the demo model) and tools/demo_greedy.py
(printing a greedy continuation to compare against the C++ runtime). Developer tooling only:
nothing here runs at serve time or in CI.

The math follows Hugging Face's DeepseekV3ForCausalLM, spelled out the way moeserve's C++
forward implements it:
  h = embed[tok]; per layer: h += attn(rmsnorm(h) * w_in); h += mlp_or_moe(rmsnorm(h) * w_post)
  logits = lm_head(rmsnorm(h) * w_final), rmsnorm(x) = x / sqrt(mean(x^2) + eps).
MLA with q LoRA, RoPE on interleaved pairs (x[2i], x[2i+1]), softmax scale
(qk_nope + qk_rope)^-0.5; MoE gate noaux_tc (sigmoid scores, e_score_correction_bias only for
choosing, group-limited top-k, renormalised weights times routed_scaling_factor) plus shared
experts.
"""

import json
import math
import struct
from dataclasses import dataclass, asdict, field

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import regex as _re
    GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                    r"""|\s+(?!\S)|\s+""")
except ImportError:  # approximation without Unicode classes: letters = [^\W\d_]
    import re as _re
    GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
SPECIALS = [BOS, EOS, USER, ASSISTANT]  # ids 0..3


# --------------------------------------------------------------------------------------
# Configuration


@dataclass
class DemoConfig:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 512
    moe_intermediate_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    n_shared_experts: int = 1
    n_routed_experts: int = 16
    routed_scaling_factor: float = 2.5
    kv_lora_rank: int = 64
    q_lora_rank: int = 128
    qk_rope_head_dim: int = 16
    v_head_dim: int = 32
    qk_nope_head_dim: int = 32
    n_group: int = 4
    topk_group: int = 2
    num_experts_per_tok: int = 4
    first_k_dense_replace: int = 1
    norm_topk_prob: bool = True
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    bos_token_id: int = 0
    eos_token_id: int = 1

    def to_hf_json(self):
        """config.json spelled as Hugging Face's DeepseekV3Config."""
        c = asdict(self)
        out = {
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "deepseek_v3",
            "vocab_size": c["vocab_size"],
            "hidden_size": c["hidden_size"],
            "intermediate_size": c["intermediate_size"],
            "moe_intermediate_size": c["moe_intermediate_size"],
            "num_hidden_layers": c["num_hidden_layers"],
            "num_nextn_predict_layers": 0,
            "num_attention_heads": c["num_attention_heads"],
            "num_key_value_heads": c["num_attention_heads"],
            "n_shared_experts": c["n_shared_experts"],
            "n_routed_experts": c["n_routed_experts"],
            "ep_size": 1,
            "routed_scaling_factor": c["routed_scaling_factor"],
            "kv_lora_rank": c["kv_lora_rank"],
            "q_lora_rank": c["q_lora_rank"],
            "qk_rope_head_dim": c["qk_rope_head_dim"],
            "v_head_dim": c["v_head_dim"],
            "qk_nope_head_dim": c["qk_nope_head_dim"],
            "topk_method": "noaux_tc",
            "n_group": c["n_group"],
            "topk_group": c["topk_group"],
            "num_experts_per_tok": c["num_experts_per_tok"],
            "moe_layer_freq": 1,
            "first_k_dense_replace": c["first_k_dense_replace"],
            "norm_topk_prob": c["norm_topk_prob"],
            "scoring_func": "sigmoid",
            "hidden_act": "silu",
            "max_position_embeddings": c["max_position_embeddings"],
            "initializer_range": c["initializer_range"],
            "rms_norm_eps": c["rms_norm_eps"],
            "use_cache": True,
            "pad_token_id": c["eos_token_id"],
            "bos_token_id": c["bos_token_id"],
            "eos_token_id": c["eos_token_id"],
            "pretraining_tp": 1,
            "tie_word_embeddings": False,
            "rope_theta": c["rope_theta"],
            "rope_scaling": None,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.46.3",
        }
        return out

    @staticmethod
    def from_hf_json(j):
        cfg = DemoConfig()
        for k in asdict(cfg):
            if k in j and j[k] is not None:
                setattr(cfg, k, type(getattr(cfg, k))(j[k]))
        assert j.get("topk_method", "noaux_tc") == "noaux_tc"
        assert j.get("scoring_func", "sigmoid") == "sigmoid"
        assert j.get("rope_scaling") is None
        assert not j.get("tie_word_embeddings", False)
        return cfg


# --------------------------------------------------------------------------------------
# Model


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(rope_dim, theta, positions):
    """cos/sin [T, rope_dim/2] for inv_freq[i] = theta^(-2i/rope_dim), angle = pos*inv_freq[i]."""
    i = torch.arange(0, rope_dim, 2, dtype=torch.float64)
    inv_freq = 1.0 / (theta ** (i / rope_dim))
    ang = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope_interleaved(x, cos, sin):
    """x [..., T, H, rope_dim]; rotates pairs (x[2i], x[2i+1]) by angle i."""
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class MLA(nn.Module):
    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_size
        nh = cfg.num_attention_heads
        qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
        self.q_a_proj = nn.Linear(h, cfg.q_lora_rank, bias=False)
        self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, cfg.rms_norm_eps)
        self.q_b_proj = nn.Linear(cfg.q_lora_rank, nh * qk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(h, cfg.kv_lora_rank + cfg.qk_rope_head_dim,
                                            bias=False)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, cfg.rms_norm_eps)
        self.kv_b_proj = nn.Linear(cfg.kv_lora_rank,
                                   nh * (cfg.qk_nope_head_dim + cfg.v_head_dim), bias=False)
        self.o_proj = nn.Linear(nh * cfg.v_head_dim, h, bias=False)
        self.scale = qk ** -0.5

    def forward(self, x, cos, sin):
        cfg = self.cfg
        B, T, _ = x.shape
        nh, dn, dr, dv = (cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim,
                          cfg.v_head_dim)
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(B, T, nh, dn + dr)
        q_nope, q_pe = q.split([dn, dr], dim=-1)
        ckv = self.kv_a_proj_with_mqa(x)
        c_kv, k_pe = ckv.split([cfg.kv_lora_rank, dr], dim=-1)
        kv = self.kv_b_proj(self.kv_a_layernorm(c_kv)).view(B, T, nh, dn + dv)
        k_nope, v = kv.split([dn, dv], dim=-1)
        q_pe = apply_rope_interleaved(q_pe, cos, sin)
        k_pe = apply_rope_interleaved(k_pe.view(B, T, 1, dr), cos, sin)
        qf = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)            # [B, nh, T, qk]
        kf = torch.cat([k_nope, k_pe.expand(B, T, nh, dr)], dim=-1).transpose(1, 2)
        vf = v.transpose(1, 2)                                            # [B, nh, T, dv]
        scores = torch.matmul(qf, kf.transpose(-1, -2)) * self.scale      # [B, nh, T, T]
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        p = torch.softmax(scores.float(), dim=-1)
        out = torch.matmul(p, vf).transpose(1, 2).reshape(B, T, nh * dv)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    """Routed experts stored stacked ([E, out, in]); exported as experts.E.* linears."""

    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.cfg = cfg
        E, H, I = cfg.n_routed_experts, cfg.hidden_size, cfg.moe_intermediate_size
        self.gate_weight = nn.Parameter(torch.empty(E, H))
        self.register_buffer("e_score_correction_bias", torch.zeros(E))
        self.w_gate = nn.Parameter(torch.empty(E, I, H))
        self.w_up = nn.Parameter(torch.empty(E, I, H))
        self.w_down = nn.Parameter(torch.empty(E, H, I))
        self.shared_experts = MLP(H, I * cfg.n_shared_experts)
        self.last_counts = None  # [E] tokens routed to each expert in the last forward

    def route(self, x):
        """x [N, H] -> (topk_idx [N, k], topk_w [N, k])."""
        cfg = self.cfg
        N = x.shape[0]
        logits = F.linear(x.float(), self.gate_weight.float())
        s = torch.sigmoid(logits)
        choice = s.detach() + self.e_score_correction_bias[None, :]
        per_group = cfg.n_routed_experts // cfg.n_group
        gscore = choice.view(N, cfg.n_group, per_group).topk(2, dim=-1).values.sum(-1)
        gidx = gscore.topk(cfg.topk_group, dim=-1).indices                  # [N, topk_group]
        gmask = torch.zeros(N, cfg.n_group, dtype=torch.bool, device=x.device)
        gmask.scatter_(1, gidx, True)
        emask = gmask[:, :, None].expand(N, cfg.n_group, per_group).reshape(N, -1)
        choice = choice.masked_fill(~emask, float("-inf"))
        topk_idx = choice.topk(cfg.num_experts_per_tok, dim=-1).indices
        w = s.gather(1, topk_idx)
        if cfg.norm_topk_prob:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * cfg.routed_scaling_factor
        return topk_idx, w

    def forward(self, x):
        shape = x.shape
        xf = x.reshape(-1, shape[-1])
        topk_idx, w = self.route(xf)
        out = torch.zeros_like(xf)
        counts = torch.bincount(topk_idx.flatten(), minlength=self.cfg.n_routed_experts)
        self.last_counts = counts.detach()
        flat_idx = topk_idx.flatten()
        order = torch.sort(flat_idx, stable=True).indices
        tok = order // topk_idx.shape[1]
        wts = w.flatten()[order]
        start = 0
        for e, n in enumerate(counts.tolist()):
            if n == 0:
                continue
            rows = tok[start:start + n]
            xe = xf[rows]
            he = F.silu(F.linear(xe, self.w_gate[e])) * F.linear(xe, self.w_up[e])
            ye = F.linear(he, self.w_down[e]) * wts[start:start + n, None]
            out.index_add_(0, rows, ye.to(out.dtype))
            start += n
        out = out + self.shared_experts(xf)
        return out.view(shape)


class DecoderLayer(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.is_moe = layer_idx >= cfg.first_k_dense_replace and cfg.n_routed_experts > 0
        self.mlp = MoE(cfg) if self.is_moe else MLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, h, cos, sin):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin)
        h = h + self.mlp(self.post_attention_layernorm(h))
        return h


class DeepseekV3(nn.Module):
    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def init_weights(self, generator):
        std = self.cfg.initializer_range
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                continue
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator) * std)

    def moe_layers(self):
        return [l.mlp for l in self.layers if l.is_moe]

    def forward(self, ids):
        """ids [B, T] (positions 0..T-1) -> logits [B, T, V] (float32)."""
        T = ids.shape[1]
        cos, sin = rope_cos_sin(self.cfg.qk_rope_head_dim, self.cfg.rope_theta,
                                torch.arange(T, device=ids.device))
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.lm_head(self.norm(h)).float()

    # ---- Hugging Face tensor names ----
    def hf_state(self):
        """{hf_name: tensor} with HF DeepseekV3ForCausalLM names, [out, in] linears."""
        out = {"model.embed_tokens.weight": self.embed_tokens.weight,
               "model.norm.weight": self.norm.weight,
               "lm_head.weight": self.lm_head.weight}
        for i, layer in enumerate(self.layers):
            p = f"model.layers.{i}."
            out[p + "input_layernorm.weight"] = layer.input_layernorm.weight
            out[p + "post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight
            a = layer.self_attn
            for n in ("q_a_proj", "q_a_layernorm", "q_b_proj", "kv_a_proj_with_mqa",
                      "kv_a_layernorm", "kv_b_proj", "o_proj"):
                out[p + f"self_attn.{n}.weight"] = getattr(a, n).weight
            m = layer.mlp
            if layer.is_moe:
                out[p + "mlp.gate.weight"] = m.gate_weight
                out[p + "mlp.gate.e_score_correction_bias"] = m.e_score_correction_bias
                for e in range(self.cfg.n_routed_experts):
                    q = p + f"mlp.experts.{e}."
                    out[q + "gate_proj.weight"] = m.w_gate[e]
                    out[q + "up_proj.weight"] = m.w_up[e]
                    out[q + "down_proj.weight"] = m.w_down[e]
                for n in ("gate_proj", "up_proj", "down_proj"):
                    out[p + f"mlp.shared_experts.{n}.weight"] = getattr(m.shared_experts,
                                                                        n).weight
            else:
                for n in ("gate_proj", "up_proj", "down_proj"):
                    out[p + f"mlp.{n}.weight"] = getattr(m, n).weight
        return out

    @torch.no_grad()
    def load_hf_state(self, tensors):
        mine = self.hf_state()
        missing = set(mine) - set(tensors)
        extra = set(tensors) - set(mine)
        if missing or extra:
            raise ValueError(f"tensor names differ: missing {sorted(missing)[:5]} "
                             f"extra {sorted(extra)[:5]}")
        for k, t in mine.items():
            if tuple(t.shape) != tuple(tensors[k].shape):
                raise ValueError(f"{k}: shape {tuple(tensors[k].shape)} != {tuple(t.shape)}")
            t.copy_(tensors[k].to(t.dtype))


# --------------------------------------------------------------------------------------
# safetensors


_DTYPES = {torch.bfloat16: "BF16", torch.float32: "F32"}


def write_safetensors(path, tensors):
    """tensors: {name: tensor (bf16 or f32)}; names sorted; 8-byte LE header length, JSON
    header padded with spaces to a multiple of 8, data contiguous little-endian."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            data = t.view(torch.int16).numpy().astype("<i2").tobytes()
        elif t.dtype == torch.float32:
            data = t.numpy().astype("<f4").tobytes()
        else:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = buf[base + b:base + e]
        if info["dtype"] == "BF16":
            arr = np.frombuffer(raw, dtype="<i2").copy()
            t = torch.from_numpy(arr).view(torch.bfloat16)
        elif info["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        else:
            raise ValueError(f"{name}: unsupported dtype {info['dtype']}")
        out[name] = t.reshape(info["shape"])
    return out


def load_model(model_dir):
    """Loads a demo checkpoint directory into an fp32 DeepseekV3 (weights as stored)."""
    with open(f"{model_dir}/config.json") as f:
        cfg = DemoConfig.from_hf_json(json.load(f))
    model = DeepseekV3(cfg)
    model.load_hf_state(read_safetensors(f"{model_dir}/model.safetensors"))
    model.eval()
    return model


# --------------------------------------------------------------------------------------
# Byte-level BPE tokenizer (GPT-2 byte map)


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {v: k for k, v in BYTE_ENCODER.items()}
_PAT = _re.compile(GPT2_PATTERN)


def pretokenize(text):
    """GPT-2 regex split, each piece mapped byte -> unicode char."""
    return ["".join(BYTE_ENCODER[b] for b in m.encode("utf-8")) for m in _PAT.findall(text)]


class ByteLevelBPE:
    def __init__(self, vocab, merges):
        self.vocab = vocab                                 # {token: id}
        self.inv = {i: t for t, i in vocab.items()}
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.cache = {}
        self.special_ids = {s: vocab[s] for s in SPECIALS}
        self._special_re = _re.compile("(" + "|".join(_re.escape(s) for s in SPECIALS) + ")")

    @staticmethod
    def from_file(path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        vocab = dict(j["model"]["vocab"])
        for a in j.get("added_tokens", []):
            vocab[a["content"]] = a["id"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in j["model"]["merges"]]
        return ByteLevelBPE(vocab, merges)

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            best_rank = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            a, b = parts[best], parts[best + 1]
            merged = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode_plain(self, text):
        """Text without special tokens -> ids (no BOS)."""
        ids = []
        for w in pretokenize(text):
            ids.extend(self._bpe(w))
        return ids

    def encode(self, text, add_bos=True):
        """Splits special tokens out first (as HF added_tokens do), then BPE; BOS prepended."""
        ids = [self.special_ids[BOS]] if add_bos else []
        for piece in self._special_re.split(text):
            if not piece:
                continue
            if piece in self.special_ids:
                ids.append(self.special_ids[piece])
            else:
                ids.extend(self.encode_plain(piece))
        return ids

    def decode(self, ids, skip_special=True):
        out = []
        for i in ids:
            t = self.inv[int(i)]
            if t in self.special_ids:
                if not skip_special:
                    out.append(t.encode("utf-8"))
                continue
            out.append(bytes(BYTE_DECODER[c] for c in t))
        return b"".join(out).decode("utf-8", errors="replace")


@torch.no_grad()
def greedy(model, ids, max_tokens, stop_ids=()):
    """Greedy continuation by full recompute each step (positions 0..T-1)."""
    seq = list(ids)
    out = []
    for _ in range(max_tokens):
        logits = model(torch.tensor([seq]))[0, -1]
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        seq.append(nxt)
        if nxt in stop_ids:
            break
    return out


@torch.no_grad()
def sample(model, ids, max_tokens, generator, temperature=0.8, top_p=0.95, stop_ids=()):
    seq = list(ids)
    out = []
    for _ in range(max_tokens):
        logits = model(torch.tensor([seq[-model.cfg.max_position_embeddings:]]))[0, -1]
        probs = torch.softmax(logits / temperature, dim=-1)
        sp, si = torch.sort(probs, descending=True)
        keep = (torch.cumsum(sp, 0) - sp) < top_p
        sp = sp * keep
        sp = sp / sp.sum()
        nxt = int(si[torch.multinomial(sp, 1, generator=generator)])
        out.append(nxt)
        seq.append(nxt)
        if nxt in stop_ids:
            break
    return out
