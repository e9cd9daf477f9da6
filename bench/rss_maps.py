#!/usr/bin/env python3
"""bench/rss_maps.py OUT.json -- TRAIN ARGS... - where a trainer's resident memory is, by
mapping, when it is ready and after each step (the device machine; Linux /proc).

Runs the trainer with its stdout line-buffered (stdbuf -oL), copies its output through, and
reads /proc/PID/smaps when it prints "ready in" and after every "step" and "summary:" line.
Writes OUT.json: each snapshot's mappings (start, end, Rss, Anonymous, name) and VmRSS and
VmHWM, and prints what grew between ready and the last snapshot, by mapping, largest first.
bench/rss_maps.py --compare A.json B.json prints two trainers' memory when ready, by group
(each library, the heap, thread stacks, other anonymous memory)."""
import json
import os
import re
import signal
import subprocess
import sys


def smaps(pid):
    maps, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = {"start": int(m.group(1), 16), "end": int(m.group(2), 16),
                       "perm": m.group(3), "name": m.group(4).strip(), "rss": 0, "anon": 0}
                maps.append(cur)
                continue
            k = line.split(":")[0]
            if cur is not None and k in ("Rss", "Anonymous"):
                cur["rss" if k == "Rss" else "anon"] = int(line.split()[1]) * 1024
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                v = line.split()[1]
                status[k] = int(v) * 1024 if k != "Threads" else int(v)
    return {"maps": maps, "status": status}


def group(m):
    size = m["end"] - m["start"]
    if m["name"]:
        return m["name"]
    if size == 8388608:  # a thread's default 8 MiB stack (its guard page is a mapping of its own)
        return "[thread stack 8 MiB]"
    return "[anonymous]"


def by_group(snap):
    g = {}
    for m in snap["maps"]:
        k = group(m)
        r = g.setdefault(k, [0, 0, 0])
        r[0] += m["rss"]
        r[1] += m["anon"]
        r[2] += 1
    return g


def growth(a, b):
    before = {(m["start"], m["end"]): m for m in a["maps"]}
    rows = []
    for m in b["maps"]:
        o = before.get((m["start"], m["end"]))
        d = m["rss"] - (o["rss"] if o else 0)
        if d != 0:
            rows.append((d, m, o is None))
    rows.sort(key=lambda r: -abs(r[0]))
    after = {(m["start"], m["end"]) for m in b["maps"]}
    gone = [m for k, m in before.items() if k not in after and m["rss"]]
    return rows, gone


def run(out, cmd):
    env = dict(os.environ)
    if env.get("RSS_MAPS_PRELOAD"):  # a tracer, into the trainer only
        env["LD_PRELOAD"] = env["RSS_MAPS_PRELOAD"]
    p = subprocess.Popen(["stdbuf", "-oL"] + cmd, stdout=subprocess.PIPE, text=True, env=env)
    snaps = []
    for line in p.stdout:
        sys.stdout.write(line)
        if line.startswith("ready in") or line.startswith("step ") or line.startswith("summary:"):
            try:
                s = smaps(p.pid)
            except OSError:
                continue
            if "VmRSS" not in s["status"] or not s["maps"]:
                continue  # exiting: its memory is already going
            s["at"] = line.strip()[:60]
            snaps.append(s)
            if env.get("RSS_MAPS_PRELOAD"):  # its tracer reports
                os.kill(p.pid, signal.SIGUSR1)
    rc = p.wait()
    json.dump(snaps, open(out, "w"))
    if len(snaps) < 2:
        print(f"rss_maps: {len(snaps)} snapshots, nothing to compare (exit {rc})")
        return rc
    a, b = snaps[0], snaps[-1]
    print(f"rss_maps: {a['at']!r} -> {b['at']!r}: VmRSS {a['status']['VmRSS']} -> "
          f"{b['status']['VmRSS']} ({b['status']['VmRSS'] - a['status']['VmRSS']:+d}), VmHWM "
          f"{b['status']['VmHWM']}, threads {a['status']['Threads']} -> {b['status']['Threads']}")
    for s in snaps:
        print(f"rss_maps:   {s['at'][:40]:40s} VmRSS {s['status']['VmRSS']:12d}  anon "
              f"{s['status']['RssAnon']:12d}  file {s['status']['RssFile']:10d}")
    rows, gone = growth(a, b)
    print(f"rss_maps: {len(rows)} mappings changed, {len(gone)} gone; the largest:")
    for d, m, new in rows[:25]:
        print(f"rss_maps:   {d:+10d}  {m['start']:x}-{m['end']:x} {m['perm']} size "
              f"{m['end'] - m['start']:12d} anon {m['anon']:10d} {'new ' if new else ''}"
              f"{group(m)}")
    for m in gone[:10]:
        print(f"rss_maps:   gone {m['rss']:+10d}  size {m['end'] - m['start']} {group(m)}")
    ga, gb = by_group(a), by_group(b)
    print("rss_maps: by group, ready -> last:")
    for k in sorted(set(ga) | set(gb), key=lambda k: -abs(gb.get(k, [0])[0] - ga.get(k, [0])[0])):
        d = gb.get(k, [0])[0] - ga.get(k, [0])[0]
        if d:
            print(f"rss_maps:   {d:+10d}  {k} ({ga.get(k, [0, 0, 0])[2]} -> "
                  f"{gb.get(k, [0, 0, 0])[2]} mappings)")
    return rc


def compare(fa, fb):
    a, b = json.load(open(fa))[0], json.load(open(fb))[0]
    ga, gb = by_group(a), by_group(b)
    print(f"rss_maps: when ready, {fa} VmRSS {a['status']['VmRSS']} (threads "
          f"{a['status']['Threads']}) against {fb} {b['status']['VmRSS']} (threads "
          f"{b['status']['Threads']}), by group (B - A):")
    for k in sorted(set(ga) | set(gb), key=lambda k: -abs(gb.get(k, [0])[0] - ga.get(k, [0])[0])):
        ra, rb = ga.get(k, [0, 0, 0]), gb.get(k, [0, 0, 0])
        if ra[0] != rb[0]:
            print(f"rss_maps:   {rb[0] - ra[0]:+12d}  {k}: {ra[0]} in {ra[2]} / {rb[0]} in {rb[2]}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 3 and sys.argv[2] == "--":
        sys.exit(run(sys.argv[1], sys.argv[3:]))
    else:
        sys.exit(__doc__)
