"""Shared pieces of the peer scripts: timing, JSON output, and the import paths of the peers' sources and the kernels
build_peer_kernels.py compiled (all brought along uncommitted by gpu_check.sh pack)."""
import json, os, sys, time, traceback


def sync():
    import torch
    torch.cuda.synchronize()


def median_ms(fn, reps=3, warmup=1):
    """Median wall time of fn() in ms over reps runs after warmup runs, synchronising around each."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        sync(); t = time.perf_counter()
        fn()
        sync(); ts.append(1e3 * (time.perf_counter() - t))
    return sorted(ts)[len(ts) // 2]


class deadline:
    """Raises TimeoutError in the main thread after `seconds` (SIGALRM), so one slow peer attempt (a torch.compile
    that takes minutes) cannot use up the device call; a no-op context where seconds <= 0."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        import signal
        if self.seconds > 0:
            def fire(signum, frame):
                raise TimeoutError(f"gave up after {self.seconds:.0f} s")
            self.old = signal.signal(signal.SIGALRM, fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        import signal
        if self.seconds > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)
        return False


def add_paths(*dirs):
    for d in dirs:
        if d and d not in sys.path:
            sys.path.insert(0, d)


class Report:
    """Collects peer rows; a failing peer becomes a row with its error (printed, never hidden). `plan` records the
    rows a script means to produce, so a script ended by its time limit leaves rows that say so (table.py)."""

    def __init__(self, path):
        self.path, self.rows = path, []
        import torch
        self.meta = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}

    def plan(self, entries):
        """entries: dicts with "key" and the fields table.py matches a row by (preset, what, shape)."""
        self.meta["planned"] = entries
        self.write()

    def run(self, key, fn):
        t0 = time.perf_counter()
        try:
            row = fn()
            row["key"] = key
            self.rows.append(row)
            print(f"{key}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in row.items() if k != "key")
                  + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
        except Exception as e:
            traceback.print_exc()
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            print(f"{key}: FAILED {msg}", flush=True)
            self.rows.append({"key": key, "error": msg})
        self.write()

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({**self.meta, "peers": self.rows}, f, indent=1)
        os.replace(tmp, self.path)
