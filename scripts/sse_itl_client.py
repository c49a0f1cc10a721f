#!/usr/bin/env python3
"""A `vllm bench serve`-style streaming client, for the probe's accuracy benchmark.

Sends one streaming completion request and prints, one per line, the time.perf_counter_ns()
at which each SSE data line with content arrived. Standard library only (http.client), so it
runs wherever Python 3 does.

usage: sse_itl_client.py HOST PORT MODEL MAX_TOKENS
"""
import http.client
import json
import sys
import time


def main() -> int:
    host, port, model, max_tokens = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    body = json.dumps({
        "model": model, "prompt": "benchmark", "max_tokens": max_tokens,
        "min_tokens": max_tokens, "ignore_eos": True, "stream": True,
    })
    connection = http.client.HTTPConnection(host, port, timeout=120)
    connection.request("POST", "/v1/completions", body=body,
                       headers={"content-type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        print(f"HTTP {response.status}", file=sys.stderr)
        return 1
    arrivals = []
    while True:
        line = response.readline()
        if not line:
            break
        now = time.perf_counter_ns()
        if not line.startswith(b"data: "):
            continue
        payload = line[6:].strip()
        if payload == b"[DONE]":
            break
        chunk = json.loads(payload)
        if any(choice.get("text") for choice in chunk.get("choices", [])):
            arrivals.append(now)
    print("\n".join(str(t) for t in arrivals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
