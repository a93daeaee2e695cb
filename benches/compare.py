#!/usr/bin/env python3
"""sigil vs nginx, same machine, same run (driven by benches/compare.sh).

Both servers serve the same 1 KiB, 16 KiB, 256 KiB and 8 MiB files, on the CPUs SERVER_CPUS
names (default "0") with as many workers (nginx: worker_processes; sigil: --workers), logs off
on both unless LOGS=on (then nginx's default access log to a file, and sigil's defaults: access
log and the Logs resource). The load generators run on CLIENT_CPUS (default "1"), one thread
per CPU: wrk (HTTP/1.1, keep-alive; also over TLS), examples/loadgen.rs (HTTP/1.1, a cheaper client that has
the kernel discard bodies: where wrk is saturated it shows whether the server was the limit),
h2load (TLS + HTTP/2) and loadgen again over TLS + HTTP/2 (the second HTTP/2 client, with its
latencies in memory where h2load's p99 comes from a per-request log), alternately, RUNS times
each. The table shows median req/s and p99
latency and the sigil/nginx ratio (of the medians, and "paired": the median of the ratios
within each pair of runs next to each other in time, which the machine's drift does not move),
each server's CPU time per request (from /proc: what it costs, whatever held the rate) and how busy the load generator was (near 100% of its CPUs, the
rate is the client's, not the server's). Then: protected (a valid X-Twilio-Signature on every
request) vs public; 10,000 Environments vs 1; time from start to serving 1,000 Environments x
100 assets, and sigil's RSS after serving them (mapped file pages excluded: RssAnon).
"""
import concurrent.futures
import json
import urllib.parse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sigil")
RUNS = int(os.environ.get("RUNS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNS = int(os.environ.get("CONNS", "64"))
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "0123456789abcdef0123456789abcdef"
def _size(name):
    return int(name[:-1]) * {"k": 1024, "m": 1024 * 1024}[name[-1]]


SIZES = [(n, _size(n)) for n in os.environ.get("SIZES", "1k,16k,256k,8m").split(",")]
SERVER_CPUS = os.environ.get("SERVER_CPUS", "0")
CLIENT_CPUS = os.environ.get("CLIENT_CPUS", "1")


def _count(cpus):
    return sum(int(b) - int(a) + 1 if "-" in part else 1
               for part in cpus.split(",") for a, _, b in [part.partition("-")])


WORKERS = _count(SERVER_CPUS)
CLIENT_THREADS = _count(CLIENT_CPUS)
LOGS = os.environ.get("LOGS", "off") == "on"
LOADGEN = os.path.join(ROOT, "target", "release", "examples", "loadgen")
FLOOR = os.path.join(ROOT, "target", "release", "examples", "floor")
# FLOOR=on: the loadgen HTTP/1.1 case measures a third server in the same rotation,
# examples/floor.rs (the same runtime and system calls as sigil's fast path, no HTTP), and a
# table says what each server's own handling costs above it.
WITH_FLOOR = os.environ.get("FLOOR", "off") == "on"
# Requests in flight on each HTTP/2 connection, for h2load and loadgen alike.
STREAMS = 10
# The rate over nginx's that #15 asks of HTTP/1.1 at 1 and 16 KiB (the floor table's budget).
TARGET = 1.2
# For quick looks: CASES=h1:1k,h1c:1k,h1s:1k,h2:1k,h2l:1k limits the table (h1c: the cheaper
# client; h1s: HTTP/1.1 over TLS; h2: h2load; h2l: loadgen over TLS + HTTP/2);
# EXTRAS=protected|none limits what follows.
CASES = [c for c in os.environ.get("CASES", "").split(",") if c]
EXTRAS = os.environ.get("EXTRAS", "all")
PORTS = dict(api=19181, http=19180, https=19543, nginx_http=19190, nginx_https=19553)
AUTH = "Basic " + b64encode(f"{SID}:{TOKEN}".encode()).decode()


def log(*a):
    print(*a, file=sys.stderr, flush=True)


PORTS_B = dict(api=19281, http=19280, https=19643)


class Sigil:
    def __init__(self, data, extra=(), ports=None, logs=LOGS):
        ports = ports or PORTS
        self.data = data
        env = dict(os.environ, SIGIL_ACCOUNT_SID=SID, SIGIL_AUTH_TOKEN=TOKEN)
        if not logs:
            env["SIGIL_LOG"] = "warn"
        os.makedirs(data, exist_ok=True)
        self.stderr = open(os.path.join(data, "..", os.path.basename(data) + ".log"), "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPUS, BIN, "serve", "--data", data, "--workers", str(WORKERS),
             "--api", f"127.0.0.1:{ports['api']}", "--http", f"127.0.0.1:{ports['http']}",
             "--https", f"127.0.0.1:{ports['https']}",
             *([] if logs else ["--access-log", "false", "--request-logs", "false"]), *extra],
            env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        for line in self.proc.stdout:
            if line.startswith("sigil: API listening on"):
                break
        if self.proc.poll() is not None:
            raise SystemExit(f"sigil did not start (exit {self.proc.returncode}); are ports {ports} free?")
        self.ready = time.monotonic() - self.started
        # Every thread (runtime workers, blocking pool) on the server's CPUs.
        subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CPUS, str(self.proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rss_anon_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return -1


def api(method, path, form=None, port=None):
    port = port or PORTS["api"]
    data = None
    headers = {"Authorization": AUTH}
    if form is not None:
        data = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1{path}", data=data,
                                 headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def upload(svc, asset, path, content, visibility="public", port=None):
    port = port or PORTS["api"]
    boundary = "sigilbench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"Path\"\r\n\r\n{path}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"Visibility\"\r\n\r\n{visibility}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"Content\"; filename=\"f\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/Services/{svc}/Assets/{asset}/Versions", data=body,
        headers={"Authorization": AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def wait_port(port, seconds=10):
    """Waits until something accepts connections on 127.0.0.1:port."""
    until = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > until:
                raise SystemExit(f"nothing listens on 127.0.0.1:{port}")
            time.sleep(0.05)


def wait_build(svc, build, port=None):
    while api("GET", f"/Services/{svc}/Builds/{build}/Status", port=port)["status"] == "building":
        time.sleep(0.05)


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url, host=None, headers=()):
    cmd = ["taskset", "-c", CLIENT_CPUS, "wrk", f"-t{CLIENT_THREADS}", f"-c{CONNS}", f"-d{DURATION}s",
           "--latency"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    return rps, to_ms(m.group(1), m.group(2))


def loadgen(url, host=None, headers=()):
    """examples/loadgen.rs, one process per client CPU: HTTP/1.1 for http:// URLs, TLS +
    HTTP/2 with STREAMS streams a connection (as h2load) for https:// ones."""
    per = max(1, CONNS // CLIENT_THREADS)
    tls = ["--streams", str(STREAMS)] if url.startswith("https://") else []
    procs = [subprocess.Popen(["taskset", "-c", cpu, LOADGEN, *tls, url, str(per), str(DURATION),
                               *([f"Host: {host}"] if host else []), *headers],
                              stdout=subprocess.PIPE, text=True)
             for cpu in _cpu_list(CLIENT_CPUS)[:CLIENT_THREADS]]
    rps, p99s = 0.0, []
    for p in procs:
        try:
            out = p.communicate(timeout=DURATION + 60)[0]
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
                q.wait()
            raise Stalled(f"loadgen {url} did not finish within {DURATION + 60} s")
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        if p.returncode != 0 or int(fields.get("errors", "1")) != 0:
            raise SystemExit(f"loadgen saw errors against {url}:\n{out}")
        rps += float(fields["requests/sec"])
        p99s.append(float(fields["p99_ms"]))
    return rps, max(p99s)


def _cpu_list(cpus):
    out = []
    for part in cpus.split(","):
        a, _, b = part.partition("-")
        out += [str(c) for c in range(int(a), int(b or a) + 1)]
    return out


class Stalled(Exception):
    """A load generator that did not finish (h2load against nginx once hung with a few
    streams left at 8 MiB: both busy, nothing sent)."""


def h2load(url, connect_to):
    with tempfile.NamedTemporaryFile() as logf:
        try:
            out = subprocess.run(
                ["taskset", "-c", CLIENT_CPUS, "h2load", f"-t{CLIENT_THREADS}", f"-c{CONNS}", f"-m{STREAMS}",
                 "-D", str(DURATION),
                 f"--connect-to={connect_to}", "--log-file", logf.name, url],
                capture_output=True, text=True, check=True, timeout=DURATION + 60).stdout
        except subprocess.TimeoutExpired:
            raise Stalled(f"h2load {url} did not finish within {DURATION + 60} s")
        rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))
        ok = re.search(r"status codes: (\d+) 2xx", out)
        durations = []
        with open(logf.name) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    durations.append(int(parts[2]))  # microseconds
        durations.sort()
        p99 = durations[int(len(durations) * 0.99) - 1] / 1000 if durations else float("nan")
        if not ok or int(ok.group(1)) == 0:
            raise SystemExit(f"h2load got no 2xx from {url}:\n{out}")
        return rps, p99


def median_pair(samples):
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def medians(samples):
    return tuple(statistics.median(column) for column in zip(*samples))


def cpu_seconds(pid):
    """CPU time (user + system, all threads) the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pids, run):
    """run() -> (req/s, p99 ms), plus the server's CPU microseconds per request (all of its
    processes) and the load generator's CPU use (1.0 = all of its CPUs) over the run."""
    cpu = lambda: sum(cpu_seconds(p) for p in pids)
    s0, c0, t0 = cpu(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    rps, p99 = run()
    wall = time.monotonic() - t0
    s1, c1 = cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / wall / CLIENT_THREADS
    return rps, p99, (s1 - s0) / (rps * DURATION) * 1e6, client


CPU_MODEL = open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].splitlines()[0].strip()


def main():
    work = tempfile.mkdtemp(prefix="sigil-compare.")
    os.chmod(work, 0o755)  # nginx's workers run as an unprivileged user
    files = os.path.join(work, "root")
    os.makedirs(files)
    os.makedirs(os.path.join(work, "nginx-tmp"))
    for name, size in SIZES:
        with open(os.path.join(files, f"{name}.bin"), "wb") as f:
            f.write(os.urandom(size))
        os.chmod(os.path.join(files, f"{name}.bin"), 0o644)
    conf = open(os.path.join(ROOT, "benches", "nginx.conf")).read()
    for k, v in dict(ROOT=files, WORK=work, HTTP=PORTS["nginx_http"], HTTPS=PORTS["nginx_https"],
                     WORKERS=WORKERS, ACCESS_LOG=f"{work}/nginx-access.log" if LOGS else "off",
                     CERT=os.path.join(ROOT, "certs", "localhost.pem"),
                     KEY=os.path.join(ROOT, "certs", "localhost-key.pem")).items():
        conf = conf.replace(f"@{k}@", str(v))
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(conf)

    log(f"machine: {os.cpu_count()} CPUs; {CPU_MODEL}; servers on CPUs {SERVER_CPUS} ({WORKERS} workers), "
        f"load generators on CPUs {CLIENT_CPUS}; logs {'on' if LOGS else 'off'}")
    sigil = Sigil(os.path.join(work, "data"))
    nginx = subprocess.Popen(["taskset", "-c", SERVER_CPUS, "nginx", "-c", os.path.join(work, "nginx.conf"),
                              "-p", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    nginx_workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(nginx.pid)], capture_output=True,
                                                    text=True, check=True).stdout.split()]
    pids = {"nginx": nginx_workers, "sigil": [sigil.proc.pid]}
    floors = {}
    try:
        if WITH_FLOOR:
            if not os.path.exists(FLOOR):
                raise SystemExit(f"{FLOOR} is missing: benches/compare.sh builds it")
            for i, (name, _) in enumerate(SIZES):
                port = 19400 + i
                floors[name] = (port, subprocess.Popen(["taskset", "-c", SERVER_CPUS, FLOOR, f"127.0.0.1:{port}",
                                                        os.path.join(files, f"{name}.bin"), str(WORKERS)]))
                wait_port(port)
        # Deploy the same files, plus a protected copy of the 1 KiB one.
        svc = api("POST", "/Services", [("UniqueName", "bench"), ("FriendlyName", "bench")])["sid"]
        env = api("POST", f"/Services/{svc}/Environments", [("UniqueName", "production")])
        domain = env["domain_name"]
        versions = []
        for name, _ in SIZES:
            asset = api("POST", f"/Services/{svc}/Assets", [("FriendlyName", name)])["sid"]
            content = open(os.path.join(files, f"{name}.bin"), "rb").read()
            versions.append(upload(svc, asset, f"/{name}.bin", content)["sid"])
        asset = api("POST", f"/Services/{svc}/Assets", [("FriendlyName", "p")])["sid"]
        prot = upload(svc, asset, "/1k-protected.bin", open(os.path.join(files, "1k.bin"), "rb").read(),
                      visibility="protected")
        versions.append(prot["sid"])
        build = api("POST", f"/Services/{svc}/Builds", [("AssetVersions", v) for v in versions])["sid"]
        wait_build(svc, build)
        api("POST", f"/Services/{svc}/Environments/{env['sid']}/Deployments", [("BuildSid", build)])

        results = {}
        log(f"HTTP/1.1 (wrk -c{CONNS}; loadgen -c{CONNS}), TLS + HTTP/1.1 (wrk -c{CONNS}) and TLS + HTTP/2 "
            f"(h2load -c{CONNS} -m{STREAMS}; loadgen -c{CONNS}, {STREAMS} streams), "
            f"{RUNS} runs x {DURATION}s, alternating")
        for name, _ in SIZES:
            for proto in ("h1", "h1c", "h1s", "h2", "h2l"):
                if CASES and f"{proto}:{name}" not in CASES:
                    continue
                samples = {"nginx": [], "sigil": []}
                with_floor = WITH_FLOOR and proto == "h1c"
                if with_floor:
                    samples["floor"] = []
                for run in range(RUNS):
                    order = ["nginx", "sigil"] if run % 2 == 0 else ["sigil", "nginx"]
                    if with_floor:
                        # First or last, so that each pair stays next to each other in time.
                        order.insert(0 if (run // 2) % 2 == 0 else 2, "floor")
                    for server in order:
                        # Over TLS: the server's HTTPS port.
                        port = PORTS["nginx_https"] if server == "nginx" else PORTS["https"]
                        if proto == "h1":
                            if server == "nginx":
                                run_it = lambda: wrk(f"http://127.0.0.1:{PORTS['nginx_http']}/{name}.bin")
                            else:
                                run_it = lambda: wrk(f"http://127.0.0.1:{PORTS['http']}/{name}.bin", host=domain)
                        elif proto == "h1c":
                            if server == "floor":
                                run_it = lambda: loadgen(f"http://127.0.0.1:{floors[name][0]}/{name}.bin")
                            elif server == "nginx":
                                run_it = lambda: loadgen(f"http://127.0.0.1:{PORTS['nginx_http']}/{name}.bin")
                            else:
                                run_it = lambda: loadgen(f"http://127.0.0.1:{PORTS['http']}/{name}.bin", host=domain)
                        elif proto == "h1s":
                            # HTTPS/1.1 (wrk offers no ALPN): how webhook fetchers and many
                            # other clients come; with SIGIL_KTLS=1, sigil's goes by kernel TLS.
                            run_it = lambda: wrk(f"https://127.0.0.1:{port}/{name}.bin",
                                                 host=domain if server == "sigil" else None)
                        elif proto == "h2":
                            run_it = lambda: h2load(f"https://{domain}:{port}/{name}.bin", f"127.0.0.1:{port}")
                        else:
                            # loadgen checks the certificate: nginx's names localhost (a
                            # wildcard directly under localhost matches no name for rustls).
                            run_it = lambda: loadgen(f"https://127.0.0.1:{port}/{name}.bin",
                                                     host=domain if server == "sigil" else "localhost")
                        for attempt in range(3):
                            try:
                                server_pids = [floors[name][1].pid] if server == "floor" else pids[server]
                                r = measured(server_pids, run_it)
                                break
                            except Stalled as e:
                                # Said, and the run made again (twice at most).
                                log(f"  {proto} {name:>4} {server:<5} run {run + 1}: {e}; again")
                        else:
                            raise SystemExit(f"{proto} {name} {server}: the load generator stalled three times")
                        samples[server].append(r)
                        log(f"  {proto} {name:>4} {server:<5} run {run + 1}: {r[0]:>10.0f} req/s  p99 {r[1]:.2f} ms"
                            f"  {r[2]:.1f} us CPU/req  load generator {r[3] * 100:.0f}% busy")
                results[(proto, name)] = {s: medians(v) for s, v in samples.items()}
                # Run i of each server is next to run i of the other in time (the order
                # alternates), so their ratio is free of the machine's drift between pairs.
                results[(proto, name)]["paired"] = statistics.median(
                    s[0] / n[0] for n, s in zip(samples["nginx"], samples["sigil"]))

        print()
        print(f"{CPU_MODEL}, {os.cpu_count()} CPUs; servers on CPUs {SERVER_CPUS} ({WORKERS} workers each), "
              f"clients on CPUs {CLIENT_CPUS}; logs {'on' if LOGS else 'off'}")
        print()
        print("| protocol (client) | file | nginx req/s | sigil req/s | sigil/nginx | paired | nginx p99 ms "
              "| sigil p99 ms | nginx CPU µs/req | sigil CPU µs/req | load generator busy (nginx / sigil runs) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for (proto, name), r in results.items():
            label = {"h1": "HTTP/1.1 (wrk)", "h1c": "HTTP/1.1 (loadgen)", "h1s": "TLS+HTTP/1.1 (wrk)",
                     "h2": "TLS+HTTP/2 (h2load)", "h2l": "TLS+HTTP/2 (loadgen)"}[proto]
            (n_rps, n_p99, n_cpu, n_client), (s_rps, s_p99, s_cpu, s_client) = r["nginx"], r["sigil"]
            print(f"| {label} | {name} | {n_rps:,.0f} | {s_rps:,.0f} | {s_rps / n_rps:.2f}x | {r['paired']:.2f}x "
                  f"| {n_p99:.2f} | {s_p99:.2f} "
                  f"| {n_cpu:.1f} | {s_cpu:.1f} | {n_client * 100:.0f}% / {s_client * 100:.0f}% |")
        floor_rows = [(name, r) for (proto, name), r in results.items() if "floor" in r]
        if floor_rows:
            print()
            print("HTTP/1.1 (loadgen) against examples/floor.rs (sigil's runtime and system calls, no HTTP), "
                  "in the same rotation: CPU µs a request. Above the floor: sigil's own handling; for nginx, "
                  "its handling and its different system calls (sendfile with TCP_CORK at every size)")
            print()
            print("| file | floor req/s | floor CPU µs/req | nginx CPU µs/req (above the floor) "
                  f"| sigil CPU µs/req (above the floor) | sigil's budget above the floor for {TARGET}x nginx's rate |")
            print("|---|---|---|---|---|---|")
            for name, r in floor_rows:
                f_rps, _, f_cpu, _ = r["floor"]
                n_cpu, s_cpu = r["nginx"][2], r["sigil"][2]
                print(f"| {name} | {f_rps:,.0f} | {f_cpu:.2f} | {n_cpu:.2f} ({n_cpu - f_cpu:+.2f}) "
                      f"| {s_cpu:.2f} ({s_cpu - f_cpu:+.2f}) | {n_cpu / TARGET - f_cpu:+.2f} |")
        return work, sigil, domain, svc, results
    except BaseException:
        sigil.stop()
        raise
    finally:
        nginx.terminate()
        nginx.wait()
        for _, p in floors.values():
            p.terminate()
            p.wait()


def extras(work, sigil, domain, svc):
    # Protected (a valid signature on every request) vs public, 1 KiB. Both requests name the
    # site as Twilio's do (Host without a port, as for a URL on port 80), so they differ only in
    # the asset and the X-Twilio-Signature header: the ratio prices the check alone.
    url = f"http://{domain}/1k-protected.bin"
    sig = subprocess.run([BIN, "signature", "compute", "--url", url, "--token", TOKEN],
                         capture_output=True, text=True, check=True).stdout
    sig = re.search(r"^signature (\S+)$", sig, re.M).group(1)
    pid = [sigil.proc.pid]
    pub_url, prot_url = f"http://127.0.0.1:{PORTS['http']}/1k.bin", f"http://127.0.0.1:{PORTS['http']}/1k-protected.bin"
    prot_host, sig_header = domain, f"X-Twilio-Signature: {sig}"
    clients = {
        "wrk": (lambda: wrk(pub_url, host=domain),
                lambda: wrk(prot_url, host=prot_host, headers=[sig_header])),
        "loadgen": (lambda: loadgen(pub_url, host=domain),
                    lambda: loadgen(prot_url, prot_host, [sig_header])),
    }
    print()
    print("| measure | value |")
    print("|---|---|")
    for client, (run_pub, run_prot) in clients.items():
        # Measured in pairs, each pair in the other order than the one before, and the ratio
        # taken within each pair: the machine's drift over a run (other tenants of a VM's
        # host) moves both halves of a pair alike and cancels out of its ratio.
        pub, prot = [], []
        for run in range(RUNS):
            if run % 2 == 0:
                pub.append(measured(pid, run_pub))
                prot.append(measured(pid, run_prot))
            else:
                prot.append(measured(pid, run_prot))
                pub.append(measured(pid, run_pub))
        for run, (a, b) in enumerate(zip(pub, prot)):
            log(f"  protected/public {client} pair {run + 1}: {b[0]:>10.0f} / {a[0]:.0f} req/s = {b[0] / a[0]:.2f}x"
                f"  CPU {b[2]:.1f} / {a[2]:.1f} us/req")
        pub_m, prot_m = medians(pub), medians(prot)
        ratio = statistics.median(b[0] / a[0] for a, b in zip(pub, prot))
        print(f"| protected 1 KiB (valid signature on every request) / public 1 KiB, HTTP/1.1, {client} "
              f"| {prot_m[0]:,.0f} / {pub_m[0]:,.0f} req/s; median of {RUNS} paired ratios {ratio:.2f}x; "
              f"CPU {prot_m[2]:.1f} / {pub_m[2]:.1f} µs/req; p99 {prot_m[1]:.2f} / {pub_m[1]:.2f} ms; "
              f"load generator {prot_m[3] * 100:.0f}% / {pub_m[3] * 100:.0f}% busy |")
    if EXTRAS != "all":
        return

    # 10,000 Environments vs 1: a second sigil serves the same 1 KiB file from one of 10,000
    # deployed Environments; the two are measured alternately, like nginx and sigil above.
    b_port = PORTS_B["api"]
    many_sigil = Sigil(os.path.join(work, "many"), ports=PORTS_B)
    svc_b = api("POST", "/Services", [("UniqueName", "many"), ("FriendlyName", "many")], port=b_port)["sid"]
    asset_b = api("POST", f"/Services/{svc_b}/Assets", [("FriendlyName", "1k")], port=b_port)["sid"]
    content = open(os.path.join(work, "root", "1k.bin"), "rb").read()
    ver_b = upload(svc_b, asset_b, "/1k.bin", content, port=b_port)["sid"]
    build_b = api("POST", f"/Services/{svc_b}/Builds", [("AssetVersions", ver_b)], port=b_port)["sid"]
    wait_build(svc_b, build_b, port=b_port)
    t0 = time.monotonic()

    def add_env(i):
        form = [("UniqueName", f"e{i}")] + ([("DomainSuffix", f"e{i}")] if i else [])
        e = api("POST", f"/Services/{svc_b}/Environments", form, port=b_port)
        api("POST", f"/Services/{svc_b}/Environments/{e['sid']}/Deployments", [("BuildSid", build_b)], port=b_port)
        return e["domain_name"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        many_domains = list(pool.map(add_env, range(10_000)))
    setup = time.monotonic() - t0
    target = many_domains[5_000]
    one, many = [], []
    for run in range(RUNS):
        one.append(wrk(f"http://127.0.0.1:{PORTS['http']}/1k.bin", host=domain))
        many.append(wrk(f"http://127.0.0.1:{PORTS_B['http']}/1k.bin", host=target))
    one_m, many_m = median_pair(one)[0], median_pair(many)[0]
    many_sigil.stop()
    sigil.stop()

    # Start-up with 1,000 Environments x 100 assets (each Environment its own Build).
    data = os.path.join(work, "scale")
    s = Sigil(data)
    svc2 = api("POST", "/Services", [("UniqueName", "scale"), ("FriendlyName", "scale")])["sid"]
    vers = []
    for i in range(100):
        a = api("POST", f"/Services/{svc2}/Assets", [("FriendlyName", f"a{i}")])["sid"]
        vers.append(upload(svc2, a, f"/assets/file{i}.bin", os.urandom(1024))["sid"])

    def env_with_build(i):
        b = api("POST", f"/Services/{svc2}/Builds", [("AssetVersions", v) for v in vers])["sid"]
        wait_build(svc2, b)
        e = api("POST", f"/Services/{svc2}/Environments", [("UniqueName", f"s{i}"), ("DomainSuffix", f"s{i}")])
        api("POST", f"/Services/{svc2}/Environments/{e['sid']}/Deployments", [("BuildSid", b)])
        return e["domain_name"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        domains = list(pool.map(env_with_build, range(1000)))
    s.stop()
    t0 = time.monotonic()
    s = Sigil(data)
    last = domains[-1]
    while True:
        req = urllib.request.Request(f"http://127.0.0.1:{PORTS['http']}/assets/file99.bin", headers={"Host": last})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    break
        except Exception:
            time.sleep(0.01)
    startup = time.monotonic() - t0
    for i, d in enumerate(domains):
        req = urllib.request.Request(f"http://127.0.0.1:{PORTS['http']}/assets/file{i % 100}.bin", headers={"Host": d})
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
    rss = s.rss_anon_kib()
    s.stop()

    print(f"| 1 KiB with 10,000 Environments deployed / with 1 (two instances, alternating) | {many_m:,.0f} / {one_m:,.0f} req/s = {many_m / one_m:.2f}x (setup of 10,000 Environments + Deployments: {setup:.0f} s) |")
    print(f"| start to serving 1,000 Environments x 100 assets | {startup * 1000:.0f} ms |")
    print(f"| sigil RSS after serving them (RssAnon: mapped file pages excluded) | {rss / 1024:.1f} MiB |")


if __name__ == "__main__":
    work, sigil, domain, svc, _ = main()
    try:
        if EXTRAS != "none":
            extras(work, sigil, domain, svc)
    finally:
        sigil.stop()
        shutil.rmtree(work, ignore_errors=True)
