# A deterministic allocation-heavy Python workload for gomalloc's test suite:
# dicts, lists, strings, bytes, sets, big integers, JSON and regular
# expressions, plus threads handing objects to each other.  Prints digests
# that must be identical with and without LD_PRELOAD=libgomalloc.so.
import hashlib
import json
import queue
import re
import sys
import threading


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def lcg(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield x >> 33


def words(n, seed):
    g = lcg(seed)
    out = []
    for _ in range(n):
        k = 1 + next(g) % 24
        out.append("".join(chr(97 + next(g) % 26) for _ in range(k)))
    return out


def dicts():
    ws = words(120000, 1)
    counts = {}
    for w in ws:
        counts[w] = counts.get(w, 0) + 1
    index = {}
    for i, w in enumerate(ws):
        index.setdefault(w[:2], []).append(i)
    nested = {w: {"len": len(w), "rev": w[::-1], "pos": [i, i * 2]} for i, w in enumerate(ws[:30000])}
    for k in list(nested)[::3]:
        del nested[k]
    return digest(sorted(counts.items())[:2000]), digest(sorted((k, len(v)) for k, v in index.items())), \
        digest(sorted(nested.items())[:500]), len(counts), len(nested)


def lists():
    g = lcg(7)
    xs = [next(g) % 1000003 for _ in range(300000)]
    ys = sorted(xs)
    zs = [x * x for x in ys if x % 3]
    chunks = [xs[i:i + 37] for i in range(0, len(xs), 37)]
    chunks.sort(key=lambda c: (sum(c) % 101, c[0]))
    flat = [v for c in chunks for v in reversed(c)]
    return digest(ys[::1000]), sum(zs) % 1000000007, digest(flat[::997]), len(chunks)


def strings():
    ws = words(80000, 3)
    text = " ".join(ws)
    up = text.upper()
    parts = re.findall(r"\b[a-e]\w{3,7}\b", text)
    repl = re.sub(r"([aeiou])([^aeiou ])", r"\2\1", text)
    enc = text.encode("utf-16")
    bs = bytearray(text, "ascii")
    for i in range(0, len(bs), 7):
        bs[i] ^= 0x20
    fmt = ["%s:%d:%x" % (w, i, i * 31) for i, w in enumerate(ws[:40000])]
    return digest(up[-1000:]), len(parts), digest(repl[:5000]), len(enc), \
        hashlib.sha256(bytes(bs)).hexdigest()[:16], digest(fmt[::101])


def bigints_and_sets():
    f = 1
    for i in range(1, 3000):
        f *= i
    s1 = set(range(0, 400000, 3))
    s2 = set(range(0, 400000, 5))
    fs = frozenset(words(20000, 9))
    return hex(f)[:30], f.bit_length(), f % 1000000007, len(s1 & s2), len(s1 | s2), len(s1 ^ s2), digest(sorted(fs)[:300])


def json_roundtrip():
    g = lcg(11)
    doc = [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (next(g) % 50) for _ in range(next(g) % 8)],
            "value": (next(g) % 100000) / 7.0} for i in range(40000)]
    s = json.dumps(doc, sort_keys=True)
    back = json.loads(s)
    return len(s), hashlib.sha256(s.encode()).hexdigest()[:16], back == doc


def threads():
    q = queue.Queue(maxsize=1000)
    results = []
    lock = threading.Lock()

    def producer(seed):
        g = lcg(seed)
        for _ in range(20000):
            n = next(g) % 200
            q.put(["x" * (n % 17), list(range(n % 13)), {n: str(n)}])
        q.put(None)

    def consumer():
        total = 0
        while True:
            item = q.get()
            if item is None:
                break
            total += len(item[0]) + sum(item[1]) + len(item[2])
        with lock:
            results.append(total)

    ps = [threading.Thread(target=producer, args=(s,)) for s in (21, 22, 23)]
    cs = [threading.Thread(target=consumer) for _ in range(3)]
    for t in ps + cs:
        t.start()
    for t in ps + cs:
        t.join()
    return sum(results)


def main():
    out = [dicts(), lists(), strings(), bigints_and_sets(), json_roundtrip(), threads()]
    for line in out:
        print(line)
    print("all", digest(out))


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
