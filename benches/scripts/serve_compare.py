#!/usr/bin/env python3
"""Two `flow` binaries side by side, alternated: `flow serve` on SQLite (sync normal),
GET /healthz on one keep-alive connection, POST ?wait=10 of a two-noop workflow
sequentially, then 8 clients at once. Usage: serve_compare.py BEFORE AFTER [ROUNDS]."""
import atexit, http.client, json, os, subprocess, sys, time, threading, tempfile, re, statistics

def start(binary):
    d = tempfile.mkdtemp()
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--workflows", os.path.join(os.path.dirname(os.path.abspath(__file__)), "wf"),
                          "--journal", d + "/runs.db", "--journal-sync", "normal"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    line = p.stderr.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
    threading.Thread(target=lambda: p.stderr.read(), daemon=True).start()
    # Ended however the script ends (an error included): no server left behind.
    atexit.register(lambda: p.poll() is None and (p.terminate(), p.wait()))
    return p, port

def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs)-1, int(q*len(xs)))]

def healthz(port, n):
    c = http.client.HTTPConnection("127.0.0.1", port)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); c.request("GET", "/healthz"); r = c.getresponse(); r.read(); ts.append((time.perf_counter()-t)*1e3)
    return ts

def submit(port, n, out):
    c = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({})
    for _ in range(n):
        t = time.perf_counter()
        c.request("POST", "/api/v1/workflows/noop/runs?wait=10", body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read(); assert r.status == 201, r.status
        out.append((time.perf_counter()-t)*1e3)

def concurrent(port, threads, n):
    out = []; ts = [threading.Thread(target=submit, args=(port, n, out)) for _ in range(threads)]
    t = time.perf_counter()
    for x in ts: x.start()
    for x in ts: x.join()
    return out, threads*n/(time.perf_counter()-t)

res = {}
for rnd in range(int(sys.argv[3]) if len(sys.argv) > 3 else 2):
    for name, binary in (("before", sys.argv[1]), ("after", sys.argv[2])):
        p, port = start(binary)
        time.sleep(0.3)
        healthz(port, 200)
        h = healthz(port, 3000)
        s = []; submit(port, 300, s)
        c, rate = concurrent(port, 8, 100)
        p.terminate(); p.wait()
        r = res.setdefault(name, {"h50": [], "h99": [], "s50": [], "s99": [], "c50": [], "rate": []})
        r["h50"].append(pct(h, .5)); r["h99"].append(pct(h, .99)); r["s50"].append(pct(s, .5)); r["s99"].append(pct(s, .99))
        r["c50"].append(pct(c, .5)); r["rate"].append(rate)
        print(rnd, name, "healthz p50 %.3f p99 %.3f | submit?wait p50 %.2f p99 %.2f | 8 clients p50 %.2f, %.0f runs/s" % (pct(h,.5), pct(h,.99), pct(s,.5), pct(s,.99), pct(c,.5), rate), flush=True)
for name, r in res.items():
    print(name, {k: round(statistics.median(v), 3) for k, v in r.items()})
