"""Small Python programs run *inside* the guest that read raw load figures.

They only read: the guest's own cgroup (found from PID 1's, minus systemd's
``init.scope``, so on a real VM it is the root and in a lab guest it is the container's)
and ``/proc``. They print numbers as JSON; every judgement is made on the host side,
where it is unit-tested. The guest's ``python3`` is the agent's own dependency, so it is
there on every VM the agent runs on.
"""

from __future__ import annotations

_CGROUP = r"""
import json, os, time

def guest_cgroup(controller):
    v2 = (None, None)
    for line in open('/proc/1/cgroup'):
        hid, ctrls, path = line.rstrip('\n').split(':', 2)
        if path.endswith('/init.scope'):
            path = path[:-len('/init.scope')]
        path = path.rstrip('/')
        if controller in ctrls.split(','):
            for mount in ('/sys/fs/cgroup/' + ctrls, '/sys/fs/cgroup/' + controller):
                if os.path.isdir(mount + path):
                    return 'v1', mount + path
                if os.path.isdir(mount):
                    return 'v1', mount
        if hid == '0' and os.path.isfile('/sys/fs/cgroup' + path + '/cgroup.controllers'):
            v2 = ('v2', '/sys/fs/cgroup' + path)
    return v2

def read(path, default=None):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return default

def keyed(text):
    values = {}
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip('-').isdigit():
            values[parts[0]] = int(parts[1])
    return values
"""

CPU_SENSOR = (
    _CGROUP
    + r"""
def usage(kind, path):
    if kind == 'v1':
        return int(read(path + '/cpuacct.usage', '0')) / 1e9
    return keyed(read(path + '/cpu.stat')).get('usage_usec', 0) / 1e6

def quota(kind, path):
    if kind == 'v1':
        q = int(read(path + '/cpu.cfs_quota_us', '-1'))
        p = int(read(path + '/cpu.cfs_period_us', '0'))
        return q / p if q > 0 and p > 0 else None
    text = (read(path + '/cpu.max') or 'max').split()
    return int(text[0]) / int(text[1]) if text[0] != 'max' else None

def procs():
    # pid -> (comm, seconds on a CPU, seconds runnable but waiting for one)
    found = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        stat = read('/proc/%s/stat' % pid)
        sched = (read('/proc/%s/schedstat' % pid) or '').split()
        if not stat or len(sched) < 2:
            continue
        comm = stat[stat.index('(') + 1:stat.rindex(')')]
        found[pid] = (comm, int(sched[0]) / 1e9, int(sched[1]) / 1e9)
    return found

acct_kind, acct = guest_cgroup('cpuacct')
cpu_kind, cpu = guest_cgroup('cpu')
if acct is None:
    acct_kind, acct = cpu_kind, cpu
cpus = len(os.sched_getaffinity(0))
before, p0, t0 = usage(acct_kind, acct) if acct else None, procs(), time.monotonic()
time.sleep(1.0)
after, p1, t1 = usage(acct_kind, acct) if acct else None, procs(), time.monotonic()
deltas = [
    (p1[pid][1] - p0[pid][1], p1[pid][2] - p0[pid][2], p1[pid][0], int(pid))
    for pid in p1 if pid in p0
]
ran = sum(d[0] for d in deltas)
top = sorted(deltas, key=lambda d: d[0] + d[1], reverse=True)[:3]
print(json.dumps({
    'cgroup': acct, 'cpus': cpus, 'quota_cpus': quota(cpu_kind, cpu) if cpu else None,
    'used_seconds': (after - before) if acct else ran, 'ran_seconds': ran,
    'waited_seconds': sum(d[1] for d in deltas), 'elapsed': t1 - t0,
    'top': [[comm, pid, round(run + wait, 3)] for run, wait, comm, pid in top],
}))
"""
)

MEMORY_SENSOR = (
    _CGROUP
    + r"""
def figures(kind, path):
    if kind == 'v1':
        stat = keyed(read(path + '/memory.stat'))
        return {
            'limit': int(read(path + '/memory.limit_in_bytes', '0')),
            'usage': int(read(path + '/memory.usage_in_bytes', '0')),
            'inactive_file': stat.get('total_inactive_file', stat.get('inactive_file', 0)),
            'limit_hits': int(read(path + '/memory.failcnt', '0')),
            'oom_kills': keyed(read(path + '/memory.oom_control')).get('oom_kill', 0),
            'pressure': None,
        }
    events = keyed(read(path + '/memory.events'))
    limit = read(path + '/memory.max', 'max')
    pressure = read(path + '/memory.pressure')
    return {
        'limit': 0 if limit == 'max' else int(limit),
        'usage': int(read(path + '/memory.current', '0')),
        'inactive_file': keyed(read(path + '/memory.stat')).get('inactive_file', 0),
        'limit_hits': events.get('max', 0),
        'oom_kills': events.get('oom_kill', 0),
        'pressure': pressure.splitlines()[0] if pressure else None,
    }

def top_rss():
    found = []
    for pid in os.listdir('/proc'):
        status = read('/proc/%s/status' % pid) if pid.isdigit() else None
        fields = dict(l.split(':', 1) for l in (status or '').splitlines() if ':' in l)
        if 'VmRSS' in fields and int(pid) != os.getpid():
            found.append((int(fields['VmRSS'].split()[0]) * 1024, fields['Name'].strip(), int(pid)))
    return [[name, pid, rss] for rss, name, pid in sorted(found, reverse=True)[:3]]

kind, path = guest_cgroup('memory')
meminfo = keyed('\n'.join(l.replace(':', '').replace(' kB', '') for l in open('/proc/meminfo')))
samples = []
for _ in range(6):
    if path:
        samples.append(figures(kind, path))
    time.sleep(0.2)
first, second = (samples[0], samples[-1]) if samples else (None, None)
peak = max((f['usage'] - f['inactive_file'] for f in samples), default=None)
root = path is None or path.rstrip('/') in ('/sys/fs/cgroup/memory', '/sys/fs/cgroup')
print(json.dumps({
    'cgroup': path, 'first': first, 'second': second, 'peak_working_set': peak,
    'mem_total': meminfo.get('MemTotal', 0) * 1024,
    'mem_available': meminfo.get('MemAvailable', 0) * 1024,
    'system_pressure': (read('/proc/pressure/memory') or '').splitlines()[:1] if root else [],
    'top': top_rss(),
}))
"""
)
