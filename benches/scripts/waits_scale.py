#!/usr/bin/env python3
"""Parked runs at scale, against one `flow serve` (SQLite, sync normal):

1. memory: N runs waiting on a signal, parked; the server's resident memory
   before (idle) and after;
2. signal round trip: POST a signal, until the node after the `signal` node
   starts (from the run's report), p50 and p95 over 200 runs;
3. timers: N runs whose `wait until` is the same instant; how long after it
   every run has finished, and how late each woke (`woke_at` minus the
   instant), p50 / p99 over a sample.

Usage: waits_scale.py FLOW_BINARY [N]; FLOW_BENCH_JOURNAL=postgres://... takes a
PostgreSQL journal instead of a fresh SQLite file (give it a schema of its own,
`?options=-c%20search_path%3Dwaits_bench`, dropped before each run)."""
import atexit, datetime, http.client, json, os, re, statistics, subprocess, sys, tempfile, threading, time

FLOW = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
WF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wf_waits")

def start():
    d = tempfile.mkdtemp()
    journal = os.environ.get("FLOW_BENCH_JOURNAL") or d + "/runs.db"
    p = subprocess.Popen([FLOW, "serve", "--listen", "127.0.0.1:0", "--workflows", WF, "--journal", journal,
                          "--journal-sync", "normal", "--max-connections", "2048"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    line = p.stderr.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
    threading.Thread(target=lambda: p.stderr.read(), daemon=True).start()
    # Ended however the script ends (an error included): no server left behind.
    atexit.register(lambda: p.poll() is None and (p.terminate(), p.wait()))
    return p, port

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    def req(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            try:
                self.c.request(method, path, None if body is None else json.dumps(body), headers)
                r = self.c.getresponse()
                data = r.read()
                return r.status, (json.loads(data) if data else None)
            except (http.client.RemoteDisconnected, ConnectionError):
                # The server closes a keep-alive connection idle past its
                # --header-timeout: open another.
                if attempt: raise
                self.c.close()
                self.c = http.client.HTTPConnection(self.c.host, self.c.port, timeout=60)

def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/metrics"); text = c.getresponse().read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0

def submit_many(port, workflow, n, body, threads=16):
    ids = []; lock = threading.Lock()
    def work(k):
        c = Client(port); mine = []
        for _ in range(k):
            s, d = c.req("POST", f"/api/v1/workflows/{workflow}/runs", body)
            assert s == 201, (s, d)
            mine.append(d["run_id"])
        with lock: ids.extend(mine)
    ts = [threading.Thread(target=work, args=(n // threads + (1 if i < n % threads else 0),)) for i in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    return ids

def epoch_ms(rfc3339):
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000

def until(check, limit=600):
    start = time.time()
    while not check():
        if time.time() - start > limit: raise SystemExit("timed out")
        time.sleep(0.05)

def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(q * len(xs)))]

p, port = start()
time.sleep(1.0)
idle = rss_mb(p.pid)
t = time.time()
gates = submit_many(port, "gate", N, {})
until(lambda: metric(port, "flow_runs_waiting") >= N)
parked = rss_mb(p.pid)
print(f"{N} runs parked on a signal in {time.time() - t:.1f} s: RSS idle {idle:.1f} MB, parked {parked:.1f} MB (+{parked - idle:.1f} MB)", flush=True)

c = Client(port); trips = []
for run_id in gates[:200]:
    sent = time.perf_counter()
    s, _ = c.req("POST", f"/api/v1/runs/{run_id}/signals/go", {"ok": True})
    assert s == 202, s
    while True:
        s, r = c.req("GET", f"/api/v1/runs/{run_id}")
        if r["status"] == "succeeded": break
        time.sleep(0.001)
    trips.append((time.perf_counter() - sent) * 1000)
print(f"signal round trip (POST until the report says succeeded, an upper bound): p50 {pct(trips, .5):.1f} ms, p95 {pct(trips, .95):.1f} ms", flush=True)

at_ms = int(time.time() * 1000) + 20_000 + N // 2
at = datetime.datetime.fromtimestamp(at_ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
t = time.time()
timers = submit_many(port, "timer", N, {"input": {"at": at}})
print(f"{N} timers for {at} submitted in {time.time() - t:.1f} s", flush=True)
until(lambda: metric(port, "flow_runs_waiting") >= N + (N - 200))
wait_s = at_ms / 1000 - time.time()
if wait_s > 0: time.sleep(wait_s)
until(lambda: metric(port, "flow_runs_waiting") <= N - 200)
done = time.time() * 1000 - at_ms
late = []
for run_id in timers[:: max(1, N // 500)]:
    s, r = c.req("GET", f"/api/v1/runs/{run_id}")
    while r["status"] != "succeeded":
        time.sleep(0.05); s, r = c.req("GET", f"/api/v1/runs/{run_id}")
    late.append(epoch_ms(r["nodes"]["nap"]["output"]["woke_at"]) - at_ms)
print(f"{N} timers due at once: none waiting {done:.0f} ms after the instant; woke late by p50 {pct(late, .5):.0f} ms, p99 {pct(late, .99):.0f} ms (a sample of {len(late)})", flush=True)

# Not saturated: 100 timers 50 ms apart.
base = int(time.time() * 1000) + 3000
spread = []
for i in range(100):
    at_i = base + i * 50
    text = datetime.datetime.fromtimestamp(at_i / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    s, d = c.req("POST", "/api/v1/workflows/timer/runs", {"input": {"at": text}})
    spread.append((d["run_id"], at_i))
late = []
for run_id, at_i in spread:
    s, r = c.req("GET", f"/api/v1/runs/{run_id}")
    while r["status"] != "succeeded":
        time.sleep(0.05); s, r = c.req("GET", f"/api/v1/runs/{run_id}")
    late.append(epoch_ms(r["nodes"]["nap"]["output"]["woke_at"]) - at_i)
print(f"100 timers 50 ms apart: woke late by p50 {pct(late, .5):.0f} ms, p99 {pct(late, .99):.0f} ms", flush=True)
p.terminate(); p.wait()
