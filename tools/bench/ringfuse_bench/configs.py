"""Configurations: the ways of serving the workload that one run compares.

A configuration is a ringfuse filesystem on one transport (or with some tuning options),
another FUSE daemon given as a command (--compare, or the libfuse peers of --libfuse), or the
native directory the same workload runs on without FUSE, as the ceiling. With more than one
filesystem (--fs memfs,passthrough) each ringfuse configuration exists once per filesystem and
its name starts with the filesystem's. Pairs name the comparisons a run is about (ringfuse
against its libfuse counterpart, say): the report prints their ratios on the headline cells.
"""

import os
import re
import shlex
from dataclasses import dataclass, field

from . import peers

TRANSPORTS = ("uring", "dev", "uring-rw", "auto")
NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class UsageError(Exception):
    pass


@dataclass
class Config:
    name: str
    kind: str  # "ringfuse", "compare" or "native"
    opts: str = ""  # ringfuse -o options of this configuration
    template: list = field(default_factory=list)  # argv with {src} {mnt} {opts}
    skip: str = ""  # why this configuration cannot run
    fs: str = None  # the ringfuse filesystem, or the one a peer stands against
    label: str = ""  # a longer name for charts
    expect_uring: bool = False  # a peer that must serve over io-uring
    not_applicable: dict = field(default_factory=dict)  # {cell name: why it cannot run}

    def requested_transport(self):
        m = re.search(r"(?:^|,)transport=([^,]+)", self.opts)
        return m.group(1) if m else None

    def needs_uring(self):
        if self.expect_uring:
            return True
        return self.kind == "ringfuse" and self.requested_transport() == "uring"

    def argv(self, src, mnt):
        return [t.format(src=src, mnt=mnt, opts=self.opts) for t in self.template]

    def describe(self):
        d = {"name": self.name, "kind": self.kind}
        for key in ("fs", "label", "opts"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.template:
            d["command"] = " ".join(shlex.quote(a) if "{" not in a else a
                                    for a in self.template)
        if self.expect_uring:
            d["expect_uring"] = True
        if self.not_applicable:
            d["not_applicable"] = dict(self.not_applicable)
        if self.skip:
            d["skipped"] = self.skip
        return d


def parse_config_spec(spec):
    """--config NAME:OPTS -> (name, opts)."""
    name, sep, opts = spec.partition(":")
    if not sep or not NAME_RE.match(name) or not opts:
        raise UsageError("--config wants NAME:OPTS (e.g. uring-d4:transport=uring,"
                         "uring_depth=4), got %r" % spec)
    return name, opts


def parse_compare_spec(spec, index):
    """--compare [NAME:]CMD -> (name, argv template). CMD uses {src} and {mnt}."""
    m = re.match(r"^([A-Za-z0-9_.+-]+):(.*)$", spec)
    name, cmd = (m.group(1), m.group(2)) if m else (None, spec)
    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        raise UsageError("--compare %r: %s" % (spec, e)) from None
    if not argv:
        raise UsageError("--compare needs a command")
    if not any("{mnt}" in a for a in argv):
        raise UsageError("--compare %r: the command must contain {mnt} (and {src} if the "
                         "daemon takes a source directory)" % spec)
    if name is None:
        name = os.path.basename(argv[0]) or "compare%d" % index
    return name, argv


def parse_fs_list(value):
    """--fs memfs,passthrough -> ["memfs", "passthrough"]; cmd only alone."""
    fss = [f.strip() for f in value.split(",") if f.strip()]
    if not fss:
        raise UsageError("--fs needs a filesystem (memfs, passthrough or cmd)")
    bad = [f for f in fss if f not in ("memfs", "passthrough", "cmd")]
    if bad:
        raise UsageError("unknown filesystem(s) %s (memfs, passthrough, cmd)" % ", ".join(bad))
    if "cmd" in fss and len(fss) > 1:
        raise UsageError("--fs cmd cannot be combined with other filesystems")
    if len(set(fss)) != len(fss):
        raise UsageError("--fs names a filesystem twice")
    return fss


def _join(*opts):
    return ",".join(o for o in opts if o)


def build_configs(args, templates):
    """The configurations in column order: for each filesystem its transports, --config
    variants and kernel-passthrough variant; then the libfuse peers, --compare, native.

    templates: {fs: daemon argv template}, or one template (a list) for a single filesystem.
    """
    fss = parse_fs_list(getattr(args, "fs", "memfs") or "memfs")
    if isinstance(templates, list):
        templates = {fss[0]: templates}
    multi = len(fss) > 1
    allow_other = getattr(args, "allow_other", False)
    extra = _join(args.daemon_opts, "allow_other" if allow_other else "")
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    for t in transports:
        if t not in TRANSPORTS:
            raise UsageError("unknown transport %r (uring, dev, uring-rw, auto)" % t)
    configs = []
    for fs in fss:
        template = templates.get(fs, [])
        pfx = fs + "-" if multi else ""
        for t in transports:
            configs.append(Config(pfx + t, "ringfuse", _join("transport=" + t, extra), template,
                                  fs=fs, label="ringfuse %s, %s" % (fs, t)))
        for spec in args.config:
            name, opts = parse_config_spec(spec)
            configs.append(Config(pfx + name, "ringfuse", _join(opts, extra), template, fs=fs,
                                  label="ringfuse %s, %s" % (fs, name)))
        if fs == "passthrough" and getattr(args, "kernel_passthrough", False):
            configs.append(Config(pfx + "uring-kpt", "ringfuse",
                                  _join("transport=uring,passthrough", extra), template, fs=fs,
                                  label="ringfuse passthrough, io-uring, kernel passthrough"))
    if getattr(args, "libfuse", None):
        configs += peers.libfuse_configs(args.libfuse, fss, allow_other,
                                         getattr(args, "kernel_passthrough", False))
    for i, spec in enumerate(args.compare, 1):
        name, argv = parse_compare_spec(spec, i)
        configs.append(Config(name, "compare", "", argv, label=name))
    configs.append(Config("native", "native", label="native tmpfs"))
    seen = set()
    for c in configs:
        if c.name in seen:
            raise UsageError("two configurations are named %r" % c.name)
        seen.add(c.name)
    return configs


def parse_pair_spec(spec):
    """--pair CONFIG:VERSUS -> (config, versus)."""
    a, sep, b = spec.partition(":")
    if not sep or not NAME_RE.match(a) or not NAME_RE.match(b):
        raise UsageError("--pair wants CONFIG:VERSUS (e.g. uring:hp-uring), got %r" % spec)
    return a, b


def default_pairs(configs):
    """The comparisons a run with libfuse peers is about, as (config, versus), for those
    configurations that exist: each ringfuse filesystem against its libfuse counterpart on
    the same transport, ringfuse-memfs against passthrough_hp too (the comparison libfuse's
    own figures are quoted for), and kernel passthrough against native tmpfs."""
    names = {c.name for c in configs}
    out = []

    def add(a, b):
        if a in names and b in names and (a, b) not in out:
            out.append((a, b))

    multi = len({c.fs for c in configs if c.kind == "ringfuse"}) > 1
    for c in configs:
        if c.kind != "ringfuse":
            continue
        pfx = c.fs + "-" if multi else ""
        if c.name == pfx + "uring":
            add(c.name, peers.PEER_FOR[c.fs])
            add(c.name, peers.HP_URING)
        elif c.name == pfx + "dev" and c.fs == "passthrough":
            add(c.name, peers.HP_DEV)
        elif c.name == pfx + "uring-kpt":
            add(c.name, peers.HP_URING_KPT)
            add(c.name, "native")
    add(peers.HP_URING_KPT, "native")
    return out


def build_pairs(args, configs):
    names = {c.name for c in configs}
    pairs = [parse_pair_spec(s) for s in getattr(args, "pair", []) or []]
    for a, b in pairs:
        for n in (a, b):
            if n not in names:
                raise UsageError("--pair names %r, which is not a configuration (%s)"
                                 % (n, ", ".join(sorted(names))))
    if not pairs:
        pairs = default_pairs(configs)
    return [{"config": a, "versus": b} for a, b in pairs]


def headline_configs(configs):
    """The columns of the headline chart: ringfuse over io-uring (per filesystem), the
    libfuse peers over io-uring, native."""
    out = []
    multi = len({c.fs for c in configs if c.kind == "ringfuse"}) > 1
    for c in configs:
        pfx = (c.fs + "-") if multi and c.fs else ""
        if c.kind == "ringfuse" and c.name == pfx + "uring":
            out.append(c.name)
        elif c.kind == "compare" and c.name in peers.URING_PEERS:
            out.append(c.name)
    return out + ["native"]
