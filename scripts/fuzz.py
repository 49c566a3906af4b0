#!/usr/bin/env python3
"""Fuzz the sparc binary with hostile model files and generated programs.

Each worker keeps one `sparc` REPL process (a session) and feeds it one input at a time
on stdin: a generated program, or a driver that loads a mutated file by path. After each
input comes a line naming an undefined variable; its error on stderr marks the end of
the input, so every input gets its own output, time and timeout. The session survives
errors and is restarted after a crash or hang, or every --batch inputs. Everything runs
under an address-space limit. Each input is classified:

  ok     ran to the end without an error
  error  ended in an `error:` message (the answer sparc should give to bad input)
  odd    the process exited by itself with no signal (or, run alone, exit 1 without `error:`)
  crash  killed by a signal (a Swift trap is SIGILL/SIGTRAP, then SIGSEGV, SIGBUS, SIGABRT…)
  hang   still running at the timeout (per input)

A crash, hang or odd exit is rerun alone in a fresh process (with Swift's backtracer) to
confirm it and get its signature; one that only happens in a session is kept as the
session's transcript. Findings are de-duplicated by class + signal + the runtime's
reason + the first frame in Sources/, minimised (programs: by lines, then by chunks;
files: by dropping mutations), and saved under OUT/findings/<id>/ with a `repro.sh`.
OUT/summary.json and OUT/summary.md hold the counts; docs/RELIABILITY.md explains how
to read them.

  Quick (CI, ~2 minutes):  python3 scripts/fuzz.py --quick --out /tmp/fuzz
  Long (by hand):          python3 scripts/fuzz.py --minutes 60 --out /tmp/fuzz
  One target only:         python3 scripts/fuzz.py --targets gguf,program --count 500 --out /tmp/fuzz
  Replay a finding:        sh /tmp/fuzz/findings/<id>/repro.sh

Standard library only. Inputs are a pure function of (--seed, case number), so a run
with the same seed and binary finds the same things.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "SparcModelTests", "Fixtures")
BUILTIN_SOURCES = os.path.join(ROOT, "Sources", "SparcLang", "Builtins")

GGUF_SEEDS = ["tiny-gqa.gguf", "tiny-tied.gguf", "tiny-quant.gguf", "families/gemma3-six.gguf"]
HF_SEED = "tiny-gqa"  # folder: config.json, model.safetensors, tokenizer.json

# ---------------------------------------------------------------------------------------
# Running one process


class Outcome:
    def __init__(self, kind, rc, sig, stderr, seconds):
        self.kind, self.rc, self.sig, self.stderr, self.seconds = kind, rc, sig, stderr, seconds
        self.backtrace = ""

    def signature(self):
        """What identifies a finding: class, signal, the runtime's reason and the first
        frame in sparc's sources (from a backtrace rerun), else the top message with
        numbers, paths and quoted values blurred, so one bug found twice counts once."""
        if self.kind == "hang":
            return "hang"
        name = signal_name(self.sig) if self.sig else f"exit {self.rc}"
        reason, frame = explain_backtrace(self.backtrace)
        if reason or frame:
            return f"{self.kind} {name}: {reason or '(no reason)'} @ {frame or '?'}"
        return f"{self.kind} {name}: {top_message(self.stderr)}"


BACKTRACE_ENV = {"SWIFT_BACKTRACE": "enable=yes,interactive=no,threads=crashed,registers=none,images=none,"
                                    "sanitize=no,limit=40,top=30,color=no"}


def explain_backtrace(text):
    """(reason, first frame in Sources/) from a Swift backtrace."""
    reason = frame = None
    for line in text.splitlines():
        if line.strip() == "..." and reason is not None:
            break  # frames from here on are the bottom of the stack (main, thread start)
        m = re.search(r"(?:Swift runtime failure|Fatal error|Program crashed): (.+)", line)
        if m and reason is None:
            reason = re.sub(r"\s*\*\*\*$| in sparc\S* at .*$", "", m.group(1)).strip()
        f = re.search(r" at \S*/Sources/(\S+?):(\d+)", line)
        if f and frame is None:
            fn = re.search(r"0x[0-9a-f]+ (.+?) \+ \d+ in ", line)
            frame = f"{f.group(1)}:{f.group(2)}" + (f" ({fn.group(1)[:80]})" if fn else "")
    if reason:
        reason = re.sub(r"\b0x[0-9a-fA-F]+\b", "ADDR", reason)
        reason = re.sub(r"\d+", "N", reason)[:160]
    return reason, frame


def signal_name(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def top_message(stderr):
    lines = [l.strip()[:300] for l in stderr.splitlines() if l.strip() and l.strip() != "[…]"]
    pick = None
    for l in lines:
        if "Fatal error" in l or "fatal error" in l or "Program crashed" in l or "precondition" in l.lower():
            pick = l
            break
    if pick is None:
        pick = lines[-1] if lines else "(no message)"
    pick = re.sub(r"^.*?/([^/\s]+\.swift)", r"\1", pick)  # path → file name
    pick = re.sub(r"\"[^\"]*\"", "\"…\"", pick)
    pick = re.sub(r"\b0x[0-9a-fA-F]+\b", "ADDR", pick)
    pick = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", pick)
    return pick[:200]


def clip(text, keep=3000):
    """Head and tail of stderr: a diagnostic echoes the source line, which can be huge."""
    return text if len(text) <= 2 * keep else text[:keep] + "\n[…]\n" + text[-keep:]


def limit_resources(mem_bytes):
    def apply():
        os.setsid()  # own process group: a timeout kills its helpers too
        if mem_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_process(argv, cwd, timeout, mem_bytes, stdin_text=None, env_extra=None, explain=True):
    env = dict(os.environ)
    env.update({
        "SPARC_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",  # two workers on two cores
        "SPARC_HISTORY": "/dev/null",
        "SPARC_PATH": os.path.join(ROOT, "stdlib"),  # ioi() and friends, wherever the binary lives
        "HOME": cwd,  # no installed models: `load_model("smollm2")` fails fast instead of loading 100 MB
        "SWIFT_BACKTRACE": "enable=no",  # symbolication takes seconds; repro.sh turns it back on
    })
    env.update(env_extra or {})
    start = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=limit_resources(mem_bytes))
    try:
        _, err = p.communicate(stdin_text.encode() if stdin_text is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, err = p.communicate()
        return Outcome("hang", None, None, clip(err.decode(errors="replace")), time.monotonic() - start)
    err = err.decode(errors="replace")
    seconds = time.monotonic() - start
    has_error_line = "error" in err
    err = clip(err)
    rc = p.returncode
    if rc < 0:
        out = Outcome("crash", rc, -rc, err, seconds)
        if explain and not env_extra:
            # Run it again with Swift's backtracer on (too slow to leave on): the trap's
            # reason and location tell apart crashes that print nothing in release builds.
            again = run_process(argv, cwd, timeout + 20, mem_bytes, stdin_text, BACKTRACE_ENV, explain=False)
            out.backtrace = again.stderr[-6000:]
        return out
    if rc == 0:
        return Outcome("ok", rc, None, err, seconds)
    if rc == 1 and has_error_line:
        return Outcome("error", rc, None, err, seconds)
    if rc >= 128 and rc - 128 in (4, 5, 6, 7, 11):  # a shell's report of a signal
        return Outcome("crash", rc, rc - 128, err, seconds)
    return Outcome("odd", rc, None, err, seconds)


# ---------------------------------------------------------------------------------------
# Byte-level mutations (any file)

INTERESTING_U64 = [0, 1, 2, 31, 32, 33, 255, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                   1 << 32, 1 << 40, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 32]


def apply_ops(data, ops):
    """Applies mutation ops in order. Each op is a small JSON-able list, so a finding
    records exactly what was done and minimisation can drop ops one by one."""
    b = bytearray(data)
    for op in ops:
        kind = op[0]
        if kind == "set":  # ["set", offset, hex bytes]
            at, raw = op[1], bytes.fromhex(op[2])
            if at <= len(b):
                b[at:at + len(raw)] = raw
        elif kind == "flip":  # ["flip", offset, bit]
            if op[1] < len(b):
                b[op[1]] ^= 1 << op[2]
        elif kind == "insert":
            b[op[1]:op[1]] = bytes.fromhex(op[2])
        elif kind == "delete":
            del b[op[1]:op[1] + op[2]]
        elif kind == "truncate":
            del b[op[1]:]
        elif kind == "dup":  # copy a chunk over another place
            chunk = b[op[1]:op[1] + op[3]]
            b[op[2]:op[2] + len(chunk)] = chunk
        elif kind == "replace":  # whole new content (structured JSON mutations)
            b = bytearray(bytes.fromhex(op[1]))
    return bytes(b)


def byte_ops(rng, size, n):
    ops = []
    for _ in range(n):
        at = rng.randrange(max(size, 1))
        r = rng.random()
        if r < 0.35:
            ops.append(["flip", at, rng.randrange(8)])
        elif r < 0.55:
            v = rng.choice(INTERESTING_U64)
            w = rng.choice([1, 2, 4, 8])
            ops.append(["set", at, (v & ((1 << (8 * w)) - 1)).to_bytes(w, "little").hex()])
        elif r < 0.65:
            ops.append(["insert", at, bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8, 100]))).hex()])
        elif r < 0.75:
            ops.append(["delete", at, rng.choice([1, 4, 8, 64, 1000])])
        elif r < 0.85:
            ops.append(["dup", rng.randrange(max(size, 1)), at, rng.choice([8, 32, 256])])
        else:
            ops.append(["truncate", at])
    return ops


# ---------------------------------------------------------------------------------------
# GGUF: field-aware mutations

GGUF_VALUE_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def parse_gguf(data):
    """Offsets of every field a mutation may target: counts, string lengths, value types,
    array counts, numeric metadata values, tensor ranks, dims, types and data offsets."""
    fields = {"count": [], "strlen": [], "vtype": [], "arrcount": [], "num": [], "rank": [], "dim": [], "ttype": [], "toff": []}
    fields["count"] += [(8, 8), (16, 8)]
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    pos = 24

    def string(p):
        fields["strlen"].append((p, 8))
        n = struct.unpack_from("<Q", data, p)[0]
        return p + 8 + n, data[p + 8:p + 8 + n].decode(errors="replace")

    def value(p, t, key):
        if t in GGUF_VALUE_SIZES:
            fields["num"].append((p, GGUF_VALUE_SIZES[t], key, t))
            return p + GGUF_VALUE_SIZES[t]
        if t == 8:
            return string(p)[0]
        if t == 9:
            fields["vtype"].append((p, 4))
            et = struct.unpack_from("<I", data, p)[0]
            fields["arrcount"].append((p + 4, 8))
            n = struct.unpack_from("<Q", data, p + 4)[0]
            p += 12
            for i in range(n):
                if i >= 3 and et in GGUF_VALUE_SIZES:  # fixed-size tail: skip without recording
                    return p + (n - i) * GGUF_VALUE_SIZES[et]
                p = value(p, et, key) if (i < 3 or et != 8) else string(p)[0]
            return p
        raise ValueError(t)

    for _ in range(n_kv):
        pos, key = string(pos)
        fields["vtype"].append((pos, 4))
        t = struct.unpack_from("<I", data, pos)[0]
        pos = value(pos + 4, t, key)
    tensors = []
    for _ in range(n_tensors):
        pos, name = string(pos)
        fields["rank"].append((pos, 4))
        nd = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        for _ in range(nd):
            fields["dim"].append((pos, 8))
            pos += 8
        fields["ttype"].append((pos, 4))
        fields["toff"].append((pos + 4, 8))
        tensors.append((name, pos + 4))
        pos += 12
    # Too many string-length fields in a vocabulary to be interesting one by one: keep a sample.
    if len(fields["strlen"]) > 400:
        fields["strlen"] = fields["strlen"][:200] + fields["strlen"][-200:]
    return fields, tensors


def gguf_ops(rng, data, parsed):
    fields, tensors = parsed
    ops = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        r = rng.random()
        if r < 0.15 and tensors:  # data offsets: extremes, shared, misaligned
            choice = rng.random()
            if choice < 0.3:
                for _, at in tensors:
                    ops.append(["set", at, (0).to_bytes(8, "little").hex()])
            else:
                at = rng.choice(tensors)[1]
                v = rng.choice(INTERESTING_U64 + [len(data), len(data) - 32, 1, 7])
                ops.append(["set", at, (v % (1 << 64)).to_bytes(8, "little").hex()])
        elif r < 0.3 and fields["dim"]:
            at, _ = rng.choice(fields["dim"])
            ops.append(["set", at, rng.choice(INTERESTING_U64).to_bytes(8, "little").hex()])
        elif r < 0.4:
            kind = rng.choice(["count", "strlen", "arrcount"])
            if fields[kind]:
                at, _ = rng.choice(fields[kind])
                ops.append(["set", at, rng.choice(INTERESTING_U64).to_bytes(8, "little").hex()])
        elif r < 0.5:
            kind = rng.choice(["vtype", "rank", "ttype"])
            if fields[kind]:
                at, _ = rng.choice(fields[kind])
                ops.append(["set", at, rng.choice([0, 1, 2, 3, 5, 8, 9, 12, 13, 30, 31, 255, 0xFFFFFFFF]).to_bytes(4, "little").hex()])
        elif r < 0.8 and fields["num"]:  # model hyperparameters: 0, huge, negative, NaN
            at, size, key, t = rng.choice(fields["num"])
            if t in (6, 12):
                v = rng.choice([0.0, -1.0, 1e-30, 1e30, float("inf"), float("-inf"), float("nan")])
                raw = struct.pack("<f" if t == 6 else "<d", v)
            else:
                v = rng.choice([0, 1, 2, 3, 7, 1 << 15, 1 << 31, (1 << 63), (1 << 64) - 1, 1 << 20])
                raw = (v % (1 << (8 * size))).to_bytes(size, "little")
            ops.append(["set", at, raw.hex()])
        elif r < 0.9:
            cut = rng.choice([rng.randrange(len(data)), len(data) - rng.randrange(1, 64), rng.randrange(24, 4096)])
            ops.append(["truncate", max(cut, 0)])
        else:
            ops += byte_ops(rng, len(data), rng.choice([1, 2, 8]))
    return ops


# ---------------------------------------------------------------------------------------
# JSON files (config.json, tokenizer.json, a safetensors header): structured mutations

HOSTILE_JSON = [0, -1, 1, 2, 1 << 31, 1 << 53, 1 << 63, 1 << 64, -(1 << 63), 10 ** 30, 1e308, -1e308, 0.5, -0.0,
                "", "x", "\u0000", "é😀" * 3, "a" * 5000, None, True, False, [], {}, [0], {"a": 1}]


def json_paths(obj, path=(), out=None, limit=20000):
    out = [] if out is None else out
    if len(out) >= limit or len(path) > 40:
        return out
    out.append(path)
    if isinstance(obj, dict):
        for k, v in obj.items():
            json_paths(v, path + (k,), out, limit)
    elif isinstance(obj, list):
        idx = range(len(obj)) if len(obj) <= 8 else sorted(set([0, 1, 2, len(obj) - 1] + [random.Random(len(obj)).randrange(len(obj)) for _ in range(4)]))
        for i in idx:
            json_paths(obj[i], path + (i,), out, limit)
    return out


def json_get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def fresh_json(v):
    """A copy of a HOSTILE_JSON value: inserting the shared list or dict itself let a later
    mutation of the same case put it inside itself (a cycle json.dumps refuses) and changed
    it for every later case of the worker."""
    return json.loads(json.dumps(v))


def json_mutate(rng, obj, n):
    """Returns (new object, description). Values swap type, grow huge, nest deeply."""
    obj = json.loads(json.dumps(obj))
    notes = []
    for _ in range(n):
        paths = json_paths(obj)
        path = rng.choice(paths)
        r = rng.random()
        if not path:
            continue
        parent, key = json_get(obj, path[:-1]), path[-1]
        if r < 0.45:
            v = fresh_json(rng.choice(HOSTILE_JSON))
            notes.append(f"set {list(path)} = {str(v)[:40]}")
        elif r < 0.6:
            other = rng.choice(paths)
            v = json.loads(json.dumps(json_get(obj, other)))
            notes.append(f"set {list(path)} = value of {list(other)}")
        elif r < 0.7:
            depth = rng.choice([50, 600, 5000, 100000])
            v = DEEP_MARKER + str(depth)  # expanded when serialised: Python's json would recurse too
            notes.append(f"set {list(path)} = list nested {depth} deep")
        elif r < 0.85:
            if isinstance(parent, dict):
                del parent[key]
            else:
                del parent[key]
            notes.append(f"delete {list(path)}")
            continue
        else:
            cur = parent[key]
            if isinstance(cur, (int, float)) and not isinstance(cur, bool):
                v = rng.choice([cur * 1000, -cur, cur + 1, cur - 1, 0, cur * (1 << 20)])
            elif isinstance(cur, str):
                v = rng.choice([cur * 50, cur[::-1], cur[:1], "", cur + "\ud7ff"])
            elif isinstance(cur, list):
                v = cur * rng.choice([0, 2, 50]) if len(cur) < 2000 else cur[: len(cur) // 2]
            else:
                v = fresh_json(rng.choice(HOSTILE_JSON))
            notes.append(f"tweak {list(path)}")
        try:
            parent[key] = v
        except (IndexError, KeyError, TypeError):
            pass
    return obj, notes


DEEP_MARKER = "@@deep-nesting@@"


def json_dumps_hostile(obj):
    # NaN/Infinity come out as bare words: invalid JSON, on purpose.
    text = json.dumps(obj)
    return re.sub(json.dumps(DEEP_MARKER)[:-1] + r'(\d+)"', lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text).encode()


def safetensors_split(data):
    n = struct.unpack_from("<Q", data, 0)[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def safetensors_ops(rng, data):
    header, body = safetensors_split(data)
    names = [k for k in header if k != "__metadata__"]
    r = rng.random()
    notes = []
    if r < 0.6:
        h = json.loads(json.dumps(header))
        for _ in range(rng.choice([1, 1, 2])):
            name = rng.choice(names)
            e = h.get(name)
            if not isinstance(e, dict):
                continue
            s = rng.random()
            if s < 0.25:
                other = h.get(rng.choice(names), {})
                e["data_offsets"] = rng.choice([[0, 0], [0, len(body)], other.get("data_offsets", [0, 0]),
                                                [rng.choice(INTERESTING_U64), rng.choice(INTERESTING_U64)], [-1, 4], [1.5, 2], [0]])
                notes.append(f"{name}.data_offsets = {e['data_offsets']}")
            elif s < 0.5:
                e["shape"] = rng.choice([[], [0], [-1], [1 << 62, 4], [1 << 40, 1 << 40], [2.5], [True], e.get("shape", [])[::-1],
                                         list(e.get("shape", [])) + [1], [1] * 40])
                notes.append(f"{name}.shape = {e['shape']}")
            elif s < 0.65:
                e["dtype"] = rng.choice(["F64", "I64", "F16", "BF16", "BOOL", "U8", "", 5])
                notes.append(f"{name}.dtype = {e['dtype']}")
            elif s < 0.8:
                new = rng.choice(["__metadata__", "", name + ".x", names[0], "model.layers.99.mlp.up_proj.weight", "a" * 10000])
                h[new] = h.pop(name)
                notes.append(f"rename {name} -> {new[:40]}")
            elif s < 0.9:
                h.pop(name)
                notes.append(f"drop {name}")
            else:
                h["__metadata__"] = rng.choice([{"format": 1}, [], "x", {"format": "pt", "k": "v" * 1000}])
                notes.append("__metadata__ replaced")
        hb = json_dumps_hostile(h)
        new = struct.pack("<Q", len(hb)) + hb + body
        return [["replace", new.hex()]], notes
    if r < 0.75:
        v = rng.choice(INTERESTING_U64 + [len(data), len(data) - 8])
        return [["set", 0, v.to_bytes(8, "little").hex()]], [f"header length = {v}"]
    return byte_ops(rng, len(data), rng.choice([1, 2, 4])), ["byte mutations"]


# ---------------------------------------------------------------------------------------
# Programs: a grammar-based generator


def load_builtins():
    """{name: (params, variadic)} for the hostile generator, from `parse_builtin_table`, so
    new builtins get fuzzed without editing this file. Falls back to a fixed list if the
    sources moved."""
    table = {n: (params, variadic) for n, (params, _, variadic) in parse_builtin_table().items()}
    if len(table) < 10:
        table = {n: (["x"], True) for n in "print len range min max abs round sqrt exp log zeros ones tensor arange rand shape reshape sum mean topk".split()}
    return table


NUMBERS = ["0", "1", "-1", "2", "3", "0.5", "-0.5", "7", "64", "1e308", "-1e308", "1e-320", "1e15", "1e16",
           "2 ** 53", "2 ** 63", "2 ** 64", "4294967296", "(0 / 0)", "(1 / 0)", "(-1 / 0)", "-0", "100000000", "1e400"]
WORDS = ["", "a", "hello world", "The quick brown fox", "é😀", "\\n", "{", "x" * 300, "global", "layer", "lrp",
         "weight", "neuron", "head", "hidden", "token", "gradient", "magnitude", "wanda", "most", "least", "component",
         "logit_diff", "lm", "linear", "all"]


class ProgramGen:
    """Random programs in the sparc language. `M` is a tiny model bound by the preamble."""

    def __init__(self, rng, builtins):
        self.rng, self.builtins, self.names = rng, builtins, ["x0"]

    def number(self):
        return self.rng.choice(NUMBERS) if self.rng.random() < 0.6 else str(self.rng.choice([0, 1, 2, 3, 4, 5, 8, 16, -2, 0.25]))

    def string(self, depth):
        r = self.rng.random()
        if r < 0.2 and depth > 0:  # interpolation, possibly nested
            return '"pre {' + self.expr(depth - 1) + '} post"'
        if r < 0.25:
            inner = '"{' * 4 + "1" + '}"' * 4
            return inner
        w = self.rng.choice(WORDS)
        return '"' + w.replace('"', "") + '"'

    def path(self):
        # Relative names only: processes run inside a scratch folder.
        return '"' + self.rng.choice(["out.safetensors", "out.gguf", "outdir", "x.svg", "h.html", "", ".", "no/such/dir/f.safetensors",
                                       "n" * 300 + ".safetensors", "out.safetensors/", "__metadata__.safetensors"]) + '"'

    def atom(self, depth):
        r = self.rng.random()
        if r < 0.3:
            return self.number()
        if r < 0.4:
            return self.string(depth)
        if r < 0.5:
            return self.rng.choice(self.names + ["M", "nil", "true", "false", "args"])
        if r < 0.6:
            return "[" + ", ".join(self.expr(depth - 1) for _ in range(self.rng.randrange(4))) + "]"
        if r < 0.65:
            return "{" + ", ".join(f"{k}: {self.expr(depth - 1)}" for k in self.rng.sample(["a", "b", "answer", "foil", "__metadata__"], self.rng.randrange(3))) + "}"
        if r < 0.8:
            shape = ", ".join(self.rng.choice(["0", "1", "2", "3", "4", "-1", "1e9", "2 ** 40", "0.5"]) for _ in range(self.rng.randrange(1, 4)))
            return self.rng.choice(["zeros", "ones", "rand"]) + "(" + shape + ")"
        return self.call(depth)

    # What each parameter name usually wants, so that most calls get past type checks
    # and reach the code behind them (with hostile values inside the right type).
    TENSORISH = {"x", "t", "r", "relevance", "value", "values", "a", "b", "y"}
    NUMERIC = {"seed", "axis", "window", "temperature", "stop", "step", "start", "n", "max_tokens", "k", "top_p", "top_k",
               "stride", "samples", "digits", "batch", "keep", "refine", "grid"}
    TEXTUAL = {"text", "per", "metric", "title", "separator", "name", "by", "prompt", "order", "old", "new", "method",
               "level", "replacement", "input", "target", "parameters", "function"}
    LISTY = {"texts", "prompts", "list", "sparsities", "series", "items", "ids", "fractions", "foils", "answers", "maps", "inputs"}

    def model_value(self, depth):
        """Values of sparc's own types: relevance maps, masks, tasks."""
        return self.rng.choice([
            'attribute(M, "hi", method: "magnitude")', 'attribute(M, "hi there", level: "neuron")',
            'attribute(M, "a b", level: "head", method: "gradient")', 'bottomk(attribute(M, "x", method: "magnitude"), 0.5)',
            'ioi(2)', 'task(["a b"], [" c"], [" d"])', 'tokenize(M, "the cat")',
        ])

    def argument(self, p, depth):
        r = self.rng.random()
        if r < 0.2:
            return self.expr(depth - 1)  # anything at all
        if p in self.TENSORISH:
            return self.rng.choice([self.atom(depth), "x0", self.model_value(depth)]) if r < 0.8 else self.number()
        if p in self.NUMERIC:
            return self.number()
        if p in self.TEXTUAL:
            return self.string(depth)
        if p in self.LISTY:
            return "[" + ", ".join(self.rng.choice([self.string(depth - 1), self.number()]) for _ in range(self.rng.randrange(4))) + "]"
        if p in ("mask", "task", "r", "maps"):
            return self.model_value(depth)
        return self.expr(depth - 1)

    def call(self, depth):
        name = self.rng.choice(list(self.builtins))
        params, variadic = self.builtins[name]
        n = len(params)
        if self.rng.random() < 0.2:
            n = max(0, n + self.rng.choice([-1, 1, 2]))
        args = []
        for i in range(n + (self.rng.randrange(3) if variadic else 0)):
            p = params[i] if i < len(params) else ""
            if p == "m" or (p == "" and self.rng.random() < 0.1):
                args.append("M")
            elif p in ("path", "words"):
                args.append(self.path())
            elif p == "command":
                continue
            else:
                args.append(self.argument(p, depth))
        if params and self.rng.random() < 0.2:  # a keyword argument, sometimes one that does not exist
            args.append(f"{self.rng.choice(params + ['bogus'])}: {self.expr(depth - 1)}")
        return f"{name}({', '.join(args)})"

    def expr(self, depth):
        if depth <= 0:
            return self.number() if self.rng.random() < 0.7 else self.rng.choice(self.names)
        r = self.rng.random()
        if r < 0.35:
            return self.atom(depth)
        if r < 0.55:
            op = self.rng.choice(["+", "-", "*", "/", "%", "**", "@", "==", "!=", "<", ">=", "and", "or"])
            return f"({self.expr(depth - 1)} {op} {self.expr(depth - 1)})"
        if r < 0.6:
            return f"{self.rng.choice(['-', 'not '])}{self.expr(depth - 1)}"
        if r < 0.72:
            idx = self.rng.choice(["0", "-1", "1e9", "-1e18", "(0/0)", "1:2", ":", "::", "0, 0", ":, 1:", "1e300:", "-5:-1", "0.5", '"a"'])
            return f"{self.expr(depth - 1)}[{idx}]"
        if r < 0.8:
            name = self.rng.choice(list(self.builtins))
            return f"{self.expr(depth - 1)}.{name}({self.expr(depth - 2) if self.rng.random() < 0.5 else ''})"
        if r < 0.85:
            return f"(fn(a) => {self.expr(depth - 1)})({self.expr(depth - 1)})"
        return self.call(depth)

    def statement(self, depth):
        r = self.rng.random()
        if r < 0.4:
            name = f"x{len(self.names)}"
            line = f"let {name} = {self.expr(depth)}"
            self.names.append(name)
            return line
        if r < 0.55:
            return f"print({self.expr(depth)})"
        if r < 0.65:
            return f"for i in range({self.rng.choice(['3', '0', '-2', '1e-9'])}) {{ print({self.expr(depth - 1)}) }}"
        if r < 0.72:
            return f"if {self.expr(depth - 1)} {{ print(1) }} else {{ print({self.expr(depth - 1)}) }}"
        if r < 0.77:
            return f"save({self.expr(depth - 1)}, {self.path()})"
        return self.expr(depth)

    SPECIALS = 12

    def special(self, k=None, n=None):
        """Shapes of input that random expressions rarely reach: depth, recursion, size.
        `k` picks the shape and `n` its size, so a finding can be shrunk by lowering `n`."""
        rng = self.rng
        k = rng.randrange(self.SPECIALS) if k is None else k
        n = rng.choice([100, 1000, 10000, 100000]) if n is None else n
        if k == 0:
            return "(" * n + "1" + ")" * n
        if k == 1:
            return "[" * n + "]" * n
        if k == 2:
            return "fn f(n) { f(n + 1) }\nf(0)"
        if k == 3:
            return '"' + "{" * min(n, 20000) + "1" + "}" * min(n, 20000) + '"'
        if k == 4:
            return "let v = " + "-" * n + "1"
        if k == 5:
            return "1" + " + 1" * n
        if k == 6:
            return "let s = \"" + "{\"{" * min(n, 5000) + "1" + "}\"}" * min(n, 5000) + "\""
        if k == 7:
            return "let r = {" + ", ".join(f"k{i}: {i}" for i in range(min(n, 20000))) + "}\nprint(len(keys(r)))"
        if k == 8:
            return "var l = [1]\nfor i in range(40) { l = [l, l] }\nprint(len(str(l)))"
        if k == 9:
            return f"print(tokenize(M, \"{'ab ' * min(n, 30000)}\"))"
        if k == 10:
            return "let t = " + "not " * n + "true"
        return "fn g(n) { if n > 0 { return g(n - 1) } 0 }\nprint(g(" + str(n * 10) + "))"

    def program(self):
        """A program as a case: {"kind": "program", "program": text[, "special": [k, n]]}."""
        if self.rng.random() < 0.08:
            k, n = self.rng.randrange(self.SPECIALS), self.rng.choice([100, 1000, 10000, 100000])
            return {"kind": "program", "program": self.special(k, n), "special": [k, n]}
        self.names = ["x0"]  # each program stands alone, so it reproduces outside its batch
        text = "\n".join(self.statement(self.rng.choice([1, 2, 3, 4])) for _ in range(self.rng.randrange(1, 5)))
        return {"kind": "program", "program": text}


# ---------------------------------------------------------------------------------------
# Programs, mostly valid: typed argument pools over a prelude of sparc values

# The prelude binds one value of each of sparc's own types, so that most generated calls
# are well typed and reach the code behind the argument checks. Capitalised names are
# never assigned by generated programs. PRELUDE_FILES are written into the folder the
# program runs in (for text, lines, jsonl and load).
PRELUDE = """let M = load_model("{model}")
let x0 = rand(3, 4, seed: 1)
let X = rand(3, 4, seed: 2)
let T = task(["I went to the", "the relevance of"], [" Tokyo", " the"], [" London", " attention"], name: "t")
let R = attribute(M, "hello there", method: "magnitude")
let RN = attribute(M, "the cat sat", level: "neuron", method: "gradient")
let RH = attribute(M, T, level: "head", method: "gradient")
let K = bottomk(R, 0.5)
let KN = topk(RN, 0.2)
let P = prune(M, K)
let C = curve(M, T, R, fractions: [0.5, 1])
save(R, "r.safetensors")
save(K, "k.safetensors")"""
PRELUDE_FILES = {"t.txt": "the cat sat on the mat\nhello there\n\na dog ran to the park\n",
                 "d.jsonl": '{"prompt": {"text": "the cat"}, "a": 1}\n{"prompt": {"text": "hello"}, "a": [1, 2]}\n'}

POOLS = {
    "model": ["M", "M", "P"],
    "text": ['"hello there"', '"the cat sat on the mat"', '"a"', '"The quick brown fox"', '"é😀 x y"', '"Mary and John went to the park"'],
    "texts": ['["hello there", "the cat"]', '["a b a b a b"]', '["the cat sat", "the cat sat", "x"]'],
    "inputs": ['"hello there"', '["the cat", "a dog"]', "T"],
    "task": ["T", "T", "T", 'task(["hello", "at the"], [" the", " 2024"], [" of", " this"])'],
    "map": ["R", "RN", "RH", "random_map(R, seed: 2)", "normalize(R)", "rows(R, M)", 'only(R, "mlp")'],
    "mask": ["K", "KN", "bottomk(RN, 0.3)", "topk(R, 0.1)", "threshold(R, 0.01)", 'load("k.safetensors")'],
    "tensor": ["X", "x0", "rand(2, 3, seed: 1)", "arange(6)", "ones(2, 2)", "tensor([[1, 2], [3, 4]])", "zeros(3)"],
    "number": ["0", "1", "2", "3", "0.5", "-1", "2.5", "10"],
    "count": ["1", "2", "3", "4"],
    "fraction": ["0.1", "0.25", "0.5", "0.9", "1"],
    "numlist": ["[3, 1, 2]", "[0.5, 0.25, 1]", "[1]", "range(5)"],
    "strlist": ['["b", "a", "c"]', '["x"]', 'split("a b c")'],
    "list": ["[3, 1, 2]", '["b", "a"]', "[X, 1, \"s\"]", "[]", "range(3)"],
    "record": ["{a: 1, b: 2}", "params(M)", "config(M)", '{x: [1, 2], y: "s"}'],
    "word": ['"a"', '"b"', '", "', '" "', '"the"', '"x"'],
    "bool": ["true", "false"],
    "fn": ["fn(t) => len(t) > 3", "fn(t) => 1", "fn(t) => false"],
    "inpath": ['"r.safetensors"', '"k.safetensors"', '"t.txt"', '"d.jsonl"'],
    "outpath": ['"out.safetensors"', '"o.svg"', '"h.html"', '"outdir"', '"out.gguf"'],
    "curves": ["[C, C]", "[C]"],
    "series": ["{a: [[1, 2], [2, 3]], b: [[1, 1], [2, 5]]}", "{a: C}"],
    "maps": ["{r: R}", "{r: R, n: RN}"],
    "any": ["1", '"s"', "X", "[1, 2]", "{a: 1}", "R", "K", "M", "T", "nil", "true"],
    "ids": ["tokenize(M, \"hi there\")", "[1, 2, 3]", "[0]"],
    "method": ['"lrp"', '"gradient"', '"magnitude"', '"wanda"', '"gradxinput"'],
    "level": ['"weight"', '"neuron"', '"head"', '"hidden"', '"token"', '"row"'],
    "per": ['"global"', '"layer"', '"row"'],
    "metric": ['"logit_diff"', '"accuracy"'],
    "ablation": ['"zero"', '"zero"', '"mean"'],
    "part": ['"mlp"', '"attention"', '"q"', '"up"', '"down"', '"embeddings"', '"layers.0"', '"o_proj"'],
    "order": ['"most"', '"least"'],
    "parameters": ['"linear"', '"all"'],
    "aggregate": ['"mean"', '"mean_abs"'],
    "by": ['"component"', '"head"'],
    "svgpath": ['"o.svg"', '"c.svg"'],
    "tenrecord": ["{a: ones(2, 3), b: zeros(4)}", "{x: X}"],
    "pname": ["keys(params(M))[0]", "keys(params(M))[-1]", '"model.embed_tokens.weight"'],
    "target": ["nil", '" the"', "5"],
    "axis": ["0", "1", "-1"],
    "dim": ["1", "2", "3", "4"],
    "function": ["len", "attribute", "print", "ioi"],
    "fractions": ["[0.5, 1]", "[0, 0.25, 0.5]", "[1]"],
    "sparsities": ["[0.1, 0.5]", "[0]", "[0.25]"],
}

# What each parameter wants: pools by parameter name, overridden per builtin.
PARAM_POOLS = {
    "m": ["model"], "inputs": ["inputs"], "input": ["text"], "prompt": ["text"], "text": ["text"], "method": ["method"],
    "level": ["level"], "target": ["target"], "batch": ["count"], "absolute": ["bool"], "parameters": ["parameters"],
    "aggregate": ["aggregate"], "r": ["map"], "relevance": ["map"], "path": ["outpath"], "order": ["order"],
    "replacement": ["number"], "x": ["number", "tensor"], "start": ["number"], "stop": ["number"], "step": ["count"],
    "digits": ["count"], "record": ["record"], "list": ["list"], "item": ["any"], "reverse": ["bool"], "items": ["list", "strlist"],
    "separator": ["word"], "old": ["word"], "new": ["word"], "name": ["word"], "function": ["function"],
    "name_or_path": ["modelpath"], "special": ["bool"], "ids": ["ids"], "skip_special": ["bool"], "max_tokens": ["count"],
    "temperature": ["fraction"], "top_k": ["count"], "top_p": ["fraction"], "seed": ["count"], "chat": ["bool"],
    "window": ["count"], "stride": ["count"], "k": ["fraction", "count"], "per": ["per"], "value": ["fraction"],
    "mask": ["mask"], "ablation": ["ablation"], "reference": ["task", "text", "texts"], "part": ["part"],
    "general": ["map"], "undesired": ["map"], "normalized": ["bool"], "values": ["numlist"], "t": ["tensor"], "a": ["axis"],
    "b": ["axis"], "axis": ["axis"], "n": ["count"], "prompts": ["texts"], "answers": ["strlist"], "foils": ["strlist"],
    "task": ["task"], "metric": ["metric"], "fractions": ["fractions"], "curves": ["curves"], "keep": ["fraction"],
    "grid": ["fractions"], "refine": ["count"], "texts": ["texts"], "flag": ["fn"], "samples": ["count"], "maps": ["maps"],
    "sparsities": ["sparsities"], "series": ["series"], "title": ["word"], "y": ["word"], "log_x": ["bool"], "log_y": ["bool"],
    "by": ["by"],
}
BUILTIN_POOLS = {
    ("load", "path"): ["inpath"], ("text", "path"): ["inpath"], ("lines", "path"): ["inpath"], ("jsonl", "path"): ["inpath"],
    ("param", "name"): ["pname"], ("plot", "path"): ["svgpath"], ("draw", "path"): ["svgpath"], ("dataset", "name"): ["word"], ("len", "x"): ["list", "text", "record", "tensor"],
    ("type", "x"): ["any"], ("str", "x"): ["any"], ("sparsity", "x"): ["mask", "model"], ("only", "x"): ["map", "mask"],
    ("save", "value"): ["tensor", "map", "mask", "record", "model"], ("sum", "x"): ["tensor", "numlist"],
    ("mean", "x"): ["tensor"], ("plot", "x"): ["word"], ("topk", "t"): ["tensor", "map"], ("threshold", "value"): ["fraction"],
    ("range", "stop"): ["count"], ("arange", "stop"): ["count"], ("split", "separator"): ["word"],
    ("perplexity", "window"): ["dim"], ("ioi", "n"): ["dim"], ("heatmap", "path"): ["outpath"],
    ("perturbation", "relevance"): ["tokmap"], ("heatmap", "relevance"): ["tokmap"],
    ("count", "mask"): ["mask"], ("summary", "mask"): ["mask"], ("composition", "mask"): ["mask"],
    ("repetition", "n"): ["dim"], ("sqrt", "x"): ["number"], ("floor", "x"): ["number"], ("round", "x"): ["number"],
}
# Optional parameters worth passing most of the time.
OFTEN = {("draw", "m"), ("composition", "m"), ("curve", "fractions"), ("circuit", "grid")}

# What some builtins return, so later statements can use the result.
RETURNS = {
    "attribute": "map", "rows": "map", "random_map": "map", "normalize": "map", "contrast": "map", "only": "map",
    "bottomk": "mask", "threshold": "mask", "prune": "model", "load_model": "model", "ioi": "task", "task": "task",
    "zeros": "tensor", "ones": "tensor", "rand": "tensor", "arange": "tensor", "tensor": "tensor", "reshape": "tensor",
    "transpose": "tensor", "logits": "tensor", "param": "tensor", "abs": "tensor", "exp": "tensor", "log": "tensor",
    "tokenize": "ids", "generate": "text", "detokenize": "text", "replace": "text", "join": "text", "str": "text",
    "split": "strlist", "sort": "list", "append": "list", "range": "numlist", "params": "record", "config": "record",
    "curve": "curve", "band": "curve", "len": "count", "count": "number", "score": "number", "perplexity": "number",
}


def parse_builtin_table():
    """{name: (params, required, variadic)} from the Swift tables. `toxicity` is left out:
    random programs must never start external commands or wander outside the scratch folder."""
    table = {}
    pattern = re.compile(r'Builtin\("(\w+)"\s*(?:,\s*\[(.*?)\])?\s*(,\s*variadic:\s*true)?', re.S)
    try:
        for fn in sorted(os.listdir(BUILTIN_SOURCES)):
            src = open(os.path.join(BUILTIN_SOURCES, fn), encoding="utf-8").read()
            for m in pattern.finditer(src):
                ps = re.findall(r'Parameter\("(\w+)"(\s*,\s*default:)?', m.group(2) or "")
                table[m.group(1)] = ([p for p, _ in ps], [p for p, d in ps if not d], bool(m.group(3)))
    except OSError:
        pass
    table.pop("toxicity", None)
    return table


class TypedGen:
    """Mostly well-typed programs over the prelude's values. A controlled fraction of
    arguments (`hostile`) comes from the hostile generator instead."""

    def __init__(self, rng, table, hostile=0.06):
        self.rng, self.table, self.hostile = rng, table, hostile
        self.wild = ProgramGen(rng, {n: (p, v) for n, (p, _, v) in table.items()})
        self.wild.names = ["x0", "X", "R", "K", "T", "P"]
        self.vars = {}  # pool -> names bound by this program
        self.n = 0

    def pick(self, pool):
        own = self.vars.get(pool, [])
        if pool == "tokmap":
            return self.rng.choice(['attribute(M, "hello there", level: "token", method: "gradient")',
                                    'attribute(M, "the cat sat", level: "token")'])
        if pool == "modelpath":
            return '"' + os.path.join(FIXTURES, self.rng.choice(GGUF_SEEDS + [HF_SEED])) + '"'
        if own and self.rng.random() < 0.5:
            return self.rng.choice(own)
        return self.rng.choice(POOLS[pool])

    def arg(self, name, p):
        if self.rng.random() < self.hostile:
            return self.wild.argument(p, 2) if self.rng.random() < 0.7 else self.wild.expr(2)
        pools = BUILTIN_POOLS.get((name, p)) or PARAM_POOLS.get(p) or ["any"]
        return self.pick(self.rng.choice(pools))

    def call(self, name=None):
        if name is None:
            name = self.rng.choice(sorted(self.table))
        params, required, variadic = self.table[name]
        args = []
        if name in ("zeros", "ones", "rand"):
            args = [self.pick("dim") for _ in range(self.rng.randrange(1, 4))]
            if name == "rand" and self.rng.random() < 0.5:
                args.append("seed: " + self.pick("count"))
        elif name == "reshape":
            args = [self.pick("tensor")] + self.rng.choice([["-1"], ["2", "-1"], ["1", "-1"], ["12"], ["3", "4"]])
        elif name in ("min", "max"):
            args = self.rng.choice([[self.pick("number") for _ in range(self.rng.randrange(1, 4))], [self.pick("numlist")], [self.pick("tensor")]])
        elif name in ("heatmap", "perturbation") and self.rng.random() < 0.8:
            text = self.rng.choice(['"hello there"', '"the relevance of attention"'])
            method = self.rng.choice(['"gradient"', '"lrp"', '"gradxinput"'])
            args = [self.pick("model"), text, f"attribute(M, {text}, level: \"token\", method: {method})"]
            if name == "heatmap":
                args.append(self.pick("outpath"))
        elif name == "contrast" and self.rng.random() < 0.8:
            a, b = self.rng.choice([("R", "random_map(R, seed: 3)"), ("RN", "RN"), ("R", "normalize(R)"), ("RH", "random_map(RH)"),
                                    ("rows(R, M)", "rows(random_map(R), M)")])
            args = [a, b] + (["normalized: " + self.pick("bool")] if self.rng.random() < 0.3 else [])
        elif name == "save" and self.rng.random() < 0.8:
            kind = self.rng.choice(["tensor", "map", "mask", "tenrecord", "model"])
            path = self.rng.choice(['"m.gguf"', '"mdir"']) if kind == "model" else self.rng.choice(['"a.safetensors"', '"b.safetensors"'])
            args = [self.pick(kind), path]
        elif name == "plot" and self.rng.random() < 0.8:
            args = self.rng.choice([[self.rng.choice(POOLS["series"][:1]), self.pick("svgpath")],
                                    ["{a: C, b: C}", self.pick("svgpath"), 'x: "kept"', 'y: "score"'],
                                    ["{a: C}", self.pick("svgpath"), 'x: "fraction"', 'y: "logit_diff"', "log_y: true"]])
            if self.rng.random() < 0.3:
                args.append("title: " + self.pick("word"))
        elif name in ("text", "lines", "jsonl"):
            args = [self.rng.choice(['"d.jsonl"'] * 4 + ['"t.txt"']) if name == "jsonl" else self.rng.choice(['"t.txt"'] * 4 + ['"d.jsonl"', '"r.safetensors"'])]
        elif name == "load_model":
            args = [self.pick("modelpath")]
        elif name == "print":
            args = [self.pick(self.rng.choice(["any", "text", "number", "tensor"])) for _ in range(self.rng.randrange(1, 3))]
        else:
            for p in params:
                if p in required:
                    args.append(self.arg(name, p))
                elif p != "command" and self.rng.random() < (0.9 if (name, p) in OFTEN else 0.3):
                    args.append(f"{p}: {self.arg(name, p)}")
        if name in ("curve", "circuit") and self.rng.random() < 0.3 and not any(a.startswith("ablation:") for a in args):
            args.append('ablation: "mean"')  # reference: defaults to the task's prompts
        if self.rng.random() < self.hostile / 2:
            args.append(f"{self.rng.choice(params + ['bogus'])}: {self.wild.expr(1)}")  # twice, or unknown
        return name, f"{name}({', '.join(args)})"

    def statement(self):
        r = self.rng.random()
        if r < 0.6:
            name, call = self.call()
            self.n += 1
            v = f"v{self.n}"
            kind = RETURNS.get(name)
            if kind:
                self.vars.setdefault(kind, []).append(v)
            return f"let {v} = {call}"
        if r < 0.75:
            return f"print({self.call()[1]})"
        if r < 0.82:
            a, b = self.pick("tensor"), self.pick("number")
            op = self.rng.choice(["+", "-", "*", "/"])
            idx = self.rng.choice(["[0]", "[-1]", "[0:2]", "[:, 1:]", "[1, 2]", ""])
            return f"print(({a} {op} {b}){idx})"
        if r < 0.87:
            return f"for i in range({self.pick('count')}) {{ print({self.call()[1]}) }}"
        if r < 0.91:
            return f"fn f(a) {{ {self.call()[1]} }}\nprint(f(1))"
        if r < 0.95:
            return f"let s = \"n = {{{self.call()[1]}}}\"\nprint(len(s))"
        return f"print({self.pick('map')}.{self.rng.choice(['count', 'summary', 'normalize', 'keys'])}())" \
            if self.rng.random() < 0.5 else f"print(len(keys({self.pick('map')})))"

    def program(self):
        r = self.rng.random()
        if r < 0.05:
            k, n = self.rng.randrange(ProgramGen.SPECIALS), self.rng.choice([100, 1000, 10000, 100000])
            return {"kind": "program", "program": self.wild.special(k, n), "special": [k, n]}
        if r < 0.15:  # the old, mostly hostile generator
            return self.wild.program()
        return {"kind": "program", "program": "\n".join(self.statement() for _ in range(self.rng.randrange(1, 5)))}


# ---------------------------------------------------------------------------------------
# A REPL session that runs many inputs, one at a time

SENTINEL = "__fuzz_done_"


class Session:
    """One `sparc` REPL process fed on stdin, one input at a time. After each input comes
    a line naming an undefined variable: its `error: … unknown name __fuzz_done_N` on
    stderr (unbuffered, unlike stdout into a pipe) marks the end of the input, so output
    and time are attributed per input and a hang is caught per input. The session
    survives errors; it is restarted after a crash, a hang, or `limit` inputs."""

    def __init__(self, binary, cwd, mem_bytes, prelude, prelude_timeout=120, limit=200):
        self.cwd, self.limit, self.fed, self.n = cwd, limit, 0, 0
        self.prelude = prelude
        self.transcript = []  # inputs fed since the start, for a state-dependent finding
        env = session_env(cwd)
        self.p = subprocess.Popen([binary], cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, preexec_fn=limit_resources(mem_bytes))
        os.set_blocking(self.p.stdin.fileno(), False)
        os.set_blocking(self.p.stderr.fileno(), False)
        out = self.run(prelude, prelude_timeout)
        self.transcript = []
        self.prelude_outcome = out

    def alive(self):
        return self.p.poll() is None

    def close(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.p.stdin, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass

    def run(self, text, timeout, raw=None):
        """Runs one input; returns an Outcome (ok, error, crash, hang, odd)."""
        self.n += 1
        token = f"{SENTINEL}{self.n}"
        data = (text + "\n\n\n" + token + "\n\n\n").encode()
        self.transcript.append(text if raw is None else raw)
        self.fed += 1
        err = bytearray()
        start = time.monotonic()
        deadline = start + timeout
        wfd, rfd = self.p.stdin.fileno(), self.p.stderr.fileno()
        pos = 0
        mark = f"unknown name {token}".encode()
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.close()
                return Outcome("hang", None, None, clip(err.decode(errors="replace")), now - start)
            wl = [wfd] if pos < len(data) else []
            r, w, _ = select.select([rfd], wl, [], min(deadline - now, 1.0))
            if w:
                try:
                    pos += os.write(wfd, data[pos:pos + 65536])
                except BrokenPipeError:
                    pos = len(data)
                except BlockingIOError:
                    pass
            if r:
                try:
                    chunk = os.read(rfd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:  # the process is gone
                    rc = self.p.wait()
                    self.close()
                    text_err = clip(err.decode(errors="replace"))
                    if rc < 0:
                        return Outcome("crash", rc, -rc, text_err, time.monotonic() - start)
                    return Outcome("odd", rc, None, text_err, time.monotonic() - start)
                err += chunk
                at = err.find(mark)
                if at >= 0 and err.find(b"\n" + token.encode() + b"\n^\n", at) >= 0:
                    # The sentinel's diagnostic is one write: `<stdin>:1:1: error: unknown
                    # name TOKEN…`, the source line, a caret. What came before is the input's.
                    body = err[:err.rfind(b"\n", 0, at) + 1].decode(errors="replace")
                    kind = "error" if "error" in body else "ok"
                    if self.fed >= self.limit:
                        self.close()
                    return Outcome(kind, 0 if kind == "ok" else 1, None, clip(body), time.monotonic() - start)


def session_env(cwd):
    env = dict(os.environ)
    env.update({
        "SPARC_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "SPARC_HISTORY": "/dev/null",
        "SPARC_PATH": os.path.join(ROOT, "stdlib"),
        "HOME": cwd,
        "SWIFT_BACKTRACE": "enable=no",
    })
    return env


# ---------------------------------------------------------------------------------------
# Cases

MODEL_DRIVERS = [
    # Load, tokenize, forward, generate.
    'let m = load_model(args[0])\nprint(m.config)\nlet ids = tokenize(m, "The quick brown fox jumps")\n'
    'print(detokenize(m, ids))\nprint(shape(logits(m, ids)))\nprint(generate(m, ids, max_tokens: 2))',
    # Attribution and saving back out (writers, round trip).
    'let m = load_model(args[0])\nlet r = attribute(m, "hello there", method: "lrp", level: "neuron")\nprint(len(keys(r)))\n'
    'save(m, "resaved.gguf")\nprint(params(load_model("resaved.gguf")))\nsave(m, "resaved-hf")\nprint(config(load_model("resaved-hf")))',
    # Pruning.
    'let m = load_model(args[0])\nlet r = attribute(m, "the cat sat", method: "magnitude")\nlet k = bottomk(r, 0.5)\n'
    'let p = prune(m, k)\nprint(generate(p, "the", max_tokens: 2))',
]
STANDALONE_DRIVER = 'let x = load(args[0])\nprint(type(x))\nprint(x)\nif type(x) == "mask" { print(summary(x)) }'


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Seeds:
    """The fixture files, parsed once per worker."""

    def __init__(self, extra_dir):
        self.gguf = {n: read(os.path.join(FIXTURES, n)) for n in GGUF_SEEDS}
        self.gguf_parsed = {n: parse_gguf(d) for n, d in self.gguf.items()}
        hf = os.path.join(FIXTURES, HF_SEED)
        self.hf = {n: read(os.path.join(hf, n)) for n in ("config.json", "model.safetensors", "tokenizer.json")}
        self.hf_json = {n: json.loads(self.hf[n]) for n in ("config.json", "tokenizer.json")}
        self.standalone = {}
        for n in ("relevance.safetensors", "mask.safetensors", "record.safetensors"):
            p = os.path.join(extra_dir, n)
            if os.path.exists(p):
                self.standalone[n] = read(p)


def make_standalone_seeds(binary, dir):
    """Relevance map, mask and record files written by sparc itself, for `load` to read."""
    code = (f'let m = load_model("{os.path.join(FIXTURES, "tiny-gqa.gguf")}")\n'
            'let r = attribute(m, "hello there", method: "magnitude")\nsave(r, "relevance.safetensors")\n'
            'save(bottomk(r, 0.5), "mask.safetensors")\nsave({a: ones(2, 3), b: zeros(4)}, "record.safetensors")')
    out = run_process([binary, "-e", code], dir, 60, None)
    return out.kind == "ok"


def build_case(kind, rng, seeds):
    """Returns a case: {kind, files: {name: hex or ops}, program, notes}. Files are given as
    (seed name, ops) so that minimisation can drop ops."""
    if kind == "gguf":
        name = rng.choice(GGUF_SEEDS)
        ops = gguf_ops(rng, seeds.gguf[name], seeds.gguf_parsed[name])
        return {"kind": kind, "seed": name, "ops": ops, "driver": rng.randrange(len(MODEL_DRIVERS)), "notes": []}
    if kind in ("config", "tokenizer"):
        fname = kind + ".json"
        if rng.random() < 0.85:
            obj, notes = json_mutate(rng, seeds.hf_json[fname], rng.choice([1, 1, 2, 3]))
            ops = [["replace", json_dumps_hostile(obj).hex()]]
        else:
            ops, notes = byte_ops(rng, len(seeds.hf[fname]), rng.choice([1, 2, 4])), ["byte mutations"]
        return {"kind": kind, "seed": fname, "ops": ops, "driver": rng.choice([0, 0, 1, 2]), "notes": notes}
    if kind == "safetensors":
        ops, notes = safetensors_ops(rng, seeds.hf["model.safetensors"])
        return {"kind": kind, "seed": "model.safetensors", "ops": ops, "driver": rng.choice([0, 0, 1, 2]), "notes": notes}
    if kind == "standalone":
        name = rng.choice(sorted(seeds.standalone))
        data = seeds.standalone[name]
        if rng.random() < 0.7:
            ops, notes = safetensors_ops(rng, data)
        else:
            ops, notes = byte_ops(rng, len(data), rng.choice([1, 2, 4])), ["byte mutations"]
        return {"kind": kind, "seed": name, "ops": ops, "notes": notes}
    raise ValueError(kind)


def materialise(case, seeds, scratch):
    """Writes the case's input into `scratch`; returns (argv tail, program)."""
    kind = case["kind"]
    if kind == "gguf":
        path = os.path.join(scratch, "model.gguf")
        with open(path, "wb") as f:
            f.write(apply_ops(seeds.gguf[case["seed"]], case["ops"]))
        return [path], MODEL_DRIVERS[case["driver"]]
    if kind in ("config", "tokenizer", "safetensors"):
        folder = os.path.join(scratch, "model")
        os.makedirs(folder, exist_ok=True)
        for n, d in seeds.hf.items():
            with open(os.path.join(folder, n), "wb") as f:
                f.write(apply_ops(d, case["ops"]) if n == case["seed"] else d)
        return [folder], MODEL_DRIVERS[case["driver"]]
    if kind == "standalone":
        path = os.path.join(scratch, "input.safetensors")
        with open(path, "wb") as f:
            f.write(apply_ops(seeds.standalone[case["seed"]], case["ops"]))
        return [path], STANDALONE_DRIVER
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------
# Workers

_W = {}


def worker_init(opts):
    _W["opts"] = opts
    _W["seeds"] = Seeds(opts["seed_dir"])
    _W["builtins"] = load_builtins()
    _W["table"] = parse_builtin_table()
    _W["scratch"] = tempfile.mkdtemp(prefix="sparc-fuzz-")  # one-process runs (confirmation, minimisation)
    _W["home"] = tempfile.mkdtemp(prefix="sparc-fuzz-session-")  # the REPL session's folder
    write_prelude_files(_W["home"])
    _W["session"] = None
    if multiprocessing.current_process().name != "MainProcess":
        signal.signal(signal.SIGTERM, worker_exit)  # Pool.terminate(): end the session too


def worker_exit(*_):
    if _W.get("session") is not None:
        _W["session"].close()
    shutil.rmtree(_W["home"], ignore_errors=True)
    shutil.rmtree(_W["scratch"], ignore_errors=True)
    os._exit(0)


def write_prelude_files(folder):
    for n, text in PRELUDE_FILES.items():
        with open(os.path.join(folder, n), "w") as f:
            f.write(text)


def fresh_scratch():
    s = _W["scratch"]
    shutil.rmtree(s, ignore_errors=True)
    os.makedirs(s)
    write_prelude_files(s)
    return s


def session():
    """The worker's REPL session, started (with the prelude) when there is none."""
    s = _W.get("session")
    if s is None or not s.alive():
        o = _W["opts"]
        if s is not None:
            s.close()
        s = Session(o["binary"], _W["home"], o["mem"], program_preamble(), limit=o["batch"])
        if s.prelude_outcome.kind != "ok" and not _W.get("warned"):
            _W["warned"] = True
            print(f"fuzz: warning: the prelude ended in {s.prelude_outcome.kind}:\n{s.prelude_outcome.stderr[:2000]}", file=sys.stderr)
        _W["session"] = s
    return s


def run_file_case(case):
    o = _W["opts"]
    scratch = fresh_scratch()
    argv_tail, program = materialise(case, _W["seeds"], scratch)
    return run_process([o["binary"], write_script(scratch, program)] + argv_tail, scratch, o["timeout"], o["mem"])


def write_script(scratch, code):
    """Programs go to a file: one argument may not exceed 128 KiB, and deep-nesting
    programs are larger."""
    path = os.path.join(scratch, "program.sparc")
    with open(path, "w") as f:
        f.write(code + "\n")
    return path


def program_preamble():
    return PRELUDE.format(model=os.path.join(FIXTURES, "tiny-gqa.gguf"))


def run_program(program):
    o = _W["opts"]
    scratch = fresh_scratch()
    code = program_preamble() + "\n" + program
    return run_process([o["binary"], write_script(scratch, code)], scratch, o["timeout"], o["mem"])


def as_entry(program):
    """One REPL entry that behaves like a script: parsed whole, stops at the first error,
    and its names stay local (an input cannot see what an earlier input bound)."""
    return "if true {\n" + program + "\n}"


def repl_transcript(programs):
    return program_preamble() + "\n\n\n" + "".join(as_entry(p) + "\n\n\n" for p in programs) + ":quit\n"


def run_repl(programs, explain=False):
    o = _W["opts"]
    scratch = fresh_scratch()
    return run_process([o["binary"]], scratch, o["timeout"] * (len(programs) + 2), o["mem"],
                       stdin_text=repl_transcript(programs), explain=explain)


LARGE_INPUT = 16384  # characters; larger programs run as script files


def do_task(task):
    """do_one, with a bug in the harness itself counted and shown, not fatal to the run."""
    try:
        return do_one(task)
    except Exception:
        import traceback
        return task[1], [], [], 0.0, {"harness_errors": 1, "harness_error_examples": [[task[0], task[1], traceback.format_exc()[-1500:]]]}, task[0]


def do_one(task):
    """One input: (case number, target), run in the worker's REPL session. A crash, hang
    or odd exit is rerun alone in a fresh process (with a backtrace) to confirm it and
    get its signature; one that only happens in the session is kept as a transcript."""
    index, target = task
    o = _W["opts"]
    rng = random.Random(f"{o['seed']}:{index}")
    t0 = time.monotonic()
    if target == "program":
        case = TypedGen(rng, _W["table"], hostile=o["hostile"]).program()
        text, tmp = case["program"], None
    else:
        case = build_case(target, rng, _W["seeds"])
        tmp = os.path.join(_W["home"], f"in-{index}")
        os.makedirs(tmp)
        argv_tail, driver = materialise(case, _W["seeds"], tmp)
        text = driver.replace("args[0]", json.dumps(argv_tail[0]))
    notes = {}
    findings = []
    if len(text) > LARGE_INPUT:
        # A huge generated program (deep nesting, 100 000-term chains): the REPL's line
        # editor and its re-parse of every unfinished entry make a 250 KB line take
        # seconds, so these run as script files, one process each.
        out = run_program(text)
        if out.kind not in ("ok", "error"):
            findings.append((out.kind, out.signature(), out.stderr, case, out.seconds))
        return target, [out.kind], findings, time.monotonic() - t0, {"alone": 1}, index
    s = session()
    out = s.run(as_entry(text), o["timeout"], raw=text)
    transcript = list(s.transcript)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    if target == "program":
        # Which builtins the input called, and which of those inputs ran without error.
        called = {n for n in re.findall(r"\b(\w+)\(", text) if n in _W["table"]}
        notes["builtin_calls"] = {n: 1 for n in called}
        if out.kind == "ok":
            notes["builtin_ok"] = {n: 1 for n in called}
    if out.kind not in ("ok", "error"):
        alone = run_program(text) if target == "program" else run_file_case(case)
        if alone.kind == out.kind:
            findings.append((alone.kind, alone.signature(), alone.stderr, case, alone.seconds))
        elif out.kind == "hang":
            # Slow in the session but not alone (a loaded machine, or state): count what
            # the rerun says, and note it.
            notes["hang_not_reproduced"] = 1
            notes["slow"] = [[index, target, round(alone.seconds, 2)]]
            out = alone
            if alone.kind not in ("ok", "error"):
                findings.append((alone.kind, alone.signature(), alone.stderr, case, alone.seconds))
        elif target == "program":
            findings.append((out.kind, out.signature() + " (in a session)", out.stderr,
                             {"kind": "repl", "programs": transcript}, out.seconds))
        else:
            findings.append((out.kind, out.signature() + " (in a session)", out.stderr, dict(case, session=True), out.seconds))
    return target, [out.kind], findings, time.monotonic() - t0, notes, index


def minimise(finding, binary, opts):
    """Shrinks a finding while its signature stays the same: programs by lines then
    chunks, files by dropping mutation ops."""
    kind, sig, _, case, _ = finding
    budget = opts["minimise_runs"]

    def same(c):
        nonlocal budget
        budget -= 1
        if time.monotonic() > opts["minimise_deadline"]:
            budget = 0
            return False
        if c.get("kind") == "program":
            out = run_program(c["program"])
        elif c.get("kind") == "repl":
            out = run_repl(c["programs"], explain=True)
        else:
            out = run_file_case(c)
        return out.kind == kind and out.signature() == sig

    if case.get("special"):
        # Shrink the size parameter: the smallest n that still fails (assumes monotone).
        k, n = case["special"]
        gen = ProgramGen(random.Random(0), _W["builtins"])
        lo, hi = 1, n
        while lo < hi and budget > 0:
            mid = (lo + hi) // 2
            if same({"kind": "program", "program": gen.special(k, mid)}):
                hi = mid
            else:
                lo = mid + 1
        return dict(case, program=gen.special(k, hi), special=[k, hi])
    if case.get("kind") == "repl":
        progs = list(case["programs"])
        i = 0
        while i < len(progs) - 1 and budget > 0:  # the last entry is the one that fails
            trial = progs[:i] + progs[i + 1:]
            if same({"kind": "repl", "programs": trial}):
                progs = trial
            else:
                i += 1
        return dict(case, programs=progs)
    if case.get("kind") == "program":
        prog = case["program"]
        lines = prog.split("\n")
        i = 0
        while i < len(lines) and budget > 0 and len(lines) > 1:
            trial = lines[:i] + lines[i + 1:]
            if same({"kind": "program", "program": "\n".join(trial)}):
                lines = trial
            else:
                i += 1
        prog = "\n".join(lines)
        chunk = max(1, len(prog) // 2)
        while chunk >= 1 and budget > 0:
            i, shrunk = 0, False
            while i < len(prog) and budget > 0:
                trial = prog[:i] + prog[i + chunk:]
                if trial.strip() and same({"kind": "program", "program": trial}):
                    prog, shrunk = trial, True
                else:
                    i += chunk
            if not shrunk:
                chunk //= 2
        return dict(case, program=prog)
    ops = list(case["ops"])
    i = 0
    while i < len(ops) and budget > 0 and len(ops) > 1:
        trial = ops[:i] + ops[i + 1:]
        if same(dict(case, ops=trial)):
            ops = trial
        else:
            i += 1
    return dict(case, ops=ops)


def save_finding(out_dir, fid, finding, minimal, seeds, binary, count):
    kind, sig, stderr, case, seconds = finding
    d = os.path.join(out_dir, "findings", fid)
    os.makedirs(d, exist_ok=True)
    meta = {"class": kind, "signature": sig, "count": count, "seconds": round(seconds, 2), "case": minimal}
    with open(os.path.join(d, "stderr.txt"), "w") as f:
        f.write(stderr)
    if minimal.get("kind") in ("repl", "program"):
        os.makedirs(os.path.join(d, "files"), exist_ok=True)
        write_prelude_files(os.path.join(d, "files"))  # what the prelude's text/lines/jsonl read
    if minimal.get("kind") == "repl":
        with open(os.path.join(d, "transcript.txt"), "w") as f:
            f.write(repl_transcript(minimal["programs"]))
        repro = (f'cd "$(mktemp -d)" && cp "{d}/files/"* . && SPARC_HISTORY=/dev/null SWIFT_BACKTRACE=enable=yes,interactive=no '
                 f'"{binary}" < "{d}/transcript.txt"\n')
    elif minimal.get("kind") == "program":
        code = program_preamble() + "\n" + minimal["program"]
        with open(os.path.join(d, "program.sparc"), "w") as f:
            f.write(code + "\n")
        repro = f'cd "$(mktemp -d)" && cp "{d}/files/"* . && SWIFT_BACKTRACE=enable=yes,interactive=no "{binary}" "{d}/program.sparc"\n'
    else:
        tmp = tempfile.mkdtemp(prefix="sparc-fuzz-save-")
        argv_tail, program = materialise(minimal, seeds, tmp)
        inputs = os.path.join(d, "input")
        if os.path.isdir(argv_tail[0]):
            shutil.copytree(argv_tail[0], inputs, dirs_exist_ok=True)
        else:
            inputs += os.path.splitext(argv_tail[0])[1]
            shutil.copy(argv_tail[0], inputs)
        shutil.rmtree(tmp, ignore_errors=True)
        with open(os.path.join(d, "driver.sparc"), "w") as f:
            f.write(program + "\n")
        repro = f'cd "$(mktemp -d)" && SWIFT_BACKTRACE=enable=yes,interactive=no "{binary}" "{d}/driver.sparc" "{inputs}"\n'
    with open(os.path.join(d, "repro.sh"), "w") as f:
        f.write("#!/bin/sh\n# " + sig.replace("\n", " ") + "\n" + repro)
    with open(os.path.join(d, "finding.json"), "w") as f:
        json.dump(meta, f, indent=1)


# ---------------------------------------------------------------------------------------
# Main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "sparc"))
    ap.add_argument("--out", required=True, help="folder for findings and the summary")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, help="stop after this many cases")
    ap.add_argument("--minutes", type=float, help="stop after this long (default 10, or 1.5 with --quick)")
    ap.add_argument("--quick", action="store_true", help="CI mode: ~2 minutes, fewer minimisation runs")
    ap.add_argument("--targets", default="gguf,safetensors,config,tokenizer,standalone,program")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=8, help="seconds per input (a hang is an input still running then)")
    ap.add_argument("--mem-gb", type=float, default=8, help="address-space limit per process")
    ap.add_argument("--batch", type=int, default=200, help="inputs per REPL session before it is restarted (1: a fresh process each)")
    ap.add_argument("--hostile", type=float, default=0.06, help="fraction of program arguments drawn from the hostile generator")
    ap.add_argument("--fail-on-findings", action="store_true", help="exit 1 when a crash or hang is found (CI)")
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"fuzz: no sparc binary at {binary} (swift build -c release)")
    minutes = args.minutes if args.minutes is not None else (1.5 if args.quick else 10)
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    seed_dir = os.path.join(out_dir, "seeds")
    os.makedirs(seed_dir, exist_ok=True)
    make_standalone_seeds(binary, seed_dir)

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    weights = {"gguf": 3, "safetensors": 1.5, "config": 1.5, "tokenizer": 1.5, "standalone": 1, "program": 8}
    opts = {"binary": binary, "seed": args.seed, "timeout": args.timeout, "mem": int(args.mem_gb * (1 << 30)),
            "batch": args.batch, "hostile": args.hostile, "seed_dir": seed_dir, "minimise_runs": 40 if args.quick else 150}
    if "standalone" in targets and not Seeds(seed_dir).standalone:
        targets.remove("standalone")

    def tasks():
        rng = random.Random(args.seed)
        i = 0
        while args.count is None or i < args.count:
            yield i, rng.choices(targets, [weights.get(t, 1) for t in targets])[0]
            i += 1

    deadline = time.monotonic() + minutes * 60
    stats = {}  # target -> {class: count}
    seconds_by_target = {}
    found = {}  # signature -> [finding, count]
    started = time.monotonic()
    inputs = 0
    notes_total = {}
    last_report = started
    with multiprocessing.Pool(args.jobs, initializer=worker_init, initargs=(opts,)) as pool:
        for target, kinds, findings, seconds, notes, _ in pool.imap_unordered(do_task, tasks(), chunksize=4):
            for k, v in notes.items():
                if isinstance(v, dict):
                    d = notes_total.setdefault(k, {})
                    for n, c in v.items():
                        d[n] = d.get(n, 0) + c
                elif isinstance(v, int):
                    notes_total[k] = notes_total.get(k, 0) + v
                else:
                    notes_total[k] = (notes_total.get(k, []) + v)[:100]
            if time.monotonic() - last_report > 300:
                last_report = time.monotonic()
                print(f"[{last_report - started:6.0f}s] {inputs} inputs, {inputs / (last_report - started):.1f}/s", flush=True)
            s = stats.setdefault(target, {})
            for k in kinds:
                s[k] = s.get(k, 0) + 1
            inputs += len(kinds)
            seconds_by_target[target] = seconds_by_target.get(target, 0) + seconds
            for f in findings:
                # Hangs have no message to tell them apart: one entry per target, with examples.
                key = f[1] if f[0] != "hang" else f"hang {f[3].get('kind')}"
                if key in found:
                    found[key][1] += 1
                    if len(found[key][2]) < 5:
                        found[key][2].append(f[3])
                else:
                    found[key] = [f, 1, []]
                    print(f"[{time.monotonic() - started:6.0f}s] new {f[0]}: {f[1]}", flush=True)
            if time.monotonic() > deadline:
                pool.terminate()
                break
    elapsed = time.monotonic() - started

    # Minimise and save each distinct finding (in this process, one at a time).
    opts["minimise_deadline"] = time.monotonic() + (30 if args.quick else 900)
    worker_init(opts)
    seeds = _W["seeds"]
    summary_findings = []
    for n, (key, (f, count, examples)) in enumerate(sorted(found.items())):
        minimal = minimise(f, binary, opts) if f[0] in ("crash", "odd") and not f[3].get("session") else f[3]
        fid = f"{n:03d}-{f[0]}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        save_finding(out_dir, fid, f, minimal, seeds, binary, count)
        for i, ex in enumerate(examples):
            save_finding(os.path.join(out_dir, "findings", fid), f"example-{i}", f, ex, seeds, binary, 1)
        summary_findings.append({"id": fid, "class": f[0], "signature": f[1], "count": count, "target": f[3].get("kind"),
                                 "notes": f[3].get("notes", [])})
    shutil.rmtree(_W["scratch"], ignore_errors=True)
    shutil.rmtree(_W["home"], ignore_errors=True)

    summary = {"seed": args.seed, "binary": binary, "seconds": round(elapsed, 1), "inputs": inputs,
               "inputs_per_second": round(inputs / elapsed, 2), "jobs": args.jobs, "batch": args.batch,
               "by_target": {t: {"counts": stats[t], "inputs_per_second": round(sum(stats[t].values()) / max(seconds_by_target[t], 1e-9) * args.jobs, 2)}
                             for t in stats},
               "notes": notes_total,
               "programs_ok_fraction": round(stats.get("program", {}).get("ok", 0) / max(sum(stats.get("program", {}).values()), 1), 3),
               "findings": summary_findings}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    lines = [f"# sparc fuzz run: seed {args.seed}, {elapsed:.0f} s, {inputs} inputs, {inputs / elapsed:.1f} inputs/s ({args.jobs} jobs)", "",
             "| target | inputs | ok | error | crash | hang | odd | inputs/s |", "|---|---|---|---|---|---|---|---|"]
    for t, c in sorted(stats.items()):
        n = sum(c.values())
        bad = lambda k: sum(v for kk, v in c.items() if kk.endswith(k))
        lines.append(f"| {t} | {n} | {c.get('ok', 0)} | {c.get('error', 0)} | {bad('crash')} | {bad('hang')} | {bad('odd')} | "
                     f"{summary['by_target'][t]['inputs_per_second']} |")
    lines += ["", f"Programs that ran without error: {100 * summary['programs_ok_fraction']:.1f} %. "
              f"Timeouts in a session that did not recur alone: {notes_total.get('hang_not_reproduced', 0)}."]
    if notes_total.get("harness_errors"):
        lines += ["", f"HARNESS ERRORS (inputs not run, a bug in fuzz.py): {notes_total['harness_errors']}; "
                      "see summary.json, notes.harness_error_examples."]
    calls, oks = notes_total.get("builtin_calls", {}), notes_total.get("builtin_ok", {})
    if calls:
        never = sorted(n for n in parse_builtin_table() if not oks.get(n))
        lines += ["", f"Builtins called by programs: {len(calls)}; called in a program that ran without error: "
                      f"{sum(1 for n in calls if oks.get(n))}" + (f" (not: {', '.join(never)})" if never else "") + "."]
    lines += ["", "| id | class | seen | signature |", "|---|---|---|---|"]
    for s in summary_findings:
        lines.append(f"| {s['id']} | {s['class']} | {s['count']} | `{s['signature']}` |")
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.fail_on_findings and summary_findings:
        sys.exit(1)


if __name__ == "__main__":
    main()
