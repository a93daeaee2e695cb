#!/usr/bin/env python3
"""Soak: mixed load against one sigil for SOAK_SECONDS (600), with Deployments going on.

Load (wrk, CONNS connections, a Lua script picking a request at random each time): GETs of
public assets of several sizes, single and multiple ranges, conditional GETs, signed
GETs and signed form POSTs of a protected asset, unsigned protected requests (403), a private
asset (403), an unknown path (404). Meanwhile a deployer thread alternates the Environment
between two Builds every DEPLOY_EVERY seconds (each deploy a new Build), and a checker thread
fetches the page that differs between them and asserts it is exactly one of the two versions
(and sends HEAD requests, which wrk's parser cannot follow).
RSS (RssAnon) is sampled every 10 s. Passes when wrk saw no 5xx and no socket errors, every
deploy succeeded, every check matched, and memory is flat (the last minute's RSS within 10% +
8 MiB of the second minute's). Run with benches/soak.sh (builds in release, installs wrk).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the same server harness, API client and ports)
from compare import BIN, PORTS, TOKEN, Sigil, api, upload, wait_build  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
CONNS = int(os.environ.get("CONNS", "32"))
DEPLOY_EVERY = float(os.environ.get("DEPLOY_EVERY", "2"))


def sign(url, params=()):
    cmd = [BIN, "signature", "compute", "--url", url, "--token", TOKEN]
    for k, v in params:
        cmd += ["--param", f"{k}={v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return re.search(r"^signature (\S+)$", out, re.M).group(1)


def lua_string(s):
    return "[==[" + s + "]==]"


def main():
    work = tempfile.mkdtemp(prefix="sigil-soak.")
    # Request Log lines on (written to the Logs resource, as in production); the access log
    # off (stderr is a pipe nobody reads here). compare.Sigil pins sigil to CPU 0; wrk runs on
    # CPU 1, as in the comparison.
    sigil = Sigil(os.path.join(work, "data"), extra=["--access-log", "false"], logs=True)
    try:
        svc = api("POST", "/Services", [("UniqueName", "soak"), ("FriendlyName", "soak")])["sid"]
        env = api("POST", f"/Services/{svc}/Environments", [("UniqueName", "production")])
        domain = env["domain_name"]
        port = PORTS["http"]
        host = f"{domain}:{port}"
        files = {"/1k.bin": os.urandom(1024), "/64k.bin": os.urandom(65536),
                 "/1m.bin": os.urandom(1 << 20), "/page.html": b"<p>" + b"soak " * 2000 + b"</p>"}
        common = []
        for path, content in files.items():
            a = api("POST", f"/Services/{svc}/Assets", [("FriendlyName", path.strip("/"))])["sid"]
            common.append(upload(svc, a, path, content)["sid"])
        for path, vis in (("/prot.bin", "protected"), ("/priv.bin", "private")):
            a = api("POST", f"/Services/{svc}/Assets", [("FriendlyName", path.strip("/"))])["sid"]
            common.append(upload(svc, a, path, os.urandom(2048), visibility=vis)["sid"])
        flip = api("POST", f"/Services/{svc}/Assets", [("FriendlyName", "version")])["sid"]
        versions = {}
        for name in ("A", "B"):
            body = (f"version {name} " * 500).encode()
            versions[body] = upload(svc, flip, "/version.txt", body)["sid"]

        def deploy(version_sid):
            b = api("POST", f"/Services/{svc}/Builds",
                    [("AssetVersions", v) for v in common + [version_sid]])["sid"]
            wait_build(svc, b)
            api("POST", f"/Services/{svc}/Environments/{env['sid']}/Deployments", [("BuildSid", b)])

        deploy(next(iter(versions.values())))

        base = f"http://{host}"
        prot_sig = sign(f"{base}/prot.bin")
        form = [("CallSid", "CA" + "0" * 32), ("From", "+15551234567"), ("Body", "soak test")]
        form_sig = sign(f"{base}/prot.bin", form)
        form_body = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in form)
        etag = None
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/1k.bin",
                                                           headers={"Host": host})) as r:
            etag = r.headers["ETag"]
        reqs = [
            ("GET", "/1k.bin", {}, None), ("GET", "/1k.bin", {}, None), ("GET", "/64k.bin", {}, None),
            ("GET", "/1m.bin", {}, None),
            ("GET", "/page.html", {"Accept-Encoding": "br, gzip"}, None),
            ("GET", "/1m.bin", {"Range": "bytes=1000-2999"}, None),
            ("GET", "/1m.bin", {"Range": "bytes=-500"}, None),
            ("GET", "/64k.bin", {"Range": "bytes=0-9,100-199"}, None),
            ("GET", "/1k.bin", {"If-None-Match": etag}, None),
            ("GET", "/prot.bin", {"X-Twilio-Signature": prot_sig}, None),
            ("POST", "/prot.bin", {"X-Twilio-Signature": form_sig,
                                   "Content-Type": "application/x-www-form-urlencoded"}, form_body),
            ("GET", "/prot.bin", {}, None), ("GET", "/priv.bin", {}, None),
            ("GET", "/nothing-here", {}, None), ("GET", "/version.txt", {}, None),
        ]
        lines = []
        for method, path, headers, body in reqs:
            h = ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}" for k, v in {"Host": host, **headers}.items())
            b = lua_string(body) if body else "nil"
            lines.append(f"  wrk.format({lua_string(method)}, {lua_string(path)}, {{{h}}}, {b}),")
        script = os.path.join(work, "mixed.lua")
        with open(script, "w") as f:
            f.write("local threads = {}\n"
                    "function setup(thread) table.insert(threads, thread) end\n"
                    "function init(args)\n  reqs = {\n" + "\n".join(lines) + "\n  }\n"
                    "  statuses = {}\nend\n"
                    "function request() return reqs[math.random(#reqs)] end\n"
                    "function response(status, headers, body)\n"
                    "  statuses[status] = (statuses[status] or 0) + 1\nend\n"
                    "function done(summary, latency, requests)\n"
                    "  local all = {}\n"
                    "  for _, t in ipairs(threads) do\n"
                    "    for s, n in pairs(t:get('statuses')) do all[s] = (all[s] or 0) + n end\n"
                    "  end\n"
                    "  for s, n in pairs(all) do io.write(string.format('status %d %d\\n', s, n)) end\n"
                    "end\n")

        stop = threading.Event()
        problems = []
        deploys = [0]
        checks = [0]

        def deployer():
            order = list(versions.values())
            i = 1
            while not stop.is_set():
                try:
                    deploy(order[i % 2])
                    deploys[0] += 1
                except Exception as e:  # noqa: BLE001 — every failure is reported
                    problems.append(f"deploy failed: {e!r}")
                i += 1
                stop.wait(DEPLOY_EVERY)

        def checker():
            while not stop.is_set():
                req = urllib.request.Request(f"http://127.0.0.1:{port}/version.txt", headers={"Host": host})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        got = r.read()
                    if got not in versions:
                        problems.append(f"/version.txt served {len(got)} bytes matching neither version")
                    # HEAD here rather than in wrk, whose parser waits for a HEAD response's body.
                    head = urllib.request.Request(f"http://127.0.0.1:{port}/1m.bin", method="HEAD",
                                                  headers={"Host": host})
                    with urllib.request.urlopen(head, timeout=10) as r:
                        if r.headers["Content-Length"] != str(1 << 20) or r.read():
                            problems.append("HEAD /1m.bin: wrong Content-Length or a body")
                    checks[0] += 1
                except Exception as e:  # noqa: BLE001
                    problems.append(f"check failed: {e!r}")
                stop.wait(0.05)

        rss = []

        def sampler():
            while not stop.is_set():
                rss.append((time.monotonic(), sigil.rss_anon_kib()))
                stop.wait(10)

        threads = [threading.Thread(target=t, daemon=True) for t in (deployer, checker, sampler)]
        for t in threads:
            t.start()
        started = time.monotonic()
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t2", f"-c{CONNS}", f"-d{SECONDS}s",
                              "--latency", "-s", script, f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, check=True).stdout
        elapsed = time.monotonic() - started
        stop.set()
        for t in threads:
            t.join(timeout=30)
        rss.append((time.monotonic(), sigil.rss_anon_kib()))

        if os.environ.get("SOAK_DEBUG"):
            print(out)
        statuses = {int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)}
        total = sum(statuses.values())
        errors = re.search(r"Socket errors: (.*)", out)
        fivexx = sum(n for s, n in statuses.items() if s >= 500)
        t0 = rss[0][0]
        minute2 = [k for t, k in rss if 60 <= t - t0 < 120] or [rss[0][1]]
        last = [k for t, k in rss if t - t0 >= elapsed - 60] or [rss[-1][1]]
        early, late, peak = max(minute2), max(last), max(k for _, k in rss)
        flat = late <= early * 1.10 + 8 * 1024
        print(f"soak: {elapsed:.0f} s, {total:,} requests ({total / elapsed:,.0f} req/s), "
              f"{CONNS} connections")
        print("statuses: " + ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items())))
        print(f"5xx: {fivexx}; socket errors: {errors.group(1) if errors else 'none'}")
        print(f"deployments during the run: {deploys[0]}; /version.txt checks: {checks[0]}")
        print(f"RSS (RssAnon) MiB: second minute {early / 1024:.1f}, last minute {late / 1024:.1f}, "
              f"peak {peak / 1024:.1f}; samples: " + " ".join(f"{k / 1024:.0f}" for _, k in rss))
        for p in problems[:20]:
            print("problem:", p)
        latency = re.search(r"99%\s+(\S+)", out)
        print(f"p99 latency: {latency.group(1) if latency else '?'}")
        ok = fivexx == 0 and not errors and not problems and flat and deploys[0] > 0
        print("soak:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        sigil.stop()
        if not os.environ.get("SOAK_DEBUG"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    compare.log(f"soak for {SECONDS} s")
    sys.exit(main())
