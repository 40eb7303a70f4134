"""The ABI of ringfuse's libfuse3.so.3 against the system's libfuse3.so.3 (no mount, no root).

- every exported symbol, at every version (default and older), is the system library's, and
  nothing else is exported;
- the version nodes and their parents are the system library's;
- a program that uses libfuse's high-level API is stopped as it loads, with a message naming
  the API, whether it binds its symbols at load time or lazily.

Run: RINGFUSE_BUILD=build python3 -m pytest test/unit/test_compat_abi.py
"""

import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEM_LIB = "/usr/lib/x86_64-linux-gnu/libfuse3.so.3"


def build_dir():
    b = os.environ.get("RINGFUSE_BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def compat_lib():
    return os.path.join(build_dir(), "compat", "libfuse3.so.3")


def readelf(*args):
    return subprocess.run(["readelf", "-W"] + list(args), check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout


def exported(lib):
    """{'name@VERSION' or 'name@@VERSION'} of every symbol the library defines."""
    out = set()
    for line in readelf("--dyn-syms", lib).splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].rstrip(":").isdigit() or f[6] == "UND":
            continue
        name = f[7]
        if "@" not in name:
            continue  # the version definitions themselves, compared below
        out.add(name)
    return out


def version_tree(lib):
    """{version: parent or None} from the version definition section."""
    tree, current = {}, None
    section = readelf("-V", lib).split("Version definition section", 1)
    assert len(section) == 2, "%s has no version definitions" % lib
    for line in section[1].split("Version needs section", 1)[0].splitlines():
        m = re.search(r"Flags: (\S+)\s+Index: \d+\s+Cnt: \d+\s+Name: (\S+)", line)
        if m:
            current = m.group(2) if m.group(1) != "BASE" else None
            if current:
                tree[current] = None
            continue
        m = re.search(r"Parent 1: (\S+)", line)
        if m and current:
            tree[current] = m.group(1)
    return tree


@pytest.fixture(scope="module")
def libs():
    ours = compat_lib()
    if not os.path.exists(ours):
        pytest.fail("%s not built (build first, or set RINGFUSE_BUILD)" % ours, pytrace=False)
    assert os.path.exists(SYSTEM_LIB), "the system's libfuse3.so.3 is missing (scripts/deps.sh)"
    return ours, SYSTEM_LIB


def test_same_symbols_at_the_same_versions(libs):
    ours, system = exported(libs[0]), exported(libs[1])
    assert len(system) > 150, "unexpectedly few symbols in %s" % libs[1]
    missing = sorted(system - ours)
    extra = sorted(ours - system)
    assert not missing and not extra, "missing: %s\nextra: %s" % (missing, extra)


def test_same_version_nodes_and_parents(libs):
    assert version_tree(libs[0]) == version_tree(libs[1])


def test_soname(libs):
    dyn = readelf("-d", libs[0])
    assert re.search(r"SONAME\)\s+Library soname: \[libfuse3\.so\.3\]", dyn), dyn


@pytest.mark.parametrize("binding", ["now", "lazy"])
def test_highlevel_program_refused_at_load(libs, binding):
    prog = os.path.join(build_dir(), "test", "compat", "highlevel-" + binding)
    assert os.access(prog, os.X_OK), "%s not built" % prog
    # With the system's library it runs: --version goes through fuse_main_real().
    plain = subprocess.run([prog, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    assert plain.returncode == 0 and "FUSE library version" in plain.stdout, plain.stdout
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(libs[0]))
    ours = subprocess.run([prog, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=30)
    assert ours.returncode == 127, (ours.returncode, ours.stdout, ours.stderr)
    assert "FUSE library version" not in ours.stdout, "main() ran: %s" % ours.stdout
    assert "high-level API (fuse_main_real)" in ours.stderr, ours.stderr
