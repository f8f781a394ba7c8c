#!/usr/bin/env python3
"""Load test of `prime serve` on loopback: starts the server (the built-in demo model unless
--model), sends a fixed number of generation requests from a fixed number of client threads,
in several rounds (the first sizes the server's buffers for full batches), and prints for the
last round requests/s, p50/p99 latency and the server's peak memory, and its idle memory after
each round: it must come back to the level of the first (no growth from one load to the next).
Stops by itself. Standard library only; Linux (reads /proc).

    python3 tests/serve/load.py [--requests 64] [--clients 16] [--steps 64] [--device cpu]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PRIME = os.environ.get(
    "PRIME_BIN",
    os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "debug", "prime"),
)


def memory_kb(pid, field):
    """A field of /proc/PID/status (VmRSS: resident now, VmHWM: the peak), in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def generate(url, seed, steps):
    body = json.dumps({"prompt": "It was", "settings": {"steps": steps, "seed": seed}}).encode()
    request = urllib.request.Request(url + "/v1/generate", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        ending = json.loads(response.read())
    return time.perf_counter() - started, ending


def settle(pid, seconds=2.0):
    """The resident memory once the server has been idle for `seconds`."""
    time.sleep(seconds)
    return memory_kb(pid, "VmRSS")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="the server's --batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", help="a model folder (default: the built-in demo)")
    args = parser.parse_args()

    command = [PRIME, "serve", "--port", "0", "--device", args.device, "--batch", str(args.batch),
               "--queue", str(max(args.clients, 1))]
    if args.model:
        command += ["--model", args.model]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in server.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                print(line.strip())
                break
        if url is None:
            raise SystemExit("prime serve did not start")
        threading.Thread(target=server.stderr.read, daemon=True).start()

        generate(url, 0, args.steps)  # the first call sets up the device
        fresh = settle(server.pid)

        def load():
            """One round: (wall seconds, sorted latencies, endings)."""
            latencies, endings, lock = [], [], threading.Lock()
            seeds = iter(range(1, args.requests + 1))

            def client():
                while True:
                    with lock:
                        seed = next(seeds, None)
                    if seed is None:
                        return
                    seconds, ending = generate(url, seed, args.steps)
                    with lock:
                        latencies.append(seconds)
                        endings.append(ending)

            started = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if len(endings) != args.requests:
                raise SystemExit(f"{args.requests - len(endings)} requests failed")
            return time.perf_counter() - started, sorted(latencies), endings

        idle = []
        for _ in range(args.rounds):
            wall, latencies, endings = load()
            peak = memory_kb(server.pid, "VmHWM")
            idle.append(settle(server.pid))

        p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
        nfe = statistics.mean(e["outcome"]["nfe"] for e in endings)
        print(f"{args.requests} requests ({args.steps} steps each, mean NFE {nfe:.1f}) from {args.clients} clients "
              f"in {wall:.2f} s: {args.requests / wall:.2f} requests/s")
        print(f"latency p50 {statistics.median(latencies) * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms")
        print(f"server memory: {fresh / 1024:.1f} MiB idle after one request, peak {peak / 1024:.1f} MiB; idle after "
              f"each of {args.rounds} rounds: {', '.join(f'{kb / 1024:.1f}' for kb in idle)} MiB")
        if max(idle) > idle[0] * 1.10 + 8 * 1024:
            raise SystemExit("the server's idle memory grew from one round to the next")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
