"""Call setup across NAT (issue #13 item 4), in one run, inside network namespaces made for the run (root):
the kiosk on a ward LAN behind NAT, the officer on the city network, mosquitto and coturn (the shipped
config/coturn/turnserver.conf) on central. See tests/netns.py for the topology.

For each officer kind (aiortc, Debian Chromium), ``--calls`` calls one after the other:
1. through TURN: central drops forwarded UDP between ward and city, the pair is checked to be relayed;
2. baseline, same run: UDP between ward and city let through and no TURN server (direct through the NAT).
Setup is accept → first frame as the officer measures it; median and p95 per mode, and the ratio of p95s.

    sudo .venv/bin/python bench/nat_call.py [--calls 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from tests import netns  # noqa: E402

MAX_CALLS = 100


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median_ms": round(statistics.median(values), 1), "p95_ms": round(pct(values, 0.95), 1),
            "max_ms": round(max(values), 1)}


def measure(calls: int) -> dict[str, Any]:
    results: dict[str, Any] = {"calls": calls}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        topo = netns.Topology()
        try:
            topo.up()
            secret = secrets.token_urlsafe(32)
            secret_file = work / "turn-secret"
            secret_file.write_text(secret + "\n", encoding="utf-8")
            secret_file.chmod(0o600)
            netns.start_central(topo, work / "central", secret)
            for officer in ("aiortc", "chromium"):
                for mode in ("turn", "direct"):
                    topo.open_direct_path(mode == "direct")
                    kiosk, off = netns.run_calls(topo, work, secret_file if mode == "turn" else None, officer,
                                                 calls, timeout=40.0, hold=0.3)
                    pairs = [k["pair"] for k in kiosk]
                    relayed = sum(1 for p in pairs if isinstance(p, dict) and "relay" in (p["local"], p["remote"]))
                    if mode == "turn" and relayed != len(kiosk):
                        raise SystemExit(f"{officer}: {len(kiosk) - relayed} TURN calls not relayed: {pairs}")
                    setups = [float(str(o["setup_ms"])) for o in off]
                    results[f"{officer}_{mode}"] = {**summary(setups), "relayed": relayed}
        finally:
            topo.close()
    for officer in ("aiortc", "chromium"):
        results[f"{officer}_p95_ratio_turn_over_direct"] = round(
            results[f"{officer}_turn"]["p95_ms"] / results[f"{officer}_direct"]["p95_ms"], 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help=f"Calls per officer kind and mode (1..{MAX_CALLS}).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    why = netns.unavailable()
    if why is not None:
        raise SystemExit(f"bench/nat_call.py: {why}")
    calls = max(1, min(args.calls, MAX_CALLS))
    results = measure(calls)
    if args.json:
        print(json.dumps(results))
        return
    print(f"calls across NAT, {calls} per officer kind and mode; kiosk behind NAT, officer in the city network")
    for officer in ("aiortc", "chromium"):
        for mode, label in (("turn", "via TURN (direct UDP dropped)"), ("direct", "direct through NAT, no TURN")):
            r = results[f"{officer}_{mode}"]
            print(f"{officer} officer, {label}: setup accept→first frame median {r['median_ms']:.0f} ms, "
                  f"p95 {r['p95_ms']:.0f} ms (max {r['max_ms']:.0f}); relayed {r['relayed']}/{r['n']}")
        print(f"{officer}: p95 via TURN / direct = {results[f'{officer}_p95_ratio_turn_over_direct']:.2f}")


if __name__ == "__main__":
    main()
