"""getAllProcessInfo latency and throughput: corrald against Python supervisord.

Both daemons run the same generated config of N `sleep` programs (startsecs=0).
For each server: median and p99 latency of CALLS sequential calls from one
client, then requests/s with CLIENTS concurrent client processes for SECONDS.
Runs alternate (corral, supervisord, corral, …) ROUNDS times. Clients speak raw
HTTP/1.1 on the unix socket and read the whole response (by Content-Length)
without parsing the XML, so client-side parsing does not dilute the figures.

Usage: python bench/rpc_latency.py --corrald target/release/corrald \
           --supervisord /tmp/svvenv/bin/supervisord [--programs 1000] [--out bench/results.json]
"""
import argparse, json, multiprocessing, os, signal, socket, statistics, subprocess, sys, tempfile, time

BODY = (b"<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.getAllProcessInfo</methodName>\n"
        b"<params>\n</params>\n</methodCall>\n")
REQUEST = (b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nAccept: text/xml\r\n"
           b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY


class Conn:
    def __init__(self, path):
        self.path = path
        self.s = None

    def call(self):
        if self.s is None:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(self.path)
        self.s.sendall(REQUEST)
        buf = b''
        while b'\r\n\r\n' not in buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise IOError('connection closed')
            buf += chunk
        head, _, rest = buf.partition(b'\r\n\r\n')
        headers = head.decode('latin-1').lower()
        length = int(headers.split('content-length:')[1].split('\r\n')[0])
        while len(rest) < length:
            chunk = self.s.recv(262144)
            if not chunk:
                raise IOError('connection closed')
            rest += chunk
        if b'<fault>' in rest or not head.startswith(b'HTTP/1.1 200') and not head.startswith(b'HTTP/1.0 200'):
            raise IOError('bad response: %r' % head[:80])
        if 'connection: close' in headers or head.startswith(b'HTTP/1.0'):
            self.s.close()
            self.s = None
        return len(rest)


def config(d, n):
    lines = ['[supervisord]', 'logfile=%s/main.log' % d, 'pidfile=%s/d.pid' % d, 'childlogdir=%s' % d,
             'nodaemon=true', 'minfds=4096', '', '[unix_http_server]', 'file=%s/sock' % d, '',
             '[rpcinterface:supervisor]',
             'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface', '']
    for i in range(n):
        lines += ['[program:p%04d]' % i, 'command=sleep 100000', 'startsecs=0',
                  'stdout_logfile=NONE', 'stderr_logfile=NONE', '']
    path = os.path.join(d, 'bench.conf')
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
    return path


def running(sock, n):
    try:
        c = Conn(sock)
        c.s = socket.socket(socket.AF_UNIX)
        c.s.connect(sock)
        c.s.sendall(REQUEST)
        data = b''
        while True:
            chunk = c.s.recv(262144)
            data += chunk
            if not chunk or b'</methodResponse>' in data:
                break
        c.s.close()
        return data.count(b'<string>RUNNING</string>') >= n
    except OSError:
        return False


def worker(sock, seconds, q):
    c = Conn(sock)
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        c.call()
        count += 1
    q.put(count)


def measure(name, argv, n, calls, clients, seconds):
    d = tempfile.mkdtemp(prefix='corral-bench-')
    conf = config(d, n)
    sock = os.path.join(d, 'sock')
    proc = subprocess.Popen(argv + ['-c', conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        t = time.monotonic()
        while not running(sock, n):
            if time.monotonic() - t > 300 or proc.poll() is not None:
                raise SystemExit('%s: %d programs never all RUNNING' % (name, n))
            time.sleep(0.5)
        c = Conn(sock)
        for _ in range(10):
            size = c.call()
        lat = []
        for _ in range(calls):
            t0 = time.perf_counter()
            c.call()
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        q = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=worker, args=(sock, seconds, q)) for _ in range(clients)]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        total = sum(q.get() for _ in procs)
        for p in procs:
            p.join()
        elapsed = time.monotonic() - t0
        return {'server': name, 'programs': n, 'response_bytes': size, 'calls': calls,
                'median_ms': statistics.median(lat), 'p99_ms': lat[int(len(lat) * 0.99) - 1],
                'clients': clients, 'requests': total, 'seconds': elapsed, 'rps': total / elapsed,
                'latencies_ms': lat}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main():
    a = argparse.ArgumentParser()
    a.add_argument('--corrald', required=True)
    a.add_argument('--supervisord', required=True)
    a.add_argument('--programs', type=int, default=1000)
    a.add_argument('--calls', type=int, default=200)
    a.add_argument('--clients', type=int, default=50)
    a.add_argument('--seconds', type=float, default=10)
    a.add_argument('--rounds', type=int, default=2)
    a.add_argument('--out', default='bench/results.json')
    o = a.parse_args()
    runs = []
    for r in range(o.rounds):
        for name, argv in [('corral', [o.corrald]), ('supervisord', [o.supervisord])]:
            res = measure(name, argv, o.programs, o.calls, o.clients, o.seconds)
            res['round'] = r
            runs.append(res)
            print('%s round %d: median %.2f ms, p99 %.2f ms, %.1f req/s' %
                  (name, r, res['median_ms'], res['p99_ms'], res['rps']), file=sys.stderr)
    with open(o.out, 'w') as f:
        json.dump({'runs': runs, 'nproc': os.cpu_count()}, f, indent=1)
    best = {}
    for name in ('corral', 'supervisord'):
        rs = [x for x in runs if x['server'] == name]
        best[name] = (statistics.median(x['median_ms'] for x in rs), statistics.median(x['p99_ms'] for x in rs),
                      statistics.median(x['rps'] for x in rs))
    print('| getAllProcessInfo, %d programs | median latency | p99 latency | req/s, %d clients |'
          % (o.programs, o.clients))
    print('|---|---|---|---|')
    for name in ('corral', 'supervisord'):
        m, p, r = best[name]
        print('| %s | %.2f ms | %.2f ms | %.1f |' % (name, m, p, r))
    c, s = best['corral'], best['supervisord']
    print('| ratio (supervisord / corral) | %.1f× | %.1f× | %.1f× (corral / supervisord) |'
          % (s[0] / c[0], s[1] / c[1], c[2] / s[2]))


if __name__ == '__main__':
    main()
