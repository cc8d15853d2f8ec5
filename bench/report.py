#!/usr/bin/env python3
"""Tables, charts and the markdown summary for the gomalloc benchmarks.

  report.py runs  --csv FILE --outdir DIR --mode MODE --runs N --seconds S --alloc NAME=LIB=PKG ...
  report.py instr --csv FILE --alloc NAME=LIB=PKG ...
  report.py rsstime --csv FILE --png FILE

Called by bench/run.sh; see bench/README.md for what the numbers mean.
"""
import argparse
import collections
import csv
import datetime
import math
import os
import platform
import shutil
import statistics
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_allocs(items):
    allocs = []
    for item in items or []:
        name, lib, pkg = (item.split("=", 2) + ["", ""])[:3]
        allocs.append((name, lib, pkg))
    return allocs


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False,
                              cwd=REPO).stdout.strip()
    except OSError:
        return ""


def allocator_version(name, pkg):
    if name == "gomalloc":
        rev = sh("git", "rev-parse", "--short", "HEAD")
        if not rev:
            return "git: no commit yet"
        dirty = sh("git", "status", "--porcelain", "--", "src", "include", "Makefile")
        return "git " + rev + ("+dirty" if dirty else "")
    if pkg:
        v = sh("dpkg-query", "-W", "-f=${Version}", pkg)
        return pkg + " " + (v or "?")
    return "?"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count() or 0, "cpu": cpu, "mem": mem,
            "kernel": platform.release()}


def geomean(xs):
    xs = [x for x in xs if x > 0]
    if not xs:
        return float("nan")
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def table(rows, right_from=1):
    """Plain aligned text table; rows are lists of strings, the first is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        cells = [c.ljust(widths[i]) if i < right_from else c.rjust(widths[i])
                 for i, c in enumerate(r)]
        out.append("  ".join(cells).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# ---------------------------------------------------------------------------
# benchmark runs

class Cell:
    def __init__(self):
        self.wall, self.rss, self.metrics, self.sums = [], [], [], []
        self.fail = None

    def ok(self):
        return self.fail is None and bool(self.wall)


def load_runs(path):
    benches = collections.OrderedDict()   # label -> (threads, oversubscribed)
    cells = collections.defaultdict(Cell)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            label = row["benchmark"]
            benches.setdefault(label, (int(row["threads"]), row["oversubscribed"] == "1"))
            c = cells[(label, row["allocator"])]
            if row["status"] != "ok":
                c.fail = c.fail or row["status"]
                continue
            c.wall.append(float(row["wall_s"]))
            c.rss.append(int(row["maxrss_kb"]))
            c.sums.append(row["checksum"])
            m = {}
            for kv in filter(None, row["metrics"].split(";")):
                k, _, v = kv.partition("=")
                m[k] = float(v)
            c.metrics.append(m)
    # every allocator must agree on each benchmark's checksum (glibc's if it ran)
    for label in benches:
        ref = None
        g = cells.get((label, "glibc"))
        if g and g.sums:
            ref = collections.Counter(g.sums).most_common(1)[0][0]
        else:
            allsums = [s for (b, _), c in cells.items() if b == label for s in c.sums]
            if allsums:
                ref = collections.Counter(allsums).most_common(1)[0][0]
        for (b, _), c in cells.items():
            if b == label and c.fail is None and any(s != ref for s in c.sums):
                c.fail = "checksum"
    return benches, cells


def fmt_time(x):
    return "%.3f" % x if x < 10 else "%.2f" % x


def fmt_mib(kb):
    mib = kb / 1024
    return "%.1f" % mib if mib < 100 else "%.0f" % mib


def is_release(label):
    """The release-* programs measure returning memory: their wall time is mostly fixed sleeps
    and their peak RSS is the same by design, so they get a table of their own."""
    return label.startswith("release")


def release_table(benches, cells, names):
    rows = [["returning memory", ""] + names]
    for label, key, title, fmt in (
            ("release-stall", "worst_pair_us", "stall: longest 2 MiB pair", "ms"),
            ("release-stall", "worst_other_us", "stall: longest 40 KiB pair, 2nd thread", "ms"),
            ("release-stall", "slow_ppm", "stall: pairs over 1 ms, per million", "int"),
            ("release-idle", "back_ms", "idle: time to start+64 MiB", "s"),
            ("release-idle", "rss_1s_kb", "idle: RSS 1 s after free-all", "mib"),
            ("release-idle", "rss_end_kb", "idle: RSS 3 s after free-all", "mib"),
            ("release-trim", "trim_us", "trim: malloc_trim(0) time", "ms"),
            ("release-trim", "rss_trim_kb", "trim: RSS after it", "mib"),
            ("release-trim", "rss_start_kb", "  RSS at start", "mib")):
        if label not in benches:
            continue
        r = [title, ""]
        for a in names:
            c = cells.get((label, a))
            vals = [m[key] for m in c.metrics if key in m] if c is not None and c.ok() else []
            if not vals:
                r.append("FAIL" if c is not None and c.fail else "-")
                continue
            v = statistics.median(vals)
            if fmt == "ms":
                r.append("%.1f ms" % (v / 1000.0))
            elif fmt == "s":
                r.append("never" if v < 0 else "%.2f s" % (v / 1000.0))
            elif fmt == "int":
                r.append("%d" % v)
            else:
                r.append(fmt_mib(v))
        rows.append(r)
    return table(rows, right_from=2)


def build_tables(benches, cells, allocs, ref, nproc):
    names = [a for a, _, _ in allocs]
    out = {}
    if any(is_release(l) for l in benches):
        out["release"] = release_table(benches, cells, names)
    benches = {l: v for l, v in benches.items() if not is_release(l)}
    ratios = {"time": {}, "rss": {}}
    for kind in ("time", "rss"):
        rows = [["benchmark", "thr"] + names]
        per_alloc = collections.defaultdict(list)
        for label, (thr, over) in benches.items():
            r = [label, "%d%s" % (thr, "*" if over else "")]
            rc = cells.get((label, ref))
            refv = None
            if rc and rc.ok():
                refv = statistics.median(rc.wall if kind == "time" else rc.rss)
            for a in names:
                c = cells.get((label, a))
                if c is None or (not c.ok() and c.fail is None):
                    r.append("-")
                    continue
                if not c.ok():
                    r.append("FAIL")
                    ratios[kind][(label, a)] = None
                    continue
                vals = c.wall if kind == "time" else c.rss
                v = statistics.median(vals)
                text = fmt_time(v) if kind == "time" else fmt_mib(v)
                # '~' marks a noisy cell: runs spread over more than 25% of the median
                noisy = len(vals) > 1 and (max(vals) - min(vals)) > 0.25 * v
                if refv:
                    ratio = v / refv
                    ratios[kind][(label, a)] = ratio
                    per_alloc[a].append(ratio)
                    text += " (%.2f)" % ratio
                r.append(text + ("~" if noisy else " "))
            rows.append(r)
        g = ["geomean ratio", ""]
        for a in names:
            vals = per_alloc.get(a, [])
            n_ok = len(vals)
            if not vals:
                g.append("-")
            else:
                text = "%.2f" % geomean(vals)
                if n_ok < len(benches):
                    text += " [%d/%d]" % (n_ok, len(benches))
                g.append(text + " ")
        rows.append(g)
        out[kind] = table(rows, right_from=2)
    # fragmentation detail: one block per frag row (frag: mixed sizes;
    # frag-reuse: small objects, then 1-4 KiB ones)
    frag = [l for l in benches if l.startswith("frag")]
    if frag:
        rows = []
        for label in frag:
            rows.append(["%s (MiB)" % label, ""] + names)
            for key, title in (("rss_full_kb", "after alloc"), ("rss_freed_kb", "after free 90%"),
                               ("rss_again_kb", "after alloc again"), ("live_again_kb", "  live then"),
                               ("grew", "  grew by"), ("rss_final_kb", "after free all"),
                               ("peak", "peak RSS")):
                r = [title, ""]
                for a in names:
                    c = cells.get((label, a))
                    if c is None or not c.ok():
                        r.append("FAIL" if c is not None and c.fail else "-")
                        continue
                    if key == "peak":
                        vals = c.rss
                    elif key == "grew":
                        vals = [m["rss_again_kb"] - m["rss_freed_kb"] for m in c.metrics
                                if "rss_again_kb" in m and "rss_freed_kb" in m]
                    else:
                        vals = [m[key] for m in c.metrics if key in m]
                    r.append(fmt_mib(statistics.median(vals)) if vals else "-")
                rows.append(r)
        out["frag"] = table(rows, right_from=2)
    return out, ratios


# One colour per allocator other than the reference, in the order they were run.
COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]


def run_gnuplot(gnuplot, datpath, lines):
    """Writes the script next to its data file (NAME.gp for NAME.dat) and runs it;
    None, or what went wrong."""
    gp = datpath[:-4] + ".gp"
    with open(gp, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([gnuplot, gp], capture_output=True, text=True)
    if r.returncode != 0:
        return "gnuplot failed: " + r.stderr.strip()[:300]
    return None


def chart(path, kind, benches, ratios, allocs, ref, title):
    """Clustered bars of each allocator's ratio to the reference, log scale, bars from 1."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return "gnuplot not installed"
    others = [a for a, _, _ in allocs if a != ref]
    labels = list(benches)
    if not others or not labels:
        return "nothing to draw"
    work = os.path.join(REPO, "build", "bench")
    os.makedirs(work, exist_ok=True)
    datpath = os.path.join(work, os.path.basename(path)[:-4] + ".dat")
    vals = []
    with open(datpath, "w") as f:
        f.write("# benchmark " + " ".join(others) + "  (ratio to %s)\n" % ref)
        for label in labels:
            row = []
            for a in others:
                v = ratios[kind].get((label, a))
                row.append("NaN" if v is None else "%.5f" % v)
                if v:
                    vals.append(v)
            thr, over = benches[label]
            f.write('"%s%s" %s\n' % (label, "*" if over else "", " ".join(row)))
    lo = min(vals + [1.0]) / 1.3
    hi = max(vals + [1.0]) * 1.3
    lo, hi = min(lo, 0.5), max(hi, 2.0)
    n = len(others)
    w = 0.8 / n
    colors = COLORS
    lines = [
        "set terminal pngcairo size %d,620 font 'sans,10'" % max(900, 70 * len(labels) + 200),
        "set output '%s'" % path,
        "set title \"%s\"" % title,
        "set logscale y",
        "set yrange [%g:%g]" % (lo, hi),
        "set xrange [-0.6:%g]" % (len(labels) - 0.4),
        "set ylabel 'ratio to %s (log scale)'" % ref,
        "set ytics (%s)" % ", ".join('"%g" %g' % (t, t) for t in
                                     (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
                                     if lo <= t <= hi),
        "set grid ytics",
        "set xtics rotate by -35 nomirror",
        "set key outside right top",
        "set style fill solid 0.85 border -1",
        "set arrow from -0.6,1 to %g,1 nohead lw 2 lc rgb '#000000' front" % (len(labels) - 0.4),
    ]
    for i, label in enumerate(labels):
        for j, a in enumerate(others):
            if ratios[kind].get((label, a), 0) is None:
                x = i - 0.4 + w * (j + 0.5)
                lines.append("set label 'FAIL' at %g,1 center rotate by 90 font 'sans,7' front" % x)
    plots = []
    for j, a in enumerate(others):
        off = -0.4 + w * (j + 0.5)
        xt = ":xtic(1)" if j == 0 else ""
        plots.append("'%s' using ($0+%g):%d:($0+%g):($0+%g):(1):%d%s with boxxyerror lc rgb '%s' title '%s'"
                     % (datpath, off, j + 2, off - w / 2, off + w / 2, j + 2, xt,
                        colors[j % len(colors)], a))
    plots.append("1/0 with lines lw 2 lc rgb '#000000' title '%s = 1'" % ref)
    lines.append("plot " + ", \\\n     ".join(plots))
    return run_gnuplot(gnuplot, datpath, lines)


def throughput_table(benches, cells, names):
    """Benchmarks that report a 'mops' metric (million operations per
    second): the median per allocator, and, for a benchmark run at one and at
    more threads, the scaling: ops/s at T threads over ops/s at 1."""
    rows = [["benchmark", "thr"] + names]
    base = {}
    for label, (thr, over) in benches.items():
        per = {}
        for a in names:
            c = cells.get((label, a))
            vals = [m["mops"] for m in (c.metrics if c and c.ok() else []) if "mops" in m]
            if vals:
                per[a] = statistics.median(vals)
        if not per:
            continue
        stem = label.rsplit("-t", 1)[0]
        if thr == 1:
            base[stem] = per
        r = [label, "%d%s" % (thr, "*" if over else "")]
        for a in names:
            if a not in per:
                r.append("-")
                continue
            text = "%.2f" % per[a]
            b = base.get(stem, {}).get(a)
            if thr > 1 and b:
                text += " (x%.2f)" % (per[a] / b)
            r.append(text)
        rows.append(r)
    return table(rows, right_from=2) if len(rows) > 1 else None


def cmd_runs(args):
    allocs = parse_allocs(args.alloc)
    names = [a for a, _, _ in allocs]
    benches, cells = load_runs(args.csv)
    m = machine()
    ref = "gomalloc" if "gomalloc" in names else ("glibc" if "glibc" in names else names[0])
    tables, ratios = build_tables(benches, cells, allocs, ref, m["nproc"])
    benches = {l: v for l, v in benches.items() if not is_release(l)}

    if ref == "gomalloc":
        refnote = "ratio = allocator / gomalloc: above 1 means gomalloc is better"
    else:
        refnote = ("gomalloc was not measured (build/libgomalloc.so missing); "
                   "ratios are to %s instead" % ref)
    notes = ["median of %d runs; %s." % (args.runs, refnote),
             "'~' marks a cell whose runs spread over more than 25% of the median.",
             "thr: threads; '*' = more threads than the %d cores (oversubscribed)." % m["nproc"]]
    fails = [(l, a, c.fail) for (l, a), c in cells.items() if c.fail]
    text = ["", "Wall time, seconds (ratio to %s)" % ref, tables["time"], "",
            "Peak RSS, MiB (ratio to %s)" % ref, tables["rss"]]
    if "frag" in tables:
        text += ["", "Fragmentation: RSS after each phase (medians)", tables["frag"]]
    tput = throughput_table(benches, cells, names)
    if tput:
        text += ["", "Throughput, million ops/s (medians; (xN): scaling over the 1-thread run)",
                 tput]
    if "release" in tables:
        text += ["", "Returning memory to the OS (medians)", tables["release"]]
    text += [""] + notes
    if fails:
        text.append("FAIL cells: " + "; ".join("%s under %s: %s" % f for f in sorted(fails)))
    print("\n".join(text))

    os.makedirs(args.outdir, exist_ok=True)
    charts = {}
    for kind, title in (("time", "Wall time"), ("rss", "Peak RSS")):
        p = os.path.join(args.outdir, "latest-%s.png" % kind)
        err = chart(p, kind, benches, ratios, allocs, ref,
                    "%s, normalized to %s = 1 (lower is better; %s mode, %s; * oversubscribed)"
                    % (title, ref, args.mode, datetime.date.today().isoformat()))
        charts[kind] = err
        if err:
            print("chart %s: %s" % (p, err))

    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    md = ["# gomalloc benchmarks", "",
          "- date: %s" % now,
          "- mode: %s (%d interleaved runs per cell, suite took %d s); raw runs: `%s`"
          % (args.mode, args.runs, args.seconds, os.path.relpath(args.csv, REPO)),
          "- machine: %d cores (nproc), %s, %s memory, Linux %s"
          % (m["nproc"], m["cpu"], m["mem"], m["kernel"]),
          "", "| allocator | version | library |", "| --- | --- | --- |"]
    for a, lib, pkg in allocs:
        md.append("| %s | %s | %s |" % (a, allocator_version(a, pkg),
                                      "`%s`" % os.path.relpath(lib, REPO) if a == "gomalloc"
                                      else ("`%s`" % lib if lib else "(none: libc)")))
    if "gomalloc" not in names:
        md += ["", "gomalloc was not measured: `build/libgomalloc.so` did not exist."]
    md += ["", "## Wall time, seconds (ratio to %s)" % ref, "", "```", tables["time"], "```",
           "", "## Peak RSS, MiB (ratio to %s)" % ref, "", "```", tables["rss"], "```"]
    if "frag" in tables:
        md += ["", "## Fragmentation: RSS after each phase, MiB (medians)", "", "```",
               tables["frag"], "```"]
    if tput:
        md += ["", "## Throughput, million ops/s (medians; (xN): scaling over 1 thread)", "",
               "```", tput, "```"]
    if "release" in tables:
        md += ["", "## Returning memory to the OS (medians)", "", "```", tables["release"], "```"]
    md += [""] + ["- " + n for n in notes]
    if fails:
        md += ["- FAIL cells: " + "; ".join("%s under %s: %s" % f for f in sorted(fails))]
    md += [""]
    for kind in ("time", "rss"):
        if not charts[kind]:
            md.append("![%s](latest-%s.png)" % (kind, kind))
    with open(os.path.join(args.outdir, "latest.md"), "w") as f:
        f.write("\n".join(md) + "\n")


# ---------------------------------------------------------------------------
# instruction counts

def cmd_instr(args):
    allocs = [a for a, _, _ in parse_allocs(args.alloc)]
    per = {}
    sizes = []
    with open(args.csv, newline="") as f:
        for row in csv.DictReader(f):
            size = int(row["size"])
            if size not in sizes:
                sizes.append(size)
            per[(row["allocator"], size)] = row["ir_per_pair"]
    def sz(n):
        if n == 0:
            return "8-512 B random, 1000 live"  # pairs size=0
        return "%d KiB" % (n >> 10) if n >= 1024 and n % 1024 == 0 else "%d B" % n
    rows = [["size"] + allocs]
    for s in sizes:
        rows.append([sz(s)] + [per.get((a, s), "-") for a in allocs])
    print("\nInstructions per malloc+free pair (callgrind Ir, steady state)")
    print(table(rows))


# ---------------------------------------------------------------------------
# RSS over time after free-all (release mode=3)

def load_traces(path):
    """{calls: {allocator: [(t_ms, rss_kb)]}} in file order; the run's total= and date."""
    traces = collections.OrderedDict()
    total, date = "?", "?"
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            per = traces.setdefault(int(row["calls"]), collections.OrderedDict())
            per.setdefault(row["allocator"], []).append((int(row["t_ms"]), int(row["rss_kb"])))
            total, stamp = row["total"], row["date"]   # run.sh's YYYYMMDD-HHMMSS
            date = "%s-%s-%s" % (stamp[:4], stamp[4:6], stamp[6:8])
    return traces, total, date


def sample_at(trace, t_ms):
    """RSS of the first sample at or after t_ms (None if the trace ends before)."""
    return next((kb for t, kb in trace if t >= t_ms), None)


def calls_title(calls):
    if calls == 0:
        return "idle: no allocator call after the frees"
    return "%d malloc+free pairs (16-256 B) every 10 ms" % calls


def human_bytes(arg):
    """'1G' -> '1 GiB', as release's total= argument is written."""
    units = {"K": "KiB", "M": "MiB", "G": "GiB"}
    return arg[:-1] + " " + units[arg[-1]] if arg[-1:] in units else arg + " bytes"


def rss_time_table(traces, allocs):
    rows = [["RSS, MiB", ""] + allocs]
    for calls, per in traces.items():
        # the last sample is due at `seconds`, and comes a few ms late
        end = round(statistics.median(trace[-1][0] for trace in per.values()) / 1000.0, 1)
        points = [(0, "just after the frees")] + [(1000, "1 s after")] * (end > 1)
        for t_ms, what in points + [(None, "%g s after (the end)" % end)]:
            r = ["%s: %s" % ("idle" if calls == 0 else "calls=%d" % calls, what), ""]
            for a in allocs:
                kb = None
                if a in per:
                    kb = per[a][-1][1] if t_ms is None else sample_at(per[a], t_ms)
                r.append("-" if kb is None else fmt_mib(kb))
            rows.append(r)
    return table(rows, right_from=2)


def rss_time_chart(path, traces, allocs, total, date):
    """One panel per calls value: RSS (MiB) against seconds since the frees, a line per
    allocator."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return "gnuplot not installed"
    work = os.path.join(REPO, "build", "bench")
    os.makedirs(work, exist_ok=True)
    datpath = os.path.join(work, "rss-time.dat")
    index = {}
    with open(datpath, "w") as f:
        for calls, per in traces.items():
            for a, trace in per.items():
                index[(calls, a)] = len(index)
                f.write("# calls=%d %s: t_s rss_mib\n" % (calls, a))
                f.writelines("%.3f %.1f\n" % (t / 1000.0, kb / 1024.0) for t, kb in trace)
                f.write("\n\n")
    tmin = min(t for per in traces.values() for trace in per.values() for t, _ in trace)
    tmax = max(t for per in traces.values() for trace in per.values() for t, _ in trace)
    others = [a for a in allocs if a != "gomalloc"]
    style = {"gomalloc": "lw 3 lc rgb '#000000'"}
    for j, a in enumerate(others):
        style[a] = "lw 2 lc rgb '%s'" % COLORS[j % len(COLORS)]
    lines = [
        "set terminal pngcairo size 1200,480 font 'sans,10'",
        "set output '%s'" % path,
        "set multiplot layout 1,%d title \"RSS after freeing %s of 1000-byte objects (%s)\""
        % (len(traces), human_bytes(total), date),
        "set xlabel 'seconds since the last free'",
        "set ylabel 'RSS, MiB'",
        "set xrange [%g:%g]" % (tmin / 1000.0 - 0.05, tmax / 1000.0),
        "set yrange [0:*]",
        "set grid",
        "set key below horizontal maxcols 5 reverse Left samplen 2 width 1",
    ]
    for calls, per in traces.items():
        lines.append("set title \"%s\"" % calls_title(calls))
        plots = ["'%s' index %d using 1:2 with lines %s title '%s'"
                 % (datpath, index[(calls, a)], style[a], a) for a in allocs if a in per]
        lines.append("plot " + ", \\\n     ".join(plots))
    lines.append("unset multiplot")
    return run_gnuplot(gnuplot, datpath, lines)


def cmd_rsstime(args):
    traces, total, date = load_traces(args.csv)
    if not traces:
        print("no traces in %s" % args.csv)
        return
    allocs = []
    for per in traces.values():
        allocs += [a for a in per if a not in allocs]
    print("\nRSS after freeing %s (release mode=3; one run each)" % human_bytes(total))
    print(rss_time_table(traces, allocs))
    err = rss_time_chart(args.png, traces, allocs, total, date)
    if err:
        print("chart %s: %s" % (args.png, err))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("runs")
    r.add_argument("--csv", required=True)
    r.add_argument("--outdir", required=True)
    r.add_argument("--mode", default="full")
    r.add_argument("--runs", type=int, default=0)
    r.add_argument("--seconds", type=int, default=0)
    r.add_argument("--alloc", action="append")
    i = sub.add_parser("instr")
    i.add_argument("--csv", required=True)
    i.add_argument("--alloc", action="append")
    t = sub.add_parser("rsstime")
    t.add_argument("--csv", required=True)
    t.add_argument("--png", required=True)
    args = ap.parse_args()
    if args.cmd == "runs":
        cmd_runs(args)
    elif args.cmd == "instr":
        cmd_instr(args)
    else:
        cmd_rsstime(args)


if __name__ == "__main__":
    main()
