"""Results: the terminal table, the JSON file and the SVG chart.

All three are made from one results document (a dict, exactly what goes into the JSON file):
  configs  [{name, kind, ...}] in column order
  cells    [{name, title, metrics: [{key, label, unit, better}]}] in row order
  baseline name of the config the ratios are taken against
  samples  [{round, config, cell, metrics: {key: value} or None, error}]
  summary  {config: {cell: {metric: {n, median, min, max, spread_pct}}}} (see summarize())
"""

import json
import math
import os
from xml.sax.saxutils import escape

from . import stats

SPAN_MAX = 5  # the chart's axis goes from 1/32x to 32x at most
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]


def summarize(doc):
    """Fill doc["summary"] from doc["samples"]; returns it."""
    summary = {}
    for c in doc["configs"]:
        per_cell = summary.setdefault(c["name"], {})
        for cell in doc["cells"]:
            per_metric = per_cell.setdefault(cell["name"], {})
            for m in cell["metrics"]:
                vals = [s["metrics"].get(m["key"]) for s in doc["samples"]
                        if s["config"] == c["name"] and s["cell"] == cell["name"]
                        and s.get("metrics")]
                per_metric[m["key"]] = stats.summarize(vals)
    doc["summary"] = summary
    return summary


def median_of(doc, config, cell, key):
    try:
        return doc["summary"][config][cell][key]["median"]
    except KeyError:
        return None


def fmt_num(v):
    """A short human number: 3 significant digits, k/M/G above 10000."""
    if v is None:
        return "-"
    a = abs(v)
    suffix = ""
    for threshold, div, sfx in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if a >= threshold:
            v, a, suffix = v / div, a / div, sfx
            break
    if a >= 100:
        s = "%.0f" % v
    elif a >= 10:
        s = "%.1f" % v
    else:
        s = "%.2f" % v
    return s + suffix


def fmt_cell(summary, base=None, is_baseline=False, failed=True, na=False):
    """'12.3k ±4%' plus ' 1.05x' against base (raw value ratio) unless this is the baseline.
    Without a number: ERR if the cell failed, n/a if it cannot apply to this configuration,
    '-' if it did not run or has no such number (no daemon CPU for native)."""
    if not summary or summary.get("median") is None:
        return "ERR" if failed else "n/a" if na else "-"
    s = fmt_num(summary["median"])
    if summary.get("n", 0) > 1 and summary.get("spread_pct") is not None:
        s += " ±%.0f%%" % summary["spread_pct"]
    if not is_baseline:
        r = stats.ratio(summary["median"], base)
        s += " %5.2fx" % r if r is not None else "      "
    return s


def format_table(doc):
    """The readable comparison table (rows: cell metrics, columns: configurations)."""
    base = doc.get("baseline")
    cfgs = [c["name"] for c in doc["configs"]]
    header = ["cell", "metric", "unit"] + cfgs
    failed = {(s["config"], s["cell"]) for s in doc["samples"] if s.get("error")}
    na = {(s["config"], s["cell"]) for s in doc["samples"] if s.get("not_applicable")}
    rows = []
    for cell in doc["cells"]:
        first = True
        for m in cell["metrics"]:
            arrow = "↑" if m["better"] == "higher" else "↓"
            row = [cell["name"] if first else "", "%s %s" % (m["label"], arrow), m["unit"]]
            bval = median_of(doc, base, cell["name"], m["key"])
            for c in cfgs:
                summ = doc["summary"].get(c, {}).get(cell["name"], {}).get(m["key"])
                row.append(fmt_cell(summ, bval, is_baseline=(c == base),
                                    failed=(c, cell["name"]) in failed,
                                    na=(c, cell["name"]) in na))
            rows.append(row)
            first = False
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def line(r):
        out = []
        for i, v in enumerate(r):
            out.append(v.ljust(widths[i]) if i < 3 else v.rjust(widths[i]))
        return "  ".join(out).rstrip()

    meta = doc.get("meta", {})
    title = "ringfuse-bench: %s%g s per cell, %d round(s); median ±spread (max-min)/median" % (
        "fs %s, " % meta["fs"] if meta.get("fs") else "", meta.get("runtime") or 0,
        meta.get("rounds", 0))
    lines = [title, "ratios: configuration / %s (↑ higher is better, ↓ lower is better)" % base,
             "", line(header), line(["-" * w for w in widths])]
    lines += [line(r) for r in rows]
    return "\n".join(lines) + "\n"


def format_not_applicable(doc):
    """One line per (configuration, cell) that cannot apply, with the reason ('' if none)."""
    seen = []
    for s in doc["samples"]:
        key = (s["config"], s["cell"], s.get("not_applicable"))
        if key[2] and key not in seen:
            seen.append(key)
    return "".join("n/a: %s / %s: %s\n" % k for k in seen)


def write_json(doc, path):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _rel(doc, config, cell, m, which="median"):
    base = doc.get("baseline")
    try:
        v = doc["summary"][config][cell][m["key"]][which]
    except KeyError:
        return None
    return stats.ratio(v, median_of(doc, base, cell, m["key"]), m["better"])


def render_svg(doc, width=960):
    """A grouped horizontal bar chart: one group per cell metric, one bar per configuration,
    each normalised to the baseline and oriented so that right is better (latencies are
    inverted). The axis is logarithmic and centred on the baseline, so 2x better and 2x worse
    are the same length and one large ratio (native, often) does not flatten the others.
    Whiskers show the min-max range of the samples."""
    cfgs = [c["name"] for c in doc["configs"]]
    rows = [(cell, m) for cell in doc["cells"] for m in cell["metrics"]]
    bar_h, gap, left, right, top = 14, 14, 250, 100, 88
    plot_w = width - left - right
    group_h = len(cfgs) * bar_h + gap
    height = top + max(1, len(rows)) * group_h + 40

    rels = [_rel(doc, c, cell["name"], m, w) for cell, m in rows for c in cfgs
            for w in ("median", "min", "max")]
    rels = [r for r in rels if r is not None and r > 0]
    # Ratios past 2^SPAN_MAX (native against FUSE, typically) are clipped, with their value
    # printed, so that they do not squeeze the transport-to-transport differences.
    span = min(SPAN_MAX, max([1] + [math.ceil(abs(math.log2(r)) - 1e-9) for r in rels]))
    x0 = left + plot_w / 2.0

    def x(v):
        lg = max(-span, min(span, math.log2(v)))
        return x0 + lg / span * (plot_w / 2.0 - 10)

    meta = doc.get("meta", {})
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
           % (width, height, width, height),
           '<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (width, height),
           '<text x="10" y="20" font-size="15" font-weight="bold">%s</text>' % escape(
               "ringfuse-bench: %srelative to %s (right is better; latencies inverted)"
               % ("fs %s, " % meta["fs"] if meta.get("fs") else "", doc.get("baseline"))),
           '<text x="10" y="38" fill="#555">%s</text>' % escape(
               "%s kernel %s, %s CPUs, %g s per cell, %s round(s); log scale; whiskers: "
               "min-max" % ((meta.get("date") + ", ") if meta.get("date") else "",
                            meta.get("kernel", "?"), meta.get("nproc", "?"),
                            meta.get("runtime") or 0, meta.get("rounds", "?")))]
    lx = 10
    for i, c in enumerate(cfgs):
        out.append('<rect x="%d" y="48" width="12" height="12" fill="%s"/>'
                   % (lx, PALETTE[i % len(PALETTE)]))
        out.append('<text x="%d" y="59">%s</text>' % (lx + 16, escape(c)))
        lx += 30 + 8 * len(c)

    for r, (cell, m) in enumerate(rows):
        y0 = top + r * group_h
        if r % 2 == 0:
            out.append('<rect x="0" y="%d" width="%d" height="%d" fill="#f4f4f4"/>'
                       % (y0 - gap // 2, width, group_h))
    for k in range(-span, span + 1):
        xv = x(2.0 ** k)
        if span > 4 and k % 2 and k not in (-1, 1):
            continue
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"%s/>'
                   % (xv, top - 8, xv, height - 30, "#000" if k == 0 else "#ccc",
                      ' stroke-dasharray="4,3"' if k == 0 else ""))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>'
                   % (xv, height - 16, "%dx" % 2 ** k if k >= 0 else "1/%dx" % 2 ** -k))
    out.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>'
               % (x0, top - 12, escape("baseline: %s" % doc.get("baseline"))))

    for r, (cell, m) in enumerate(rows):
        y0 = top + r * group_h
        label = "%s · %s (%s)" % (cell["name"], m["label"], m["unit"])
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                   % (left - 8, y0 + len(cfgs) * bar_h // 2 + 4, escape(label)))
        for i, c in enumerate(cfgs):
            y = y0 + i * bar_h
            rel = _rel(doc, c, cell["name"], m)
            color = PALETTE[i % len(PALETTE)]
            if rel is None or rel <= 0:
                out.append('<text x="%.1f" y="%d" fill="#999" font-size="10">n/a</text>'
                           % (x0 + 4, y + bar_h - 3))
                continue
            xa, xb = sorted((x0, x(rel)))
            out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s">'
                       '<title>%s</title></rect>'
                       % (xa, y + 1, max(xb - xa, 1.0), bar_h - 2, color,
                          escape("%s %s: %s %s (%.2fx)" % (
                              c, label, fmt_num(median_of(doc, c, cell["name"], m["key"])),
                              m["unit"], rel))))
            lo = _rel(doc, c, cell["name"], m, "min")
            hi = _rel(doc, c, cell["name"], m, "max")
            ends = [x(rel)]
            if lo and hi and lo != hi:
                ym = y + bar_h / 2.0
                out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>'
                           % (x(lo), ym, x(hi), ym))
                ends += [x(lo), x(hi)]
            clipped = abs(math.log2(rel)) > span
            text = "%.2fx%s" % (rel, " (clipped)" if clipped else "")
            if rel >= 1:
                out.append('<text x="%.1f" y="%d" font-size="10">%s</text>'
                           % (max(ends) + 4, y + bar_h - 3, text))
            else:
                out.append('<text x="%.1f" y="%d" font-size="10" text-anchor="end">%s</text>'
                           % (min(ends) - 4, y + bar_h - 3, text))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(doc, path):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write(render_svg(doc))


# The numbers a comparison with another FUSE server is judged on: (cell, metric key, short
# label). Those of cells that did not run are left out.
HEADLINE = [
    ("rand4k-qd1", "iops", "4K read QD1"),
    ("rand4k-qd1", "cpu_us", "4K read QD1 CPU/op"),
    ("rand4k-qd1-user", "iops", "4K read QD1, unprivileged"),
    ("rand4k-qd1-user", "cpu_us", "4K read QD1, unpriv. CPU/op"),
    ("rand4k-qd32", "iops", "4K read QD32"),
    ("rand4k-qd32", "cpu_us", "4K read QD32 CPU/op"),
    ("seqread-1m", "mbps", "1M read"),
    ("seqread-1m", "cpu_us", "1M read CPU/op"),
    ("seqwrite-1m", "mbps", "1M write"),
    ("seqwrite-1m", "cpu_us", "1M write CPU/op"),
    ("meta", "create_ops", "create"),
    ("meta", "stat_ops", "stat"),
    ("meta", "unlink_ops", "unlink"),
    ("meta", "create_cpu_us", "create CPU/op"),
    ("meta", "stat_cpu_us", "stat CPU/op"),
    ("meta-mt", "create_ops", "create, thread/CPU"),
    ("meta-mt", "stat_ops", "stat, thread/CPU"),
    ("meta-mt", "unlink_ops", "unlink, thread/CPU"),
    ("meta-user", "create_ops", "create, unprivileged"),
    ("meta-user", "stat_ops", "stat, unprivileged"),
    ("meta-user", "unlink_ops", "unlink, unprivileged"),
    ("stat-load", "stat_p99_us", "stat p99 under 1M writer"),
    ("idle", "idle_cpu_pct", "idle CPU (% core)"),
    ("memory", "threads", "threads"),
    ("memory", "rss_idle_mib", "RSS after burst and idle (MiB)"),
]

# The groups of the headline chart (a subset of HEADLINE).
HEADLINE_CHART = [
    ("rand4k-qd1", "iops"), ("rand4k-qd32", "iops"), ("seqread-1m", "mbps"),
    ("seqwrite-1m", "mbps"), ("meta", "create_ops"), ("meta", "stat_ops"),
    ("meta", "unlink_ops"), ("rand4k-qd1", "cpu_us"),
]


def _metric(doc, cell, key):
    for c in doc["cells"]:
        if c["name"] == cell:
            for m in c["metrics"]:
                if m["key"] == key:
                    return m
    return None


def headline_rows(doc):
    """HEADLINE entries whose cell ran: (cell, metric dict, label)."""
    out = []
    for cell, key, label in HEADLINE:
        m = _metric(doc, cell, key)
        if m is not None:
            out.append((cell, m, label))
    return out


def format_pairs(doc):
    """Ratios of each pair (config / versus, raw medians) on the headline metrics: above 1
    is better for ↑ metrics, below 1 for ↓ ones (latency, CPU)."""
    pairs = doc.get("pairs") or []
    rows = headline_rows(doc)
    if not pairs or not rows:
        return ""
    header = ["metric"] + ["%s / %s" % (p["config"], p["versus"]) for p in pairs]
    table = []
    for cell, m, label in rows:
        row = ["%s %s" % (label, "↑" if m["better"] == "higher" else "↓")]
        for p in pairs:
            r = stats.ratio(median_of(doc, p["config"], cell, m["key"]),
                            median_of(doc, p["versus"], cell, m["key"]))
            row.append("%.2fx" % r if r is not None else "-")
        table.append(row)
    widths = [max(len(r[i]) for r in table + [header]) for i in range(len(header))]

    def line(r):
        return "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i])
                         for i, v in enumerate(r)).rstrip()

    out = ["ratios of medians, configuration / versus (↑ above 1 is better, ↓ below 1 is "
           "better)", "", line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in table]
    return "\n".join(out) + "\n"


HEADLINE_COLORS = {"ringfuse": ["#1f5fa8", "#5b9bd5", "#9dc3e6"],
                   "compare": ["#d9661f", "#f4a261", "#f6c89f"],
                   "native": ["#8c8c8c"]}


def _headline_colors(doc, names):
    kinds = {c["name"]: c.get("kind", "compare") for c in doc["configs"]}
    used, out = {}, {}
    for n in names:
        k = kinds.get(n, "compare")
        pal = HEADLINE_COLORS.get(k, HEADLINE_COLORS["compare"])
        out[n] = pal[used.get(k, 0) % len(pal)]
        used[k] = used.get(k, 0) + 1
    return out


def render_headline_svg(doc, width=760, note=None):
    """The README chart: one group of horizontal bars per headline number, one bar per
    configuration (ringfuse in blues, other servers in oranges, native in grey), in absolute
    units on a linear scale per group. A bar past 1.3 times the longest FUSE bar (native,
    usually) is cut short and marked, its number printed, so that it does not flatten the
    FUSE bars. Lower-is-better groups say so."""
    labels = {c["name"]: c.get("label") or c["name"] for c in doc["configs"]}
    kinds = {c["name"]: c.get("kind") for c in doc["configs"]}
    names = [n for n in (doc.get("headline_configs") or [c["name"] for c in doc["configs"]])
             if n in labels]
    groups = []
    for cell, key in HEADLINE_CHART:
        m = _metric(doc, cell, key)
        if m is None:
            continue
        vals = {n: median_of(doc, n, cell, key) for n in names}
        if any(v is not None for v in vals.values()):
            label = next((lb for c, k, lb in HEADLINE if c == cell and k == key), key)
            groups.append((label, m, vals))
    colors = _headline_colors(doc, names)
    bar_h, gap, left, top = 13, 16, 190, 78
    plot_w = width - left - 120
    group_h = len(names) * bar_h + gap
    height = top + max(1, len(groups)) * group_h + 36
    meta = doc.get("meta", {})
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
           % (width, height, width, height),
           '<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (width, height),
           '<text x="10" y="20" font-size="15" font-weight="bold">%s</text>' % escape(
               "ringfuse against libfuse and native, caching off (medians)"),
           '<text x="10" y="37" fill="#555" font-size="11">%s</text>' % escape(
               "%skernel %s, %s CPUs, %g s per cell, %s round(s); longer is better unless "
               "marked" % ((meta["date"][:10] + ", ") if meta.get("date") else "",
                           meta.get("kernel", "?"), meta.get("nproc", "?"),
                           meta.get("runtime") or 0, meta.get("rounds", "?")))]
    lx, ly = 10, 50
    if note:
        out.append('<text x="10" y="53" fill="#b00020" font-size="11">%s</text>'
                   % escape(note))
        ly += 16
    for n in names:
        text = labels[n]
        if lx + 22 + 6.5 * len(text) > width:
            lx, ly = 10, ly + 16
        out.append('<rect x="%d" y="%d" width="11" height="11" fill="%s"/>'
                   % (lx, ly, colors[n]))
        out.append('<text x="%d" y="%d" font-size="11">%s</text>'
                   % (lx + 15, ly + 10, escape(text)))
        lx += 30 + int(6.2 * len(text))
    top = max(top, ly + 28)
    height = top + max(1, len(groups)) * group_h + 16
    out[1] = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
              'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
              % (width, height, width, height))
    out[2] = '<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (width, height)
    for g, (label, m, vals) in enumerate(groups):
        y0 = top + g * group_h
        if g % 2 == 0:
            out.append('<rect x="0" y="%d" width="%d" height="%d" fill="#f4f4f4"/>'
                       % (y0 - gap // 2, width, group_h))
        lower = m["better"] == "lower"
        out.append('<text x="%d" y="%d" text-anchor="end" font-weight="bold">%s</text>'
                   % (left - 8, y0 + len(names) * bar_h // 2 - 1, escape(label)))
        out.append('<text x="%d" y="%d" text-anchor="end" font-size="10" fill="#555">%s'
                   '</text>' % (left - 8, y0 + len(names) * bar_h // 2 + 11,
                                escape(m["unit"] + (", shorter is better" if lower else ""))))
        fuse = [v for n, v in vals.items() if v is not None and kinds.get(n) != "native"]
        scale_max = max(fuse or [v for v in vals.values() if v is not None] or [1.0]) * 1.3
        for i, n in enumerate(names):
            y = y0 + i * bar_h
            v = vals[n]
            if v is None:
                out.append('<text x="%d" y="%d" fill="#999" font-size="10">%s</text>'
                           % (left + 4, y + bar_h - 3,
                              "no daemon" if kinds.get(n) == "native" else "n/a"))
                continue
            clipped = v > scale_max
            w = plot_w * min(v, scale_max) / scale_max if scale_max > 0 else 0
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s">'
                       '<title>%s</title></rect>'
                       % (left, y + 1, max(w, 1.0), bar_h - 2, colors[n],
                          escape("%s, %s: %s %s" % (labels[n], label, fmt_num(v), m["unit"]))))
            if clipped:
                out.append('<path d="M%.1f %d l6 %d l-6 %d z" fill="white"/>'
                           % (left + w - 8, y + 1, (bar_h - 2) // 2, (bar_h - 2) // 2))
            out.append('<text x="%.1f" y="%d" font-size="10">%s</text>'
                       % (left + w + 4, y + bar_h - 3,
                          escape(fmt_num(v) + (" (bar cut)" if clipped else ""))))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_headline_svg(doc, path, note=None):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write(render_headline_svg(doc, note=note))
