#!/usr/bin/env python3
"""Trains moeserve's demo model: a tiny DeepSeek-V3 (MLA + sigmoid/noaux_tc MoE) on the
English text of Debian's `fortunes` / `fortunes-min` packages, and writes a Hugging Face
DeepseekV3ForCausalLM checkpoint directory (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, generation_config.json) plus training_log.txt, README.md and
LICENSE-DATA.md.

Developer tool only (needs Debian's python3-torch and python3-regex); never run in CI or at
serve time. Deterministic given --seed and --steps; with only --minutes, the step count is
fixed after timing the first steps and is recorded in README.md so that `--steps N`
reproduces the run.

  python3 tools/train_demo_model.py --out models/demo --minutes 25 --seed 1234
"""

import argparse
import collections
import heapq
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_model as dm  # noqa: E402

DATA_DIR = "/usr/share/games/fortunes"
EXCLUDED_FILES = {"ascii-art"}  # ASCII drawings, not prose

GENERIC_PROMPTS = [
    "Tell me something.", "Say something wise.", "Tell me a fortune.", "Give me a quote.",
    "Tell me a joke.", "Share some wisdom.", "Hello!", "Say something funny.",
    "What do you think?", "Give me some advice.", "Tell me a story.", "Surprise me.",
]
TOPIC_PROMPTS = ["Tell me something about {}.", "Say something about {}.",
                 "What do you know about {}?"]
TOPIC_NAMES = {
    "computers": "computers", "linux": "Linux", "linuxcookie": "Linux", "debian": "Debian",
    "law": "the law", "food": "food", "love": "love", "science": "science", "work": "work",
    "sports": "sports", "politics": "politics", "medicine": "medicine", "pets": "pets",
    "education": "education", "literature": "literature", "art": "art", "kids": "kids",
    "men-women": "men and women", "people": "people", "wisdom": "wisdom", "riddles": "riddles",
    "startrek": "Star Trek", "perl": "Perl", "magic": "magic", "songs-poems": "poetry",
    "definitions": "words", "humorists": "humor", "tao": "the Tao", "news": "the news",
    "drugs": "drugs",
}


# --------------------------------------------------------------------------------------
# Data


def load_fortunes(data_dir):
    """[(file_name, text)] for every fortune in every data file (index files skipped)."""
    out = []
    files = []
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        if (name.endswith(".dat") or name.endswith(".u8") or os.path.islink(path) or
                not os.path.isfile(path) or name in EXCLUDED_FILES):
            continue
        files.append(name)
        with open(path, encoding="utf-8", errors="replace") as f:
            raw = f.read()
        cur = []
        for line in raw.split("\n") + ["%"]:
            if line.rstrip() == "%":
                text = "\n".join(l.rstrip() for l in cur).strip("\n")
                if text.strip():
                    out.append((name, text))
                cur = []
            else:
                cur.append(line)
    return files, out


def chat_prompt(rng, topic_file):
    if topic_file in TOPIC_NAMES and rng.random() < 0.5:
        return rng.choice(TOPIC_PROMPTS).format(TOPIC_NAMES[topic_file])
    return rng.choice(GENERIC_PROMPTS)


# --------------------------------------------------------------------------------------
# Byte-level BPE training (GPT-2 byte map + pre-tokenisation regex)


def train_bpe(texts, vocab_size):
    """Returns (vocab {token: id}, merges [[a, b]]): ids 0..3 the special tokens, 4..259 the
    256 byte symbols in byte order, then one id per new merged token, merges in learn order
    (ties broken by the lexicographically smallest pair)."""
    counts = collections.Counter()
    for t in texts:
        counts.update(dm.pretokenize(t))
    vocab = {s: i for i, s in enumerate(dm.SPECIALS)}
    for b in range(256):
        vocab[dm.BYTE_ENCODER[b]] = len(vocab)
    words = [list(w) for w in counts]
    freqs = [counts[w] for w in counts]
    pair_counts = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for wi, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_counts[p] += freqs[wi]
            where[p].add(wi)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        negc, p = heapq.heappop(heap)
        if pair_counts.get(p, 0) != -negc or negc == 0:
            continue
        merges.append([p[0], p[1]])
        new = p[0] + p[1]
        if new not in vocab:
            vocab[new] = len(vocab)
        changed = set()
        for wi in sorted(where[p]):
            w = words[wi]
            f = freqs[wi]
            nw = []
            i = 0
            hit = False
            while i < len(w):
                if i < len(w) - 1 and w[i] == p[0] and w[i + 1] == p[1]:
                    nw.append(new)
                    i += 2
                    hit = True
                else:
                    nw.append(w[i])
                    i += 1
            if not hit:
                continue
            for q in zip(w, w[1:]):
                pair_counts[q] -= f
                changed.add(q)
            for q in zip(nw, nw[1:]):
                pair_counts[q] += f
                where[q].add(wi)
                changed.add(q)
            words[wi] = nw
        pair_counts[p] = 0
        del where[p]
        for q in changed:
            c = pair_counts[q]
            if c > 0:
                heapq.heappush(heap, (-c, q))
    return vocab, merges


def tokenizer_json(vocab, merges):
    added = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for s in dm.SPECIALS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": dm.BOS, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": dm.BOS, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": dm.BOS, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {dm.BOS: {"id": dm.BOS, "ids": [vocab[dm.BOS]],
                                        "tokens": [dm.BOS]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}"
)


def tokenizer_config(max_len):
    def tok(s):
        return {"__type": "AddedToken", "content": s, "lstrip": False, "normalized": False,
                "rstrip": False, "single_word": False}
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": tok(dm.BOS),
        "eos_token": tok(dm.EOS),
        "pad_token": tok(dm.EOS),
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": max_len,
        "sp_model_kwargs": {},
        "unk_token": None,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "use_default_system_prompt": False,
        "chat_template": CHAT_TEMPLATE,
    }


# --------------------------------------------------------------------------------------
# Training


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def get_batch(stream, starts, rng, batch, seq_len):
    rows = []
    n = len(stream)
    for _ in range(batch):
        s = starts[rng.randrange(len(starts))]
        if s + seq_len + 1 > n:
            s = n - seq_len - 1
        rows.append(stream[s:s + seq_len + 1])
    x = torch.stack(rows)
    return x[:, :-1].contiguous(), x[:, 1:].contiguous()


@torch.no_grad()
def eval_loss(model, docs, seq_len, max_docs=400):
    tot, n = 0.0, 0
    for ids in docs[:max_docs]:
        ids = ids[:seq_len + 1]
        if len(ids) < 2:
            continue
        t = torch.tensor([ids])
        logits = model(t[:, :-1])
        tot += F.cross_entropy(logits[0], t[0, 1:], reduction="sum").item()
        n += len(ids) - 1
    return tot / max(1, n)


@torch.no_grad()
def router_stats(model, docs, seq_len, max_docs=400):
    """Per MoE layer: fraction of routed token slots that chose each expert."""
    layers = model.moe_layers()
    totals = [torch.zeros(model.cfg.n_routed_experts, dtype=torch.float64) for _ in layers]
    for ids in docs[:max_docs]:
        model(torch.tensor([ids[:seq_len]]))
        for i, m in enumerate(layers):
            totals[i] += m.last_counts.double()
    return [(t / t.sum()).tolist() for t in totals]


def bf16_state(model):
    out = {}
    for k, t in model.hf_state().items():
        t = t.detach()
        out[k] = t.float() if k.endswith("e_score_correction_bias") else t.to(torch.bfloat16)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--minutes", type=float, default=25.0, help="training time budget")
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (overrides --minutes)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch intra-op threads; on a heavily shared machine use 1 (OpenMP "
                         "threads that wait on descheduled peers slow each step many-fold)")
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--q-lora-rank", type=int, default=128)
    ap.add_argument("--kv-lora-rank", type=int, default=64)
    ap.add_argument("--qk-nope-dim", type=int, default=32)
    ap.add_argument("--qk-rope-dim", type=int, default=16)
    ap.add_argument("--v-dim", type=int, default=32)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--moe-intermediate", type=int, default=128)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--experts-per-tok", type=int, default=4)
    ap.add_argument("--n-group", type=int, default=4)
    ap.add_argument("--topk-group", type=int, default=2)
    ap.add_argument("--shared-experts", type=int, default=1)
    ap.add_argument("--first-dense", type=int, default=1)
    ap.add_argument("--routed-scaling", type=float, default=2.5)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--bias-gamma", type=float, default=1e-3,
                    help="aux-loss-free bias update step (e_score_correction_bias)")
    ap.add_argument("--chat-fraction", type=float, default=0.35)
    ap.add_argument("--resume-trained", default="",
                    help="skip training: load the trained state saved by an earlier run")
    ap.add_argument("--save-trained", default="",
                    help="also save the trained fp32 state here (torch.save) before export")
    ap.add_argument("--eval-docs", type=int, default=300,
                    help="held-out documents used for the final loss and router statistics")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    # ---- data ----
    files, fortunes = load_fortunes(args.data_dir)
    order = list(range(len(fortunes)))
    rng.shuffle(order)
    held = set(order[::40])
    train_f = [fortunes[i] for i in order if i not in held]
    held_f = [fortunes[i] for i in sorted(held)]
    print(f"data: {len(files)} files, {len(fortunes)} fortunes "
          f"({sum(len(t) for _, t in fortunes)} chars); held out {len(held_f)}", flush=True)

    # ---- tokenizer ----
    t0 = time.time()
    bpe_texts = [t for _, t in train_f] + GENERIC_PROMPTS + [
        p.format(n) for p in TOPIC_PROMPTS for n in sorted(set(TOPIC_NAMES.values()))]
    vocab, merges = train_bpe(bpe_texts, args.vocab)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False, indent=1)
    tok = dm.ByteLevelBPE(vocab, merges)
    print(f"bpe: {len(vocab)} tokens, {len(merges)} merges in {time.time() - t0:.1f}s",
          flush=True)
    bos, eos, user, asst = (vocab[s] for s in dm.SPECIALS)

    # ---- documents ----
    docs = []
    for name, text in train_f:
        body = tok.encode_plain(text)
        docs.append([bos] + body + [eos])
        if len(text) <= 500 and rng.random() < args.chat_fraction:
            q = tok.encode_plain(chat_prompt(rng, name))
            docs.append([bos, user] + q + [asst] + body + [eos])
    rng.shuffle(docs)
    held_docs = [[bos] + tok.encode_plain(t) + [eos] for _, t in held_f]
    stream, starts = [], []
    for d in docs:
        starts.append(len(stream))
        stream.extend(d)
    stream = torch.tensor(stream, dtype=torch.long)
    n_chat = sum(1 for d in docs if len(d) > 1 and d[1] == user)
    print(f"tokens: train {len(stream)} in {len(docs)} docs ({n_chat} chat), "
          f"held-out {sum(len(d) for d in held_docs)}", flush=True)

    # ---- model ----
    cfg = dm.DemoConfig(
        vocab_size=len(vocab), hidden_size=args.hidden, intermediate_size=args.intermediate,
        moe_intermediate_size=args.moe_intermediate, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, n_shared_experts=args.shared_experts,
        n_routed_experts=args.experts, routed_scaling_factor=args.routed_scaling,
        kv_lora_rank=args.kv_lora_rank, q_lora_rank=args.q_lora_rank,
        qk_rope_head_dim=args.qk_rope_dim, v_head_dim=args.v_dim,
        qk_nope_head_dim=args.qk_nope_dim, n_group=args.n_group, topk_group=args.topk_group,
        num_experts_per_tok=args.experts_per_tok, first_k_dense_replace=args.first_dense,
        bos_token_id=bos, eos_token_id=eos)
    model = dm.DeepseekV3(cfg)
    gen = torch.Generator().manual_seed(args.seed)
    model.init_weights(gen)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    total = args.steps if args.steps > 0 else None
    log_lines = ["# step  loss  tokens_per_s  lr  elapsed_s"]
    batch_rng = random.Random(args.seed + 1)
    train_t0 = time.time()
    step = 0
    window_loss, window_n, window_t = 0.0, 0, time.time()
    tokens_per_step = args.batch * args.seq_len
    model.train()
    if args.resume_trained:
        saved = torch.load(args.resume_trained)
        model.load_state_dict(saved["state"])
        log_lines, total, step = saved["log"], saved["total"], saved["total"]
        train_t0 = time.time() - saved["train_s"]
    while not args.resume_trained:
        if total is None and step == 10:
            per_step = (time.time() - train_t0) / 10
            total = max(20, int(args.minutes * 60 / per_step))
            print(f"timing: {per_step:.2f}s/step -> {total} steps "
                  f"(rerun with --steps {total} to reproduce)", flush=True)
        if total is not None and step >= total:
            break
        lr = lr_at(step, total if total is not None else 10 ** 9, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(stream, starts, batch_rng, args.batch, args.seq_len)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # aux-loss-free balancing: bias += gamma * sign(mean - load)
            for m in model.moe_layers():
                c = m.last_counts.float()
                m.e_score_correction_bias += args.bias_gamma * torch.sign(c.mean() - c)
        window_loss += loss.item()
        window_n += 1
        step += 1
        if step % 10 == 0 or step == total:
            now = time.time()
            tps = window_n * tokens_per_step / (now - window_t)
            line = (f"{step:6d}  {window_loss / window_n:.4f}  {tps:8.0f}  {lr:.2e}  "
                    f"{now - train_t0:7.1f}")
            log_lines.append(line)
            print(f"step {line}", flush=True)
            window_loss, window_n, window_t = 0.0, 0, now
    train_s = time.time() - train_t0
    if args.save_trained:
        torch.save({"state": model.state_dict(), "log": log_lines, "total": total,
                    "train_s": train_s}, args.save_trained)

    # ---- export ----
    state = bf16_state(model)
    dm.write_safetensors(os.path.join(args.out, "model.safetensors"), state)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg.to_hf_json(), f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"_from_model_config": True, "bos_token_id": bos, "eos_token_id": eos,
                   "do_sample": True, "temperature": 0.8, "top_p": 0.95,
                   "transformers_version": "4.46.3"}, f, indent=2)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(cfg.max_position_embeddings), f, ensure_ascii=False,
                  indent=2)

    # ---- evaluate the exported (bf16) checkpoint ----
    m2 = dm.load_model(args.out)
    held_loss = eval_loss(m2, held_docs, args.seq_len, args.eval_docs)
    train_loss = eval_loss(m2, docs, args.seq_len, args.eval_docs)
    stats = router_stats(m2, held_docs, args.seq_len, args.eval_docs)
    print(f"held-out loss {held_loss:.4f} (train sample {train_loss:.4f})", flush=True)
    sgen = torch.Generator().manual_seed(args.seed)
    samples = []
    greedy_bos = dm.greedy(m2, [bos], 40, stop_ids=(eos,))
    samples.append(("greedy, prompt = BOS", tok.decode(greedy_bos)))
    for prompt in ["The", "A computer", "Love is"]:
        ids = tok.encode(prompt)
        out = dm.sample(m2, ids, 50, sgen, stop_ids=(eos,))
        samples.append((f"sampled (T=0.8, top_p=0.95), prompt = {prompt!r}",
                        prompt + tok.decode(out)))
    for q in ["Tell me something.", "Say something wise.", "Tell me something about computers."]:
        ids = tok.encode(f"{dm.USER}{q}{dm.ASSISTANT}")
        out = dm.sample(m2, ids, 60, sgen, stop_ids=(eos,))
        samples.append((f"chat (sampled), user = {q!r}", tok.decode(out)))
        print(f"chat {q!r} -> {tok.decode(out)!r}", flush=True)
    check_prompt = tok.encode("The meaning of life is")
    check_out = dm.greedy(m2, check_prompt, 20)
    for title, text in samples:
        print(f"--- {title}\n{text}", flush=True)

    with open(os.path.join(args.out, "training_log.txt"), "w") as f:
        f.write("\n".join(log_lines) + "\n")
        f.write(f"# final: steps {total}, held-out loss {held_loss:.4f}, "
                f"train-sample loss {train_loss:.4f}, training {train_s:.0f}s\n")
    write_readme(args, cfg, n_params, total, train_s, held_loss, train_loss, log_lines, samples,
                 stats, check_prompt, check_out, len(stream), len(docs), n_chat, files)
    write_license(args.out, files, len(fortunes))
    print(f"done in {time.time() - t_start:.0f}s; wrote {args.out}", flush=True)


def write_readme(args, cfg, n_params, total, train_s, held_loss, train_loss, log_lines, samples,
                 stats, check_prompt, check_out, n_tokens, n_docs, n_chat, files):
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    cmd = ("python3 tools/train_demo_model.py --out models/demo "
           f"--seed {args.seed} --steps {total} --threads {args.threads} "
           f"--batch {args.batch} --seq-len {args.seq_len}")
    defaults_changed = []
    for k in ("vocab", "hidden", "layers", "heads", "intermediate", "moe_intermediate",
              "experts", "experts_per_tok", "seq_len", "batch", "lr", "bias_gamma"):
        defaults_changed.append(f"{k}={getattr(args, k)}")
    curve = [l for l in log_lines[1:]]
    pick = curve[:3] + curve[3:-3][::max(1, len(curve) // 12)] + curve[-3:]
    L = []
    L.append("# moeserve demo model\n")
    L.append("A tiny DeepSeek-V3 (`DeepseekV3ForCausalLM`) trained from scratch on the English "
             "text of Debian's `fortunes` and `fortunes-min` packages, so that "
             "`moeserve serve` has a real model to serve out of the box: a real MLA "
             "attention stack, a real sigmoid/`noaux_tc` MoE router with a trained "
             "`e_score_correction_bias`, real (skewed) expert load, and output that looks "
             "like English. It knows nothing useful; it babbles fortune-cookie prose.\n")
    L.append("## Shape\n")
    L.append(f"- {n_params / 1e6:.2f}M parameters, `model.safetensors` {size / 1e6:.1f} MB "
             "(BF16 weights, F32 `e_score_correction_bias`)")
    L.append(f"- vocab {cfg.vocab_size} (own byte-level BPE, GPT-2 byte map and regex), "
             f"hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers "
             f"(first {cfg.first_k_dense_replace} dense, intermediate {cfg.intermediate_size})")
    L.append(f"- MLA: {cfg.num_attention_heads} heads, q_lora_rank {cfg.q_lora_rank}, "
             f"kv_lora_rank {cfg.kv_lora_rank}, qk_nope {cfg.qk_nope_head_dim}, "
             f"qk_rope {cfg.qk_rope_head_dim}, v {cfg.v_head_dim}; RoPE theta "
             f"{cfg.rope_theta:g} on interleaved pairs, no rope_scaling")
    L.append(f"- MoE: {cfg.n_routed_experts} routed experts (moe_intermediate "
             f"{cfg.moe_intermediate_size}) + {cfg.n_shared_experts} shared, top-"
             f"{cfg.num_experts_per_tok}, n_group {cfg.n_group}, topk_group {cfg.topk_group}, "
             f"sigmoid scoring, noaux_tc, norm_topk_prob, routed_scaling_factor "
             f"{cfg.routed_scaling_factor}")
    L.append("- special tokens: 0 `<｜begin▁of▁sentence｜>` (BOS), 1 `<｜end▁of▁sentence｜>` "
             "(EOS), 2 `<｜User｜>`, 3 `<｜Assistant｜>`; DeepSeek-V3-style chat template\n")
    L.append("## How it was trained\n")
    L.append(f"Data: {len(files)} fortune files ({', '.join(files)}); each fortune is one "
             "document `BOS text EOS`; about a third of the short ones also appear as a chat "
             "exchange `BOS <｜User｜>prompt<｜Assistant｜>fortune EOS` with prompts such as "
             "\"Tell me something.\" or \"Tell me something about computers.\" "
             f"Every 40th fortune is held out. {n_tokens} training tokens in {n_docs} "
             f"documents ({n_chat} chat).\n")
    L.append(f"Training: AdamW (lr {args.lr}, betas 0.9/0.95, weight decay 0.1, warmup "
             f"{args.warmup}, cosine to 10%), batch {args.batch} x {args.seq_len} tokens, "
             f"{total} steps, {train_s / 60:.1f} min on {args.threads} CPU threads, fp32. "
             "Sequences start at document starts. The router bias follows DeepSeek-V3's "
             f"aux-loss-free rule after every step: bias += {args.bias_gamma} * "
             "sign(mean_load - load_e); no auxiliary loss, so the load stays visibly skewed.\n")
    L.append("Exact command (deterministic for a given seed, step count and thread count):\n")
    L.append(f"```\n{cmd}\n```\n")
    L.append(f"Settings: {', '.join(defaults_changed)}.\n")
    L.append(f"## Result\n")
    L.append(f"Held-out loss (bf16 checkpoint): **{held_loss:.3f}** nats/token "
             f"(perplexity {math.exp(held_loss):.1f}); training-sample loss {train_loss:.3f}. "
             "Loss curve (`training_log.txt` has every 10th step):\n")
    L.append("```\n" + log_lines[0] + "\n" + "\n".join(pick) + "\n```\n")
    L.append("## Samples\n")
    for title, text in samples:
        L.append(f"{title}:\n")
        L.append("```\n" + text.replace("```", "'''") + "\n```\n")
    L.append("## Greedy check\n")
    L.append("`python3 tools/demo_greedy.py models/demo --prompt-ids "
             f"{','.join(map(str, check_prompt))}` prints the greedy continuation of "
             "\"The meaning of life is\" (BOS included), computed in fp32 over the bf16 "
             f"weights:\n\n```\n{','.join(map(str, check_out))}\n```\n")
    L.append("## Router load on held-out text\n")
    L.append("Fraction of routed token slots (top-k choices) per expert, per MoE layer, "
             "on the held-out fortunes; uniform would be "
             f"{1 / cfg.n_routed_experts:.4f}.\n")
    hdr = "| layer | " + " | ".join(f"e{e}" for e in range(cfg.n_routed_experts)) + \
        " | max/mean | min/mean |"
    L.append(hdr)
    L.append("|" + "---|" * (cfg.n_routed_experts + 3))
    for i, fr in enumerate(stats):
        li = cfg.first_k_dense_replace + i
        mean = 1 / cfg.n_routed_experts
        L.append(f"| {li} | " + " | ".join(f"{v:.3f}" for v in fr) +
                 f" | {max(fr) / mean:.2f} | {min(fr) / mean:.2f} |")
    L.append("")
    L.append("## Licence\n")
    L.append("Model weights and tokenizer: BSD-3-Clause, the licence of the training text "
             "(see LICENSE-DATA.md).\n")
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L))


def write_license(out, files, n_fortunes):
    text = f"""# Training data and licence

## Where the text came from

The demo model was trained only on the fortune-cookie text shipped by Debian's
`fortunes` and `fortunes-min` packages (fortune-mod 1.99.1, Debian version 1:1.99.1-7.3),
read from their data directory (`/usr/share/games/fortunes`). The `*.dat` index files and
`*.u8` links were skipped, the `%` separators stripped, and `ascii-art` (drawings, not
prose) left out. Files used ({len(files)}, {n_fortunes} fortunes):
{', '.join(files)}.

`fortunes-min` provides `fortunes`, `literature` and `riddles`; `fortunes` provides the
rest. No offensive-fortunes package (`fortunes-off`) was used.

## Its copyright and licence

Per `/usr/share/doc/fortunes/copyright` (identical for `fortunes-min`): the original author
of fortune is Ken Arnold; the Linux port was done by Florian LaRoche, the sources and
fortune files modified by Amy A. Lewis; the `cookie` data file is from Karl Lehenbauer's
postings to alt.sources; upstream and Debian packaging maintained by Pascal Hakim and Joshua
Kwan. The package falls under the BSD copyright:

    Copyright (c) 1991 The Regents of the University of California.
    All rights reserved.

    Redistribution and use in source and binary forms, with or without
    modification, are permitted provided that the following conditions
    are met:
    1. Redistributions of source code must retain the above copyright
       notice, this list of conditions and the following disclaimer.
    2. Redistributions in binary form must reproduce the above copyright
       notice, this list of conditions and the following disclaimer in the
       documentation and/or other materials provided with the distribution.
    3. [ Deleted. see ftp://ftp.cs.berkeley.edu/pub/4bsd/README.Impt.License.Change ]
    4. Neither the name of the University nor the names of its contributors
       may be used to endorse or promote products derived from this software
       without specific prior written permission.

    THIS SOFTWARE IS PROVIDED BY THE REGENTS AND CONTRIBUTORS ``AS IS'' AND
    ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
    IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
    ARE DISCLAIMED.  IN NO EVENT SHALL THE REGENTS OR CONTRIBUTORS BE LIABLE
    FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
    DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS
    OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION)
    HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT
    LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY
    OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF
    SUCH DAMAGE.

The copyright file also reproduces the header of the "ATHEISM/FREETHOUGHT fortune cookie
file" (version 3.9, October 7, 2001; updates to Wayne Aiken); that file is not part of the
data set used here.

Individual fortunes are quotations and jokes collected over decades; attribution lines
(`-- Author`) are kept as they appear in the files.

## The model's licence

The model weights (`model.safetensors`), the tokenizer (`tokenizer.json`) and the other
files in this directory are a derived work of that text and are distributed under the same
BSD licence (3-clause form above). The training code (`tools/train_demo_model.py`) is part
of moeserve and under moeserve's licence.
"""
    with open(os.path.join(out, "LICENSE-DATA.md"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
