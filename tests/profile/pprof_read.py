#!/usr/bin/env python3
"""A small reader of gzipped pprof profiles (profile.proto), for the tests:
no Go and no protobuf package needed.

    pprof_read.py PROFILE BINARY          prints per function of BINARY:
                                          name alloc_objects alloc_space
                                          inuse_objects inuse_space
                                          (flat: the innermost frame in BINARY)
    pprof_read.py PROFILE BINARY --caller the same, by the frame in BINARY
                                          just outside the innermost one

Symbols come from `nm` on BINARY; addresses are mapped through the
profile's mappings and BINARY's program headers.
"""
import gzip
import struct
import subprocess
import sys


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b):
    """Yields (field number, wire type, value) of a message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v = b[i:i + n]
            i += n
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def packed(v):
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i)
        out.append(x)
    return out


def msg(b):
    d = {}
    for f, wt, v in fields(b):
        d.setdefault(f, []).append(v)
    return d


def load(path):
    with gzip.open(path) as f:  # checks the CRC and the length
        data = f.read()
    p = msg(data)
    strings = [s.decode() for s in p.get(6, [])]
    prof = {"strings": strings, "sample_types": [], "samples": [], "mappings": {},
            "locations": {}}
    for vt in p.get(1, []):
        m = msg(vt)
        prof["sample_types"].append((strings[m.get(1, [0])[0]], strings[m.get(2, [0])[0]]))
    if 11 in p:
        m = msg(p[11][0])
        prof["period_type"] = (strings[m.get(1, [0])[0]], strings[m.get(2, [0])[0]])
    prof["period"] = p.get(12, [0])[0]
    for mp in p.get(3, []):
        m = msg(mp)
        prof["mappings"][m[1][0]] = {
            "start": m.get(2, [0])[0], "limit": m.get(3, [0])[0],
            "offset": m.get(4, [0])[0], "file": strings[m.get(5, [0])[0]]}
    for lp in p.get(4, []):
        m = msg(lp)
        prof["locations"][m[1][0]] = {"mapping": m.get(2, [0])[0], "address": m.get(3, [0])[0]}
    for sp in p.get(2, []):
        m = msg(sp)
        locs = []
        for v in m.get(1, []):
            locs += packed(v) if isinstance(v, (bytes, bytearray)) else [v]
        vals = []
        for v in m.get(2, []):
            vals += packed(v) if isinstance(v, (bytes, bytearray)) else [v]
        vals = [x - (1 << 64) if x >= 1 << 63 else x for x in vals]
        prof["samples"].append({"locations": locs, "values": vals})
    return prof


def load_segments(binary):
    """PT_LOAD segments of an ELF64 file: (offset, vaddr, filesz)."""
    with open(binary, "rb") as f:
        h = f.read(64)
        phoff, = struct.unpack_from("<Q", h, 32)
        phentsize, phnum = struct.unpack_from("<HH", h, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    segs = []
    for i in range(phnum):
        ptype, _flags, off, vaddr, _paddr, filesz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
        if ptype == 1:
            segs.append((off, vaddr, filesz))
    return segs


def symbols(binary):
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    return syms


def by_function(prof, binary, depth=0):
    """Flat values per function of `binary` (innermost frame in it, or with
    depth=1 the frame in it just outside that one)."""
    import os
    segs = load_segments(binary)
    syms = symbols(binary)
    real = os.path.realpath(binary)

    def name_of(loc_id):
        loc = prof["locations"][loc_id]
        m = prof["mappings"].get(loc["mapping"])
        if not m or os.path.realpath(m["file"]) != real:
            return None
        off = loc["address"] - m["start"] + m["offset"]
        for so, sv, sz in segs:
            if so <= off < so + sz:
                va = off - so + sv
                for start, size, name in syms:
                    if start <= va < start + size:
                        return name
        return "?"

    totals = {}
    for s in prof["samples"]:
        seen = 0
        for loc in s["locations"]:
            n = name_of(loc)
            if n and seen == depth:
                t = totals.setdefault(n, [0] * len(s["values"]))
                for i, v in enumerate(s["values"]):
                    t[i] += v
                break
            if n:
                seen += 1
    return totals


if __name__ == "__main__":
    prof = load(sys.argv[1])
    print("sample types:", prof["sample_types"], "period", prof["period"])
    depth = 1 if "--caller" in sys.argv[3:] else 0
    for name, vals in sorted(by_function(prof, sys.argv[2], depth).items(),
                             key=lambda kv: -kv[1][-1]):
        print(name, *vals)
