#!/usr/bin/env python3
"""Memory soak of `moeserve serve`: drives a real server over HTTP with mixed traffic at a fixed
concurrency and samples its resident memory (VmRSS of /proc/PID/status).

Traffic: completions and chat completions, streaming and not, prompt lengths from a few tokens
to several hundred, max_tokens 1-64, and about half the prompts starting with one of a few
shared prefixes (prefix-cache hits) while the rest are random (misses). Every response is read
to the end and checked for status 200.

Stops after --requests requests or --duration seconds (whichever is given). Writes one CSV row
per sample (--csv) and prints a summary. With --max-growth-mib the exit status is 1 when
resident memory grew by more than that over the second half of the run (from the sample at
half the requests or half the time to the last one) — the CI check that a leak or an
unbounded cache fails the build (tests/server/CMakeLists.txt, label "soak").

Only the Python standard library is used.
"""
import argparse
import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

WORDS = ("the of and to in is was for on that with as by it at from his an were are which "
         "this be or has had but not its also first one new their after two who they been "
         "more other all into time city during can most over between three made state may "
         "when some world there only such where these any known used many would than year").split()


def rss_kib(pid):
    """(VmRSS, RssAnon) in KiB: all resident memory, and the part not backed by files (heap,
    stacks, anonymous mappings; the mmap'd weights are file-backed)."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:")):
                values[line.split(":")[0]] = int(line.split()[1])
    return values.get("VmRSS", 0), values.get("RssAnon", 0)


def random_text(rng, num_words):
    return " ".join(rng.choice(WORDS) for _ in range(num_words))


class Traffic:
    """Builds request bodies; deterministic for a given seed."""

    def __init__(self, seed, model):
        self.model = model
        rng = random.Random(seed)
        self.prefixes = [random_text(rng, rng.randint(40, 200)) for _ in range(4)]

    def body(self, rng):
        if rng.random() < 0.5:
            prompt = rng.choice(self.prefixes) + " " + random_text(rng, rng.randint(1, 60))
        else:
            prompt = random_text(rng, rng.choice((rng.randint(2, 30), rng.randint(30, 300))))
        stream = rng.random() < 0.5
        body = {"model": self.model, "max_tokens": rng.randint(1, 64), "stream": stream,
                "temperature": rng.choice((0.0, 0.8)), "seed": rng.randint(0, 1 << 30)}
        if rng.random() < 0.5:
            body["prompt"] = prompt
            path = "/v1/completions"
        else:
            body["messages"] = [{"role": "user", "content": prompt}]
            path = "/v1/chat/completions"
        return path, body


def one_request(port, path, body, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            return f"{path}: HTTP {resp.status}: {data[:200]!r}"
        if body["stream"] and not data.rstrip().endswith(b"data: [DONE]"):
            return f"{path}: stream did not end with [DONE]"
        return None
    finally:
        conn.close()


def start_server(args):
    cmd = [args.moeserve, "serve", args.model, "--port", "0", "--max-num-seqs",
           str(args.max_num_seqs), "--kv-cache-memory", args.kv_cache_memory,
           "--served-model-name", "soak", "--seed", "1"] + args.serve_arg
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + args.startup_timeout
    log = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        log.append(line)
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        sys.exit("rss_soak: the server did not start:\n" + "".join(log[-20:]))
    # Keep draining the log so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, port


def metrics_lines(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return [l for l in text.splitlines() if l.startswith("moeserve:")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moeserve", required=True, help="the moeserve binary")
    ap.add_argument("--model", required=True, help="checkpoint directory")
    ap.add_argument("--requests", type=int, help="stop after this many requests")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-num-seqs", type=int, default=64)
    ap.add_argument("--kv-cache-memory", default="160MiB")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra argument for `moeserve serve` (repeatable)")
    ap.add_argument("--sample-interval", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--csv",
                    help="write samples here (seconds,requests_done,rss_kib,rss_anon_kib)")
    ap.add_argument("--max-growth-mib", type=float,
                    help="fail when RSS grew by more than this over the second half")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--request-timeout", type=float, default=300)
    ap.add_argument("--startup-timeout", type=float, default=300)
    args = ap.parse_args()
    if (args.requests is None) == (args.duration is None):
        ap.error("give exactly one of --requests and --duration")

    proc, port = start_server(args)
    traffic = Traffic(args.seed, "soak")
    lock = threading.Lock()
    state = {"issued": 0, "done": 0, "errors": []}
    t0 = time.time()

    def take():
        with lock:
            if state["errors"]:
                return None
            if args.requests is not None and state["issued"] >= args.requests:
                return None
            if args.duration is not None and time.time() - t0 >= args.duration:
                return None
            state["issued"] += 1
            return state["issued"]

    def worker():
        while True:
            i = take()
            if i is None:
                return
            rng = random.Random(args.seed * 1000003 + i)
            path, body = traffic.body(rng)
            try:
                err = one_request(port, path, body, args.request_timeout)
            except Exception as e:  # noqa: BLE001 - any failure of the exchange counts
                err = f"{path}: {e!r}"
            with lock:
                state["done"] += 1
                if err:
                    state["errors"].append(err)

    samples = []
    stop = threading.Event()

    def sampler():
        while True:
            with lock:
                done = state["done"]
            samples.append((time.time() - t0, done, *rss_kib(proc.pid)))
            if stop.wait(args.sample_interval):
                with lock:
                    done = state["done"]
                samples.append((time.time() - t0, done, *rss_kib(proc.pid)))
                return

    sampler_thread = threading.Thread(target=sampler)
    sampler_thread.start()
    workers = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for w in workers:
        w.start()
    last_print = 0.0
    while any(w.is_alive() for w in workers):
        time.sleep(0.5)
        if samples and time.time() - last_print >= 30:
            last_print = time.time()
            t, done, rss, _ = samples[-1]
            print(f"rss_soak: {t:7.1f} s  {done:6d} requests  RSS {rss / 1024:8.1f} MiB",
                  file=sys.stderr, flush=True)
        if proc.poll() is not None:
            break
    for w in workers:
        w.join()
    stop.set()
    sampler_thread.join()
    server_lines = metrics_lines(port) if proc.poll() is None else []
    exit_code = proc.poll()
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()

    if args.csv:
        with open(args.csv, "w") as f:
            f.write("seconds,requests_done,rss_kib,rss_anon_kib\n")
            for t, done, rss, anon in samples:
                f.write(f"{t:.2f},{done},{rss},{anon}\n")
    if exit_code is not None:
        print(f"rss_soak: FAIL: the server exited with status {exit_code}")
        return 1
    if state["errors"]:
        print(f"rss_soak: FAIL: {len(state['errors'])} failed requests, first: "
              f"{state['errors'][0]}")
        return 1

    # The second half: from the first sample past half the requests (or half the time).
    if args.requests is not None:
        mid = next(s for s in samples if s[1] >= args.requests // 2)
    else:
        mid = next(s for s in samples if s[0] >= samples[-1][0] / 2)
    first, last = samples[0], samples[-1]
    peak = max(s[2] for s in samples)
    growth_mib = (last[2] - mid[2]) / 1024
    print(f"rss_soak: {last[1]} requests in {last[0]:.0f} s at concurrency {args.concurrency}; "
          f"RSS start {first[2] / 1024:.1f} MiB, at half {mid[2] / 1024:.1f} MiB, "
          f"end {last[2] / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB; second-half growth "
          f"{growth_mib:+.1f} MiB ({100 * growth_mib * 1024 / mid[2]:+.1f}%); anonymous "
          f"(RssAnon) at half {mid[3] / 1024:.1f} MiB, end {last[3] / 1024:.1f} MiB")
    if args.duration is not None:
        # The criterion for a 30-minute soak: growth over its last 20 minutes.
        third = next(s for s in samples if s[0] >= samples[-1][0] / 3)
        print(f"rss_soak: growth over the last two thirds (from {third[0]:.0f} s): "
              f"{(last[2] - third[2]) / 1024:+.1f} MiB ({100 * (last[2] - third[2]) / third[2]:+.2f}%)")
    for line in server_lines:
        print(f"rss_soak: {line}")
    if args.max_growth_mib is not None and growth_mib > args.max_growth_mib:
        print(f"rss_soak: FAIL: resident memory grew {growth_mib:.1f} MiB over the second half "
              f"(bound {args.max_growth_mib} MiB): a leak or a cache without a bound")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
