"""Bounded load test of the HTTP API on loopback.

A real uvicorn server (``shopsense serve``) in a subprocess over an engine home built
from a slice of Amazon Office (real products and purchase histories); a load
generator of httpx async clients sends a mix of searches (real titles, shortened),
recommendations and event posts at 1, 8 and 32 concurrent clients for a fixed time
each. Reports throughput, p50/p99 latency, 5xx and other errors, and checks that no
event was lost (store count after == before + events acknowledged). The peer, run
in the same command, is the same mix called in-process on the engine by one client:
the ratio shows what HTTP, auth, validation and JSON cost.

    python bench/serve.py                 # ~3 minutes on a quiet 2-core machine
    python bench/serve.py --seconds 5 --users 40   # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def build_home(home: Path, users: int) -> None:
    from shopsense.datasets import load_office_events, load_office_products
    from shopsense.engine import Engine

    events = load_office_events("purchase", limit_users=users)
    used = {e.item_id for e in events}
    with Engine(home) as eng:
        if eng.store.count_products() == 0:
            eng.add_products([p for p in load_office_products() if p.id in used])
            eng.add_events(events)
        eng.build_index()
        try:
            eng.train()
        except ImportError as exc:  # recommend capability not in this tree
            print(f"recommenders not trained: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mix:
    """What one simulated client does next: 50% search, 25% recommend, 25% an event post."""

    def __init__(self, titles: list[str], users: list[str], items: list[str], rec_path: str,
                 seed: int) -> None:
        self.titles, self.users, self.items, self.rec_path = titles, users, items, rec_path
        self.rng = random.Random(seed)

    def next(self) -> tuple[str, str, str, Any]:
        r = self.rng.random()
        if r < 0.5:
            words = self.rng.choice(self.titles).split()[:3]
            return "search", "GET", "/search", {"q": " ".join(words), "k": 10}
        if r < 0.75:
            if self.rec_path == "recommend":
                return "recommend", "GET", f"/users/{self.rng.choice(self.users)}/recommendations", {"k": 10}
            return "recommend", "GET", f"/items/{self.rng.choice(self.items)}/complements", {"k": 10}
        n = self.rng.randint(1, 5)
        uid = self.rng.choice(self.users)
        ev = [{"user_id": uid, "item_id": self.rng.choice(self.items),
               "type": self.rng.choice(["click", "view", "add_to_cart"]),
               "session_id": f"load-{self.rng.getrandbits(48):x}", "timestamp": time.time()}
              for _ in range(n)]
        return "events", "POST", "/events", ev


async def run_level(base: str, key: str, clients: int, seconds: float, mix_args: dict,
                    seed: int) -> dict[str, Any]:
    import httpx

    lat: dict[str, list[float]] = {"search": [], "recommend": [], "events": []}
    all_lat: list[float] = []
    codes: dict[int, int] = {}
    sent_events = acked_events = stored_events = 0
    stop = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal sent_events, acked_events, stored_events
        mix = Mix(**mix_args, seed=seed * 1000 + i)
        async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60) as c:
            while time.perf_counter() < stop:
                kind, method, path, payload = mix.next()
                t0 = time.perf_counter()
                try:
                    if method == "GET":
                        r = await c.get(path, params=payload)
                    else:
                        sent_events += len(payload)
                        r = await c.post(path, json=payload)
                    status = r.status_code
                except httpx.HTTPError:
                    status = -1
                dt = time.perf_counter() - t0
                codes[status] = codes.get(status, 0) + 1
                lat[kind].append(dt)
                all_lat.append(dt)
                if kind == "events" and status == 200:
                    body = r.json()
                    acked_events += body["received"]
                    stored_events += body["stored"]

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    a = np.asarray(all_lat) * 1000
    out: dict[str, Any] = {
        "requests": len(a), "throughput_rps": len(a) / wall,
        "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
        "errors_5xx": sum(n for s, n in codes.items() if s >= 500),
        "errors_other": sum(n for s, n in codes.items() if s < 200 or 300 <= s < 500),
        "events_sent": sent_events, "events_acked": acked_events, "events_stored": stored_events,
    }
    for kind, xs in lat.items():
        if xs:
            out[f"{kind}_p50_ms"] = float(np.percentile(np.asarray(xs) * 1000, 50))
            out[f"{kind}_p99_ms"] = float(np.percentile(np.asarray(xs) * 1000, 99))
    return out


def direct_peer(home: Path, mix_args: dict, seconds: float) -> dict[str, Any]:
    """The same mix, one client, calling the engine in this process (no HTTP)."""
    from shopsense.engine import Engine

    eng = Engine(home)
    mix = Mix(**mix_args, seed=7)
    lat: list[float] = []
    sent = 0
    # load the models before timing, as the server does in its lifespan
    eng.search("pen", k=10)
    if mix.rec_path == "recommend":
        eng.recommend(mix.users[0], k=10)
    eng.complements(mix.items[0], k=10)
    stop = time.perf_counter() + seconds
    t_start = time.perf_counter()
    while time.perf_counter() < stop:
        kind, _, path, payload = mix.next()
        t0 = time.perf_counter()
        if kind == "search":
            eng.search(payload["q"], k=10)
        elif kind == "recommend":
            ident = path.split("/")[2]
            if mix.rec_path == "recommend":
                eng.recommend(ident, k=10)
            else:
                eng.complements(ident, k=10)
        else:
            sent += eng.add_events(payload)
        lat.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start
    eng.close()
    a = np.asarray(lat) * 1000
    return {"requests": len(a), "throughput_rps": len(a) / wall,
            "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "errors_5xx": 0, "events_stored": sent}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100, help="Office users in the slice")
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of each level")
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--home", type=Path, default=None, help="reuse/build the engine home here")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import httpx

    from shopsense.eval import bar_chart, meta, print_table, write_json
    from shopsense.serve import KeyStore

    tmp = None
    home = args.home
    if home is None:
        tmp = Path(tempfile.mkdtemp(prefix="shopsense-bench-serve-"))
        home = tmp / "home"
    t0 = time.time()
    build_home(home, args.users)
    print(f"home ready in {time.time() - t0:.0f}s: {home}")
    # a server copy of the home, so the in-process peer's writes do not count in the server's store
    peer_home = home.parent / (home.name + "-peer")
    shutil.rmtree(peer_home, ignore_errors=True)
    shutil.copytree(home, peer_home)

    from shopsense.engine import Engine

    with Engine(home) as eng:
        cat = eng.catalog()
        titles = [p.title for p in cat.products]
        users = sorted(set(eng.store.events().user_id.tolist()))
        items = list(cat.ids)
    key = KeyStore(home / "api_keys.json").create("write", name="bench")
    port = free_port()
    env = {**os.environ, "SHOPSENSE_RATE_LIMIT_PER_MINUTE": "100000000"}
    log = open(home.parent / "server.log", "w")  # noqa: SIM115 - outlives the block, closed in finally
    proc = subprocess.Popen([sys.executable, "-c", "from shopsense.cli import main; main()", "serve",
                             "--home", str(home), "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        probe = httpx.get(f"{base}/users/{users[0]}/recommendations", timeout=120)
        rec_path = "recommend" if probe.status_code == 200 else "complements"
        mix_args = {"titles": titles, "users": users, "items": items, "rec_path": rec_path}
        events_before = httpx.get(base + "/health").json()["events"]
        systems: dict[str, dict[str, Any]] = {}
        for level in (int(x) for x in args.levels.split(",")):
            r = asyncio.run(run_level(base, key, level, args.seconds, mix_args, seed=level))
            systems[f"http-c{level}"] = r
            print(f"c={level}: {r['throughput_rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms, 5xx {r['errors_5xx']}")
        events_after = httpx.get(base + "/health").json()["events"]
        metrics = httpx.get(base + "/metrics").text
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    acked = sum(s["events_acked"] for s in systems.values())
    stored = sum(s["events_stored"] for s in systems.values())
    sent = sum(s["events_sent"] for s in systems.values())
    lost = sent - (events_after - events_before)
    cache_hits = sum(float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith('shopsense_cache_total{result="hit"}'))
    print(f"events: sent {sent}, acknowledged {acked}, newly stored {stored}, store grew by "
          f"{events_after - events_before}; lost {lost}")
    systems["engine-direct-c1"] = direct_peer(peer_home, mix_args, args.seconds)
    dataset = f"amazon-office-{args.users}u"
    results = {dataset: systems}
    shown = ("throughput_rps", "p50_ms", "p99_ms", "errors_5xx", "events_stored")
    print_table({dataset: {k: {m: v[m] for m in shown if m in v} for k, v in systems.items()}},
                title="serve load test", peer="engine-direct-c1")
    write_json(results, args.out, meta(
        "loopback load test: uvicorn subprocess (1 worker) + httpx async clients; mix 50% "
        "GET /search (first 3 words of a real title), 25% recommendations "
        f"({'GET /users/{id}/recommendations' if rec_path == 'recommend' else 'GET /items/{id}/complements: recommend capability absent'}), "
        "25% POST /events (1-5 events); each level runs --seconds; peer: same mix in-process, 1 client",
        events_sent=sent, events_acknowledged=acked, events_store_delta=events_after - events_before,
        events_lost=lost, cache_hits=cache_hits, recommend_endpoint=rec_path,
        products=len(items), users=len(users), seconds_per_level=args.seconds,
        load_average_at_end=[round(x, 1) for x in os.getloadavg()]))
    bar_chart({dataset: {k: {"throughput_rps": s["throughput_rps"]} for k, s in systems.items()}},
              "throughput_rps", args.out.with_suffix(".png"), title="API throughput (req/s)")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    if lost != 0 or any(s.get("errors_5xx") for s in systems.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
