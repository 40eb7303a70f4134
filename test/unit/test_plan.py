"""ringfuse-probe --plan: the projection of threads, memory and polling CPU (no mount, no root).

The numbers come from the library's sizing functions (checked one by one in test_topology.c);
here the tool is checked end to end: made-up machines of 8, 64 and 192 CPUs on 1 and 2 nodes,
a fake sysfs tree, and bad arguments.
Run: RINGFUSE_BUILD=build python3 -m pytest test/unit/test_plan.py
"""

import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MiB = 1024 * 1024
UNITS = {"bytes": 1, "KiB": 1024, "MiB": MiB, "GiB": 1024 * MiB, "TiB": 1024 * 1024 * MiB}


def probe():
    b = os.environ.get("RINGFUSE_BUILD", "build")
    path = os.path.join(b if os.path.isabs(b) else os.path.join(REPO, b), "tools",
                        "ringfuse-probe")
    if not os.access(path, os.X_OK):
        pytest.skip("%s not built" % path)
    return path


def run(*args):
    return subprocess.run([probe(), "--plan"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


def size(text):
    if text == "0":
        return 0
    num, unit = text.split()
    return float(num) * UNITS[unit]


def table(out):
    """{(machine, model): {column: value}} from the --markdown table."""
    lines = [l for l in out.splitlines() if l.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(head, [c.strip() for c in line.strip("|").split("|")]))
        rows[(cells["machine"], cells["model"].split(" (")[0])] = cells
    return rows


def test_projection_of_three_machine_sizes_on_one_and_two_nodes():
    p = run("8,64,192", "--markdown")
    assert p.returncode == 0, p.stderr
    rows = table(p.stdout)
    assert len(rows) == 3 * 2 * 4, p.stdout
    for cpus in (8, 64, 192):
        for nodes in (1, 2):
            m = "%d CPUs, %d node%s" % (cpus, nodes, "" if nodes == 1 else "s")
            lib = rows[(m, "libfuse 3.18 model")]
            full = rows[(m, "ringfuse, every entry at start")]
            dflt = rows[(m, "ringfuse defaults")]
            ela = rows[(m, "ringfuse elastic")]
            # libfuse: a thread per CPU, 8 entries of 1 MiB each, all kept, nobody polls.
            assert int(lib["threads"]) == cpus
            assert lib["entries"] == str(8 * cpus)
            assert size(lib["resident, idle"]) == 8 * cpus * MiB
            assert lib["polling cores, max"] == "0"
            # ringfuse registering everything: 16 entries per queue for good.
            assert full["entries"] == str(16 * cpus)
            assert size(full["payload registered"]) == 16 * cpus * MiB
            # defaults: 2 entries per queue at start, up to 16, given back when idle.
            assert int(dflt["threads"]) == cpus
            assert dflt["entries"] == "%d..%d" % (2 * cpus, 16 * cpus)
            assert size(dflt["payload registered"]) == 2 * cpus * MiB
            assert size(dflt["resident, peak"]) == 16 * cpus * MiB
            assert dflt["resident, idle"] == "0"
            # elastic: one thread per 8 CPUs of a node, fewer polling cores under load,
            # one entry per queue at start, payload bounded at 512 MiB.
            assert int(ela["threads"]) == max(nodes, cpus // 8)
            assert ela["entries"] == "%d..%d" % (cpus, min(16 * cpus, 512))
            assert size(ela["resident, peak"]) == min(16 * cpus, 512) * MiB
            assert ela["resident, idle"] == "0"
            assert int(ela["polling cores, max"]) == int(ela["threads"])
            assert float(ela["polling cores, 5000 req/s per CPU"]) <= \
                float(dflt["polling cores, 5000 req/s per CPU"])
            assert size(ela["ring memory"]) <= size(dflt["ring memory"])


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


def test_plan_of_a_sysfs_tree(tmp_path):
    """Holes in the possible mask: the kernel makes 12 queues (ids 0-7 and 16-19 count), so
    does the plan, whatever the highest id. Queues 8-11 have no CPU of their id, and the
    kernel sends the requests of CPUs 16-19 to queue 0: node 1 feeds no queue of its own."""
    root = str(tmp_path)
    write(root, "devices/system/cpu/possible", "0-7,16-19")
    write(root, "devices/system/cpu/online", "0-7,16-19")
    write(root, "devices/system/node/node0/cpulist", "0-7")
    write(root, "devices/system/node/node1/cpulist", "16-19")
    p = run("--sysfs", root, "--markdown", "--cpus-per-thread", "4")
    assert p.returncode == 0, p.stderr
    rows = table(p.stdout)
    m = "12 CPUs, 2 nodes"
    assert rows[(m, "ringfuse defaults")]["threads"] == "12", p.stdout
    assert rows[(m, "ringfuse defaults")]["entries"] == "24..192"
    assert rows[(m, "ringfuse elastic")]["threads"] == "2", p.stdout  # node 0's 8 CPUs / 4


def test_plan_of_this_machine():
    p = run()
    assert p.returncode == 0, p.stderr
    assert "ringfuse defaults" in p.stdout and "libfuse 3.18 model" in p.stdout


@pytest.mark.parametrize("args", [["0"], ["7"], ["8", "--smt", "3"], ["8", "--bogus"],
                                  ["8", "--sysfs", "/"], ["--max-write", "12"],
                                  ["--sysfs", "/nonexistent"]])
def test_bad_arguments(args):
    p = run(*args)
    assert p.returncode != 0
    assert p.stderr.strip() and not p.stdout.strip(), (p.stdout, p.stderr)


def test_help():
    p = run("--help")
    assert p.returncode == 0 and "--cpus-per-thread" in p.stdout
