#!/usr/bin/env python3
"""A bounded load generator for `ferry serve` on loopback (standard library only).

    serve_load.py BASE_URL KEY PATH BODIES_FILE CLIENTS

Sends each line of BODIES_FILE once as a POST to BASE_URL+PATH, from CLIENTS threads with one
keep-alive connection each, and prints one JSON line: requests, seconds, requests/s, p50 and
p99 latency in ms, and the count of each status. Loopback only: it refuses any other host.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main():
    base, key, path, bodies_file, clients = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    url = urllib.parse.urlparse(base)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("serve_load.py only targets loopback")
    with open(bodies_file, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]
    lock = threading.Lock()
    next_index = [0]
    latencies, statuses = [], {}
    headers = {"Content-Type": "application/json", "Authorization": "Token " + key}

    def worker():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(bodies):
                break
            started = time.perf_counter()
            conn.request("POST", path, body=bodies[i], headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3
    print(json.dumps({
        "clients": clients, "requests": len(latencies), "seconds": round(seconds, 3),
        "per_second": round(len(latencies) / seconds, 1), "p50_ms": round(pick(0.5), 2),
        "p99_ms": round(pick(0.99), 2), "statuses": statuses,
    }))


if __name__ == "__main__":
    main()
