"""The load generator of make bench, run in a process of its own (it shares neither the
server's nor the bench's event loop): `clients` concurrent connections,
each sending one request after another for `seconds`; prints one JSON line with requests/s,
p50/p99 latency and errors (status codes, and connection failures by exception name).

    python -m bench.hammer HOST METHOD PATH --clients 100 --seconds 10 [--header K:V]

It imports neither Django nor the project: only the HTTP client and the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import httpx2


async def hammer(host, method, path, headers, clients, seconds, warmup=1.0) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    body = b"{}" if method == "POST" else None
    async with httpx2.AsyncClient(
        base_url=f"http://{host}",
        headers={**headers, "Content-Type": "application/json"},
        timeout=60,
        limits=limits,
    ) as client:
        began = time.perf_counter()
        measure_from = began + warmup  # connections are opened before the figures count
        stop = measure_from + seconds

        async def one_client():
            while (now := time.perf_counter()) < stop:
                try:
                    response = await client.request(method, path, content=body)
                    failed = str(response.status_code) if response.status_code >= 400 else None
                except httpx2.HTTPError as exc:
                    failed = type(exc).__name__
                if now >= measure_from:
                    latencies.append(time.perf_counter() - now)
                    if failed:
                        errors[failed] = errors.get(failed, 0) + 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1),
        "errors": errors,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("method", choices=["GET", "POST"])
    parser.add_argument("path")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    result = asyncio.run(
        hammer(args.host, args.method, args.path, headers, args.clients, args.seconds)
    )
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
