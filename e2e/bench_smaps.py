"""Where the desktop's memory is: starts the app (as bench_startup.py does), waits
DIAG_WAIT seconds (10), then prints each of its processes' PSS by mapping (the largest twelve:
libraries, [anon], [heap]) and the total. DIAG_ENV="NAME=value ..." starts the app with those
variables set (to try WebKit's, Mesa's or JavaScriptCore's knobs). DIAG_FOLLOW=1 opens it on an
app's page with the log following, the demo's apps logging every 20 ms. Run by
`BENCH_MODE=smaps scripts/bench-desktop.sh`."""

import collections
import os
import subprocess
import sys
import time

from bench_startup import foreign_webkit, tree

APP = os.environ["BENCH_APP"]


def anon_kind(perms, size_kib):
    """Names an anonymous mapping by what it likely holds: JavaScriptCore's executable pool
    (rwx), a reservation of 1 GiB or more (a wasm memory, the gigacage), or other heap by size."""
    if "x" in perms:
        return "[anon jit]"
    if size_kib >= 1 << 20:
        return f"[anon reservation {size_kib >> 20} GiB]"
    if size_kib >= 16 << 10:
        return "[anon >= 16 MiB]"
    return "[anon < 16 MiB]"


def pss_by_mapping(pid):
    """PSS in KiB per mapping name of one process."""
    by_name, name = collections.Counter(), "[anon]"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):  # a mapping's header line
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                name = parts[5] if len(parts) > 5 else anon_kind(parts[1], (hi - lo) >> 10)
            elif parts[0] == "Pss:":
                by_name[name] += int(parts[1])
    return by_name


def main():
    if os.environ.get("DIAG_FOLLOW") == "1":  # open on an app's page, its log following
        from bench_memory import first_app, open_on
        open_on(*first_app())
    extra = dict(kv.split("=", 1) for kv in os.environ.get("DIAG_ENV", "").split() if "=" in kv)
    args = os.environ.get("BENCH_APP_ARGS", "").split()  # (the floor: MiniBrowser about:blank)
    proc = subprocess.Popen([APP, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **extra))
    try:
        time.sleep(float(os.environ.get("DIAG_WAIT", "10")))
        total = 0
        for pid in tree(proc.pid):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
                by_name = pss_by_mapping(pid)
            except OSError:
                continue
            kib = sum(by_name.values())
            total += kib
            print(f"== {comm} (pid {pid}): PSS {kib / 1024:.1f} MiB")
            for name, n in by_name.most_common(12):
                print(f"   {n / 1024:7.1f}  {name}")
        print(f"total PSS {total / 1024:.1f} MiB")
        if others := foreign_webkit(set(tree(proc.pid))):
            print(f"(understated: {others} other WebKit processes share its libraries)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
