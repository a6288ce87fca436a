#!/usr/bin/env python3
"""Prints the greedy continuation of a prompt under the PyTorch reference forward of a
DeepSeek-V3 checkpoint written by train_demo_model.py (fp32 math over the stored bf16
weights, full recompute per token, positions 0..n-1). Used to check that moeserve's C++
runtime generates the same tokens:

  python3 tools/demo_greedy.py models/demo --prompt-ids 0,464,2345 --max-tokens 20
  python3 tools/demo_greedy.py models/demo --prompt "The meaning of life is"
  python3 tools/demo_greedy.py models/demo --chat "Tell me something."

Output: one JSON line {"prompt_ids": [...], "token_ids": [...], "text": "..."}.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_model as dm  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--prompt-ids", help="comma-separated token ids, used as given")
    g.add_argument("--prompt", help="text; BOS is prepended")
    g.add_argument("--chat", help="one user message, rendered with the chat template")
    ap.add_argument("--max-tokens", type=int, default=20)
    ap.add_argument("--stop-at-eos", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--logprobs", type=int, default=0,
                    help="also print the top-K log-probabilities at each generated step")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = dm.load_model(args.model_dir)
    tok = dm.ByteLevelBPE.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    if args.prompt_ids is not None:
        ids = [int(x) for x in args.prompt_ids.split(",") if x.strip()]
    elif args.prompt is not None:
        ids = tok.encode(args.prompt)
    else:
        ids = tok.encode(f"{dm.USER}{args.chat}{dm.ASSISTANT}")
    stop = (model.cfg.eos_token_id,) if args.stop_at_eos else ()
    out = dm.greedy(model, ids, args.max_tokens, stop_ids=stop)
    result = {"prompt_ids": ids, "token_ids": out, "text": tok.decode(out)}
    if args.logprobs > 0:
        with torch.no_grad():
            logits = model(torch.tensor([ids + out[:-1]]))[0, len(ids) - 1:]
            lp = torch.log_softmax(logits, dim=-1)
            top = lp.topk(args.logprobs, dim=-1)
        result["logprobs"] = [[[int(i), round(float(v), 5)] for v, i in zip(tv, ti)]
                              for tv, ti in zip(top.values, top.indices)]
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
