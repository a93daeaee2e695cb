#!/usr/bin/env python3
"""The fleet benchmark's measurements (driven by benches/fleet.sh, which starts the fleet with
deploy/fleet-local.sh and sources its env file before running this).

Phases (each can be sized by an environment variable, defaults in brackets):

1. Deployment-to-visible. One Service + Environment. ROUNDS [50] rounds; each uploads ASSETS
   [100] new Asset Versions (~10 KiB each, random, ~1 MiB in all; one of them /marker.txt
   holding the round number), builds them, and deploys the Build through edge 1's proxied API.
   One thread per edge polls /marker.txt every POLL_MS [3] ms on a keep-alive connection for
   the whole phase; a sample is the time from the deploy's 201 reaching the client to the
   first response from that edge holding the new round's marker (0 when it came first).
   Every poll response must be 200 and the marker must never go backwards.
2. Cold edge. A second Service with BUILD_POOL [100] Builds x ASSETS assets (1 KiB each);
   ENV_COUNTS ["1000 10000"] Environments in all, Environment i deployed to Build i % pool,
   created by API_THREADS [8] threads against both control replicas. At each count a new
   `--role edge` process is spawned (own cache dir, free ports) and timed from spawn to
   (a) the first 200 for a site, (b) sigil_environments_served reaching the count; its
   VmRSS is read once the table is full.
3. req/s on cached content: a fresh `--role edge` and a `--role all` on the same stores, the
   same flags (access log and request logs off, as for load tests), each started on CPU 0
   (`taskset -c 0`, then `taskset -a -p -c 0 PID`), wrk on CPU 1; WRK_RUNS [3] alternating
   runs of WRK_SECONDS [10] s each against one public 1 KiB asset; medians and edge/all.

Prints a Markdown table at the end (and writes it to RESULTS if set).
"""

import concurrent.futures
import http.client
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

# ---- settings -------------------------------------------------------------------------------

ROUNDS = int(os.environ.get("ROUNDS", "50"))
ASSETS = int(os.environ.get("ASSETS", "100"))
POLL_MS = float(os.environ.get("POLL_MS", "3"))
BUILD_POOL = int(os.environ.get("BUILD_POOL", "100"))
ENV_COUNTS = [int(n) for n in os.environ.get("ENV_COUNTS", "1000 10000").split()]
API_THREADS = int(os.environ.get("API_THREADS", "8"))
WRK_RUNS = int(os.environ.get("WRK_RUNS", "3"))
WRK_SECONDS = int(os.environ.get("WRK_SECONDS", "10"))
WRK_CONNS = int(os.environ.get("WRK_CONNS", "64"))
PHASES = os.environ.get("PHASES", "visible cold rps").split()
VISIBLE_TIMEOUT = 30.0  # a round whose marker is not on every edge by then fails the run

SIGIL = os.environ["SIGIL"]
FLEET_DIR = os.environ["FLEET_DIR"]
DOMAIN = os.environ.get("SIGIL_DOMAIN", "localhost")
EDGE_HTTP = [int(p) for p in os.environ["FLEET_EDGE_HTTP_PORTS"].split()]
EDGE_ADMIN = [int(p) for p in os.environ["FLEET_EDGE_ADMIN_PORTS"].split()]
API_URLS = os.environ["FLEET_API_URLS"].split()
AUTH = (os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
EXTRA_PIDS = os.path.join(FLEET_DIR, "bench-pids")  # fleet.sh's trap kills these groups

T0 = time.monotonic()


def log(*a):
    print(f"[{time.monotonic() - T0:7.1f}s]", *a, file=sys.stderr, flush=True)


# ---- the API ----------------------------------------------------------------------------------


class ApiError(Exception):
    pass


class Api:
    """Twilio Serverless v1 over HTTP with Basic auth; one requests.Session per thread.

    `base` is a control replica's URL, or an edge's with `host` = serverless.{domain} (the
    edge proxies that name to its control plane)."""

    def __init__(self, base, host=None):
        self.base = base.rstrip("/") + "/v1"
        self.headers = {"Host": host} if host else {}
        self.local = threading.local()
        self.retries = 0  # 5xx / connection errors retried (reported: there should be none)

    def session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
            s.auth = AUTH
            s.headers.update(self.headers)
        return s

    def call(self, method, path, expect, **kw):
        """One request; a 5xx or a broken connection is retried once (and counted)."""
        for attempt in (0, 1):
            try:
                r = self.session().request(method, self.base + path, timeout=120, **kw)
            except requests.ConnectionError as e:
                if attempt:
                    raise ApiError(f"{method} {path}: {e}") from e
                self.retries += 1
                log(f"retrying {method} {path} after: {e}")
                continue
            if r.status_code >= 500 and not attempt:
                self.retries += 1
                log(f"retrying {method} {path} after {r.status_code}: {r.text[:200]}")
                continue
            if r.status_code != expect:
                raise ApiError(f"{method} {path}: {r.status_code} {r.text[:300]}")
            return r.json() if r.content else None
        raise AssertionError("unreachable")

    def post(self, path, form, expect=201):
        return self.call("POST", path, expect, data=form)

    def get(self, path):
        return self.call("GET", path, 200)

    def service(self, name):
        return self.post("/Services", [("UniqueName", name), ("FriendlyName", name)])["sid"]

    def environment(self, svc, name, suffix=None):
        form = [("UniqueName", name)] + ([("DomainSuffix", suffix)] if suffix else [])
        return self.post(f"/Services/{svc}/Environments", form)

    def asset(self, svc, name):
        return self.post(f"/Services/{svc}/Assets", [("FriendlyName", name)])["sid"]

    def version(self, svc, asset, path, content):
        """Uploads one public Asset Version (multipart: Path, Visibility, then Content)."""
        return self.call(
            "POST", f"/Services/{svc}/Assets/{asset}/Versions", 201,
            data=[("Path", path), ("Visibility", "public")],
            files={"Content": ("f", content, "application/octet-stream")},
        )["sid"]

    def build(self, svc, versions):
        """Creates a Build and waits until it is completed."""
        zb = self.post(f"/Services/{svc}/Builds", [("AssetVersions", v) for v in versions])["sid"]
        deadline = time.monotonic() + 120
        while True:
            status = self.get(f"/Services/{svc}/Builds/{zb}/Status")["status"]
            if status == "completed":
                return zb
            if status != "building" or time.monotonic() > deadline:
                raise ApiError(f"Build {zb}: status {status}")
            time.sleep(0.02)

    def deploy(self, svc, env, zb):
        return self.post(f"/Services/{svc}/Environments/{env}/Deployments", [("BuildSid", zb)])


# ---- small helpers ----------------------------------------------------------------------------


def pct(values, p):
    """Nearest-rank percentile (p99 of 50 samples is the largest)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[int(k)]


def ms(seconds):
    return f"{seconds * 1000:.1f}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(admin_port):
    """The admin listener's /metrics as {name: value} (unlabelled series only)."""
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def proc_status(pid, field):
    """A /proc/PID/status field in KiB (VmRSS, RssAnon, …)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    """utime + stime of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fleet_pids():
    """{name: pid} of the fleet's sigil processes, from fleet-local's pids file."""
    out = {}
    with open(os.path.join(FLEET_DIR, "pids")) as f:
        for line in f:
            name, pid = line.split()
            if name.startswith(("edge", "control")):
                out[name] = int(pid)
    return out


def get(port, host, path, timeout=5):
    """One GET on a new connection: (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# ---- extra sigil processes (cold edges, the req/s pair) ------------------------------------


class Server:
    """A `sigil serve` of our own, in its own process group (recorded for fleet.sh's trap),
    with its stdout banner timestamped and everything logged to FLEET_DIR/NAME.log."""

    def __init__(self, name, args, pin=False):
        self.name = name
        self.http, self.https, self.admin = free_port(), free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix=f"{name}.", dir=FLEET_DIR)
        cmd = [SIGIL, "serve", *args, "--data", self.dir, "--cache-dir", self.dir,
               "--http", f"127.0.0.1:{self.http}", "--https", f"127.0.0.1:{self.https}",
               "--admin", f"127.0.0.1:{self.admin}"]
        if pin:
            cmd = ["taskset", "-c", "0", *cmd]
        self.logfile = open(os.path.join(FLEET_DIR, f"{name}.log"), "w")
        self.ready_at = None
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.logfile, text=True, start_new_session=True)
        with open(EXTRA_PIDS, "a") as f:
            f.write(f"{self.proc.pid}\n")
        threading.Thread(target=self._banner, daemon=True).start()

    def _banner(self):
        for line in self.proc.stdout:
            self.logfile.write(line)
            self.logfile.flush()
            if line.startswith(("sigil: edge ready", "sigil: API listening")):
                self.ready_at = time.monotonic()

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while self.ready_at is None:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}: see {self.logfile.name}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: not ready within {timeout} s")
            time.sleep(0.01)

    def pin(self):
        """Every thread (runtime workers, blocking pool) on CPU 0."""
        subprocess.run(["taskset", "-a", "-p", "-c", "0", str(self.proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logfile.close()


EDGE_ARGS = ["--role", "edge", "--metadata", os.environ["SIGIL_METADATA"],
             "--blobs", os.environ["SIGIL_BLOBS"]]


# ---- phase 1: Deployment-to-visible ------------------------------------------------------------


class Poller(threading.Thread):
    """Polls one edge's /marker.txt on a keep-alive connection until stopped; records when
    each marker value was first seen, and every response that was not 200 (or went back)."""

    def __init__(self, index, port, domain):
        super().__init__(daemon=True)
        self.index, self.port, self.domain = index, port, domain
        self.first_seen = {}  # marker -> monotonic time its first response was read
        self.latest = -1
        self.requests = 0
        self.bad = []  # (time, what)
        self.stopping = threading.Event()
        self.changed = threading.Condition()

    def run(self):
        conn = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/marker.txt", headers={"Host": self.domain})
                r = conn.getresponse()
                body = r.read()
                now = time.monotonic()
                self.requests += 1
                if r.status != 200:
                    self.bad.append((now, f"status {r.status}: {body[:100]!r}"))
                else:
                    value = int(body)
                    if value < self.latest:
                        self.bad.append((now, f"marker went back from {self.latest} to {value}"))
                    elif value > self.latest:
                        with self.changed:
                            self.latest = value
                            self.first_seen.setdefault(value, now)
                            self.changed.notify_all()
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.bad.append((time.monotonic(), f"{type(e).__name__}: {e}"))
                if conn is not None:
                    conn.close()
                conn = None
            self.stopping.wait(POLL_MS / 1000)
        if conn is not None:
            conn.close()

    def wait_for(self, marker, deadline):
        with self.changed:
            while self.latest < marker:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


def phase_visible(results):
    log(f"phase 1: Deployment-to-visible, {ROUNDS} rounds x {ASSETS} assets, through edge 1")
    direct = Api(API_URLS[0])
    via_edge = Api(f"http://127.0.0.1:{EDGE_HTTP[0]}", host=f"serverless.{DOMAIN}")
    svc = direct.service("visible")
    env = direct.environment(svc, "production")
    domain = env["domain_name"]
    paths = ["/marker.txt"] + [f"/a{i}.bin" for i in range(1, ASSETS)]
    assets = [direct.asset(svc, p.strip("/")) for p in paths]
    pad = (1 << 20) // max(1, ASSETS - 1)  # the other assets make ~1 MiB together
    pool = concurrent.futures.ThreadPoolExecutor(API_THREADS)

    def prepare(rnd):
        """Uploads this round's versions and builds them (through edge 1, 8 at once)."""
        contents = [str(rnd).encode()] + [os.urandom(pad) for _ in range(ASSETS - 1)]
        versions = list(pool.map(lambda a: via_edge.version(svc, a[0], a[1], a[2]),
                                 zip(assets, paths, contents)))
        return via_edge.build(svc, versions)

    # Round 0 is the starting point (not measured): every edge serves marker 0 before polling.
    via_edge.deploy(svc, env["sid"], prepare(0))
    for port in EDGE_HTTP:
        deadline = time.monotonic() + VISIBLE_TIMEOUT
        while get(port, domain, "/marker.txt")[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"edge :{port} does not serve round 0")
            time.sleep(0.01)
    pollers = [Poller(i, port, domain) for i, port in enumerate(EDGE_HTTP)]
    for p in pollers:
        p.start()
    samples = {i: [] for i in range(len(pollers))}  # edge -> seconds after the 201
    early = {i: 0 for i in range(len(pollers))}  # rounds an edge served before the 201 came
    deploy_latency = []
    from_send = []  # (edge, round) -> seconds from sending the Deployment POST
    try:
        for rnd in range(1, ROUNDS + 1):
            zb = prepare(rnd)
            sent = time.monotonic()
            via_edge.deploy(svc, env["sid"], zb)  # expects 201
            answered = time.monotonic()
            deploy_latency.append(answered - sent)
            deadline = answered + VISIBLE_TIMEOUT
            for p in pollers:
                if not p.wait_for(rnd, deadline):
                    raise SystemExit(f"round {rnd}: edge {p.index + 1} still serves marker {p.latest} after {VISIBLE_TIMEOUT} s")
                delta = p.first_seen[rnd] - answered
                if delta < 0:
                    early[p.index] += 1
                samples[p.index].append(max(0.0, delta))
                from_send.append(p.first_seen[rnd] - sent)
            if rnd % 10 == 0:
                log(f"  round {rnd}: " + ", ".join(f"edge {i + 1} {ms(samples[i][-1])} ms" for i in samples))
        time.sleep(0.2)  # a few more polls after the last switch
    finally:
        for p in pollers:
            p.stopping.set()
        for p in pollers:
            p.join()
        pool.shutdown()
    everything = [s for v in samples.values() for s in v]
    bad = [(p.index, t, what) for p in pollers for t, what in p.bad]
    feed = [metrics(port) for port in EDGE_ADMIN]
    results["visible"] = dict(
        all=everything, proxying=samples[0],
        others=[s for i, v in samples.items() if i != 0 for s in v],
        per_edge=samples, early=early, deploy=deploy_latency, from_send=from_send, bad=bad,
        polls=sum(p.requests for p in pollers), retries=direct.retries + via_edge.retries,
        feed=feed)
    log(f"  done: p50 {ms(pct(everything, 50))} ms, p99 {ms(pct(everything, 99))} ms, "
        f"{len(bad)} bad responses in {results['visible']['polls']} polls")


# ---- phase 2: cold edges over 1,000 and 10,000 Environments ------------------------------------


class Population:
    """A Service with BUILD_POOL Builds of ASSETS assets (1 KiB each, random), and as many
    Environments as asked for, Environment i deployed to Build i % BUILD_POOL."""

    def __init__(self):
        self.apis = [Api(u) for u in API_URLS]
        api = self.apis[0]
        self.svc = api.service("many")
        self.envs = []  # (sid, domain_name), in order
        t = time.monotonic()
        assets = [api.asset(self.svc, f"p{i}") for i in range(ASSETS)]
        jobs = [(b, i) for b in range(BUILD_POOL) for i in range(ASSETS)]

        def upload(job):
            b, i = job
            return self.api_for(b * ASSETS + i).version(self.svc, assets[i], f"/p{i}.bin", os.urandom(1024))

        with concurrent.futures.ThreadPoolExecutor(API_THREADS) as pool:
            versions = list(pool.map(upload, jobs))
            self.builds = list(pool.map(
                lambda b: self.api_for(b).build(self.svc, versions[b * ASSETS:(b + 1) * ASSETS]),
                range(BUILD_POOL)))
        self.build_seconds = time.monotonic() - t
        log(f"  {BUILD_POOL} Builds x {ASSETS} assets in {self.build_seconds:.0f} s")

    def api_for(self, n):
        return self.apis[n % len(self.apis)]

    def grow(self, count):
        """Creates and deploys Environments up to `count` in all; returns their rate."""
        start = len(self.envs)
        t = time.monotonic()

        def make(i):
            api = self.api_for(i)
            env = api.environment(self.svc, f"e{i}", f"e{i}")
            api.deploy(self.svc, env["sid"], self.builds[i % BUILD_POOL])
            return env["sid"], env["domain_name"]

        with concurrent.futures.ThreadPoolExecutor(API_THREADS) as pool:
            done = 0
            for item in pool.map(make, range(start, count)):
                self.envs.append(item)
                done += 1
                if done % 1000 == 0:
                    log(f"  {start + done} Environments ({done / (time.monotonic() - t):.0f}/s)")
        seconds = time.monotonic() - t
        return seconds, (count - start) / seconds if count > start else 0.0

    def retries(self):
        return sum(a.retries for a in self.apis)


def cold_edge(pop, count):
    """Spawns a new edge over `count` served Environments and times it; returns its numbers
    and leaves it stopped."""
    domain = pop.envs[0][1]
    edge = Server(f"cold{count}", EDGE_ARGS)
    first_response = first_200 = full = None
    served_seen = 0
    try:
        # (a) first byte of a 200 for a site: a new connection every ~2 ms (refused until the
        # listener is bound; queued in its backlog until the edge accepts).
        while first_200 is None:
            if edge.proc.poll() is not None:
                raise SystemExit(f"cold edge exited: see {edge.logfile.name}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", edge.http, timeout=10)
                c.request("GET", "/p0.bin", headers={"Host": domain})
                r = c.getresponse()  # returns once the status line (the first byte) is in
                now = time.monotonic()
                r.read()
                c.close()
                first_response = first_response or now
                if r.status == 200:
                    first_200 = now
            except OSError:
                pass
            if first_200 is None:
                time.sleep(0.002)
        # (b) the full table: sigil_environments_served reaching the count.
        deadline = time.monotonic() + 600
        while full is None:
            try:
                served_seen = metrics(edge.admin).get("sigil_environments_served", 0)
                if served_seen >= count:
                    full = time.monotonic()
            except OSError:
                pass
            if full is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"cold edge serves {served_seen} of {count} after 600 s")
                time.sleep(0.01)
        edge.wait_ready()
        # A moment for the table build's garbage to be returned, then the resident set.
        time.sleep(1)
        out = dict(
            count=count, ready=edge.ready_at - edge.spawned, first_response=first_response - edge.spawned,
            first_200=first_200 - edge.spawned, full=full - edge.spawned,
            rss=proc_status(edge.proc.pid, "VmRSS"), anon=proc_status(edge.proc.pid, "RssAnon"))
        log(f"  cold edge over {count}: ready line {ms(out['ready'])} ms, first 200 {ms(out['first_200'])} ms, "
            f"full table {ms(out['full'])} ms, VmRSS {out['rss'] / 1024:.1f} MiB")
        return out
    finally:
        edge.stop()


def phase_cold(results):
    log(f"phase 2: cold edges over {ENV_COUNTS} Environments ({BUILD_POOL} Builds x {ASSETS} assets)")
    pop = Population()
    results["cold"] = dict(runs=[], builds=pop.build_seconds, grow=[])
    results["population"] = pop
    for count in ENV_COUNTS:
        seconds, rate = pop.grow(count)
        results["cold"]["grow"].append((count, seconds, rate))
        log(f"  {count} Environments deployed ({seconds:.0f} s, {rate:.0f} Environments/s)")
        # The fleet's edges follow: wait until they all serve everything (1 + count sites).
        wait_fleet(count + (1 if "visible" in results else 0))
        results["cold"]["runs"].append(cold_edge(pop, count))
    results["cold"]["retries"] = pop.retries()
    results["fleet_rss"] = {name: (proc_status(pid, "VmRSS"), proc_status(pid, "RssAnon"))
                            for name, pid in fleet_pids().items()}
    results["fleet_feed"] = [metrics(port) for port in EDGE_ADMIN]


def wait_fleet(count, timeout=600):
    t = time.monotonic()
    for i, port in enumerate(EDGE_ADMIN):
        while metrics(port).get("sigil_environments_served", 0) < count:
            if time.monotonic() - t > timeout:
                raise SystemExit(f"fleet edge {i + 1} does not reach {count} Environments")
            time.sleep(0.1)
    log(f"  fleet edges serve {count} Environments ({time.monotonic() - t:.1f} s after the last 201)")


# ---- phase 3: req/s, --role edge against --role all --------------------------------------------


def wrk(port, host, path, server):
    """One wrk run; returns (req/s, p99 ms, wrk's CPU share, server CPU µs per request)."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{WRK_CONNS}", f"-d{WRK_SECONDS}s", "--latency",
           "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(server.proc.pid)
    t = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall = time.monotonic() - t
    server_cpu = cpu_seconds(server.proc.pid) - server_cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if re.search(r"Non-2xx or 3xx responses|Socket errors", out):
        raise SystemExit(f"wrk saw errors against {server.name}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    busy = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall
    return rps, p99, busy, server_cpu / (rps * WRK_SECONDS) * 1e6


def phase_rps(results):
    log(f"phase 3: req/s on cached content, --role edge against --role all, {WRK_RUNS} x {WRK_SECONDS} s each")
    pop = results.get("population")
    if pop is None:  # phase 2 skipped: one site of our own
        pop = type("P", (), {})()
        api = Api(API_URLS[0])
        svc = api.service("rps")
        env = api.environment(svc, "production")
        zb = api.build(svc, [api.version(svc, api.asset(svc, "p0"), "/p0.bin", os.urandom(1024))])
        api.deploy(svc, env["sid"], zb)
        pop.envs = [(env["sid"], env["domain_name"])]
    domain, path = pop.envs[0][1], "/p0.bin"
    quiet = ["--access-log", "false", "--request-logs", "false"]
    edge = Server("rps-edge", EDGE_ARGS + quiet, pin=True)
    allr = None
    try:
        allr = Server("rps-all", ["--role", "all", "--metadata", os.environ["SIGIL_METADATA"],
                                  "--blobs", os.environ["SIGIL_BLOBS"],
                                  "--api", f"127.0.0.1:{free_port()}"] + quiet, pin=True)
        servers = {"edge": edge, "all": allr}
        for s in servers.values():
            s.wait_ready()
            s.pin()
            # Warm: the blob in the cache, then a short run.
            deadline = time.monotonic() + 30
            while get(s.http, domain, path)[0] != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{s.name} does not serve {domain}{path}")
                time.sleep(0.05)
            subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{WRK_CONNS}", "-d2s",
                            "-H", f"Host: {domain}", f"http://127.0.0.1:{s.http}{path}"],
                           check=True, capture_output=True)
        runs = {name: [] for name in servers}
        for i in range(WRK_RUNS):
            for name, s in servers.items():
                r = wrk(s.http, domain, path, s)
                runs[name].append(r)
                log(f"  run {i + 1} {name}: {r[0]:.0f} req/s, p99 {r[1]:.2f} ms, wrk {r[2] * 100:.0f}% busy, {r[3]:.1f} µs CPU/request")
        results["rps"] = dict(runs=runs, rss={n: proc_status(s.proc.pid, "VmRSS") for n, s in servers.items()},
                              domain=domain, path=path)
    finally:
        edge.stop()
        if allr is not None:
            allr.stop()


# ---- the table --------------------------------------------------------------------------------


def report(results, started):
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    cpu = re.sub(r"^Model name:\s*", "", cpu.strip()) or "unknown"
    lines = [
        f"## benches/fleet.sh — {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
        f"{cpu}, {os.cpu_count()} CPUs; loopback fleet from deploy/fleet-local.sh: PostgreSQL "
        "+ s3s-fs + 2 control + 3 edges, release build; everything shares the same CPUs.",
        "",
        "| measure | result |",
        "|---|---|",
    ]
    add = lambda k, v: lines.append(f"| {k} | {v} |")  # noqa: E731
    v = results.get("visible")
    if v:
        a, px, ot = v["all"], v["proxying"], v["others"]
        add(f"Deployment-to-visible, all 3 edges ({len(a)} samples: {ROUNDS} Deployments x 3; {ASSETS} assets, ~1 MiB per Build), p50 / p99 / max",
            f"{ms(pct(a, 50))} / {ms(pct(a, 99))} / {ms(max(a))} ms")
        add("… the proxying edge (edge 1), p50 / p99 / max", f"{ms(pct(px, 50))} / {ms(pct(px, 99))} / {ms(max(px))} ms"
            f" (marker seen before the 201 in {v['early'][0]} of {len(px)})")
        add("… the other edges (feed), p50 / p99 / max", f"{ms(pct(ot, 50))} / {ms(pct(ot, 99))} / {ms(max(ot))} ms")
        d = v["deploy"]
        add("Deployment POST through edge 1 (to its 201), p50 / p99 / max", f"{ms(pct(d, 50))} / {ms(pct(d, 99))} / {ms(max(d))} ms")
        fs = v["from_send"]
        add("… all 3 edges counted from sending the Deployment POST (its 201 waits for edge 1's prefetch), p50 / p99 / max",
            f"{ms(pct(fs, 50))} / {ms(pct(fs, 99))} / {ms(max(fs))} ms")
        add(f"poll responses that were not 200 (or went back), of {v['polls']} polls every {POLL_MS:g} ms",
            f"{len(v['bad'])}" + (f": {v['bad'][:3]}" if v["bad"] else ""))
    c = results.get("cold")
    if c:
        add(f"population: {BUILD_POOL} Builds x {ASSETS} assets (1 KiB); Environment i deployed to Build i % {BUILD_POOL}",
            f"Builds made in {c['builds']:.0f} s; " + "; ".join(
                f"to {n:,} Environments in {s:.0f} s ({r:.0f}/s, {API_THREADS} clients on 2 control replicas)"
                for n, s, r in c["grow"]))
        for r in c["runs"]:
            n = f"{r['count']:,}"
            add(f"cold edge over {n} Environments x {ASSETS} assets: time to first byte of a 200 (first miss fetched from S3)",
                f"{ms(r['first_200'])} ms (any response {ms(r['first_response'])} ms; `edge ready` line {ms(r['ready'])} ms)")
            add(f"cold edge over {n}: time to a full route table (`sigil_environments_served` = {n})", f"{ms(r['full'])} ms")
            add(f"cold edge over {n}: RSS with the full table", f"VmRSS {r['rss'] / 1024:.1f} MiB (RssAnon {r['anon'] / 1024:.1f} MiB)")
        fr = results.get("fleet_rss", {})
        if fr:
            add(f"fleet processes' RSS at the end of phase 2 (VmRSS / RssAnon MiB; edges serve {ENV_COUNTS[-1]:,}+ Environments)",
                ", ".join(f"{n} {r / 1024:.0f} / {a / 1024:.0f}" for n, (r, a) in sorted(fr.items())))
    r = results.get("rps")
    if r:
        med = {n: statistics.median(x[0] for x in runs) for n, runs in r["runs"].items()}
        p99 = {n: statistics.median(x[1] for x in runs) for n, runs in r["runs"].items()}
        cpu_req = {n: statistics.median(x[3] for x in runs) for n, runs in r["runs"].items()}
        busy = max(x[2] for runs in r["runs"].values() for x in runs)
        for n in ("edge", "all"):
            add(f"req/s, 1 KiB cached public asset, `--role {n}` (median of {WRK_RUNS}; p99; CPU/request)",
                f"{med[n]:,.0f} ({p99[n]:.2f} ms; {cpu_req[n]:.1f} µs) — runs: " + ", ".join(f"{x[0]:,.0f}" for x in r["runs"][n]))
        add("edge / all (goal ≥ 0.95x)", f"**{med['edge'] / med['all']:.2f}x** (wrk up to {busy * 100:.0f}% of its CPU)")
    add("whole run", f"{(time.monotonic() - started) / 60:.1f} min")
    retries = (v or {}).get("retries", 0) + (c or {}).get("retries", 0)
    notes = [
        "",
        "Deployment-to-visible: from the deploy's 201 reaching the client to the first poll response "
        f"(keep-alive GET every {POLL_MS:g} ms per edge) holding the new marker; 0 when it came first. "
        "Percentiles are nearest-rank (p99 of 50 is the max).",
        f"req/s: wrk -t1 -c{WRK_CONNS} -d{WRK_SECONDS}s on CPU 1, server on CPU 0 (`taskset -c 0`, then "
        "`taskset -a -p -c 0`), both with `--access-log false --request-logs false`, alternated.",
        f"API requests retried after a 5xx or a broken connection: {retries}.",
    ]
    text = "\n".join(lines + notes) + "\n"
    print(text, flush=True)
    if os.environ.get("RESULTS"):
        with open(os.environ["RESULTS"], "w") as f:
            f.write(text)


def main():
    started = time.monotonic()
    results = {}
    phases = {"visible": phase_visible, "cold": phase_cold, "rps": phase_rps}
    for name in PHASES:
        phases[name](results)
    report(results, started)


if __name__ == "__main__":
    main()
