"""How much of the CPU the benchmarks got: the hypervisor's steal time, from /proc/stat.

On a virtual machine whose host is busy, the hypervisor runs other guests on this
machine's cores ("steal"); every rate measured meanwhile drops, and rates that use
both cores at once drop most. The benchmarks print the share of CPU time stolen while
they ran, so that a reader can tell a quiet run from a disturbed one.
"""

from __future__ import annotations


def cpu_times():
    """The machine's aggregate CPU times (``/proc/stat``'s first line), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    return [int(v) for v in fields[1:]]


def steal_report(start):
    """One line: the share of CPU time stolen and busy since ``start`` (a :func:`cpu_times`)."""
    end = cpu_times()
    if start is None or end is None or len(end) < 8:
        return "CPU steal: unknown (no /proc/stat)"
    delta = [b - a for a, b in zip(start, end)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    busy = total - delta[3] - delta[4] - delta[7]
    return (f"CPU time while this ran: {busy / total:.0%} busy here, "
            f"{delta[7] / total:.0%} stolen by the hypervisor for other guests")
