#!/usr/bin/python3
"""check_report.py — independent checks of what nc_report_write / nc_svg_* produce,
run by tests/test_report.c (with /usr/bin/python3, standard library only).

  check_report.py DIR        a report directory: report.json is strict JSON (no NaN),
                             every *.svg is well-formed SVG, and the figures carry the
                             report's data (confusion cell counts = the matrix, one bar
                             per class with its recall, one curve point per measured
                             epoch)
  check_report.py --svg F..  only: each file is a well-formed, self-contained SVG
Exit status 0 when everything holds; otherwise the first failure is printed."""
import glob
import json
import math
import os
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def fail(msg):
    print("check_report.py: " + msg)
    sys.exit(1)


def load_svg(path):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        fail("%s: not well-formed XML: %s" % (path, e))
    if root.tag != NS + "svg":
        fail("%s: root element is %s, not svg" % (path, root.tag))
    for a in ("width", "height", "viewBox"):
        if a not in root.attrib:
            fail("%s: <svg> has no %s" % (path, a))
    vb = root.attrib["viewBox"].split()
    if len(vb) != 4 or float(vb[2]) != float(root.attrib["width"]) or float(vb[3]) != float(root.attrib["height"]):
        fail("%s: viewBox %r does not match width/height" % (path, root.attrib["viewBox"]))
    title = root.find(NS + "title")
    if title is None or not (title.text or "").strip():
        fail("%s: no <title>" % path)
    with open(path, "rb") as f:
        raw = f.read()
    for bad in (b"<script", b"xlink:href", b"href=\"http", b"<image", b"@import"):
        if bad in raw:
            fail("%s: not self-contained (%r)" % (path, bad))
    # every number in geometry attributes uses '.' (no locale comma) and is finite
    for el in root.iter():
        for k in ("x", "y", "width", "height", "x1", "x2", "y1", "y2", "cx", "cy", "r"):
            if k in el.attrib:
                v = float(el.attrib[k])  # raises on "1,5"
                if not math.isfinite(v):
                    fail("%s: %s=%r" % (path, k, el.attrib[k]))
    return root


def by_class(root, tag, cls):
    return [e for e in root.iter(NS + tag) if e.attrib.get("class") == cls]


def check_confusion(path, ev):
    root = load_svg(path)
    K = ev["classes"]
    cm = ev["confusion"]
    cells = by_class(root, "rect", "cell")
    if len(cells) != K * K:
        fail("%s: %d cells, expected %d" % (path, len(cells), K * K))
    seen = set()
    for c in cells:
        t, p, n = int(c.attrib["data-true"]), int(c.attrib["data-pred"]), int(c.attrib["data-count"])
        if cm[t][p] != n:
            fail("%s: cell (%d, %d) has count %d, report.json says %d" % (path, t, p, n, cm[t][p]))
        seen.add((t, p))
    if len(seen) != K * K:
        fail("%s: duplicate cells" % path)
    # printed counts: each text sits inside its cell and reads as that cell's count
    texts = by_class(root, "text", "count")
    for tx in texts:
        x, y = float(tx.attrib["x"]), float(tx.attrib["y"])
        hit = [c for c in cells if float(c.attrib["x"]) <= x <= float(c.attrib["x"]) + float(c.attrib["width"])
               and float(c.attrib["y"]) <= y <= float(c.attrib["y"]) + float(c.attrib["height"])]
        if len(hit) != 1:
            fail("%s: count text %r at (%g, %g) is not inside exactly one cell" % (path, tx.text, x, y))
        if int(tx.text) != int(hit[0].attrib["data-count"]):
            fail("%s: cell text %r, cell count %s" % (path, tx.text, hit[0].attrib["data-count"]))
    if K <= 20 and len(texts) != K * K:
        fail("%s: %d printed counts for %d cells" % (path, len(texts), K * K))
    # one label per class on each axis
    for g in ("ylabels", "xlabels"):
        grp = [e for e in root.iter(NS + "g") if e.attrib.get("class") == g]
        if len(grp) != 1 or len(list(grp[0].iter(NS + "text"))) != K:
            fail("%s: %s does not hold %d labels" % (path, g, K))
    names = [pc["name"] for pc in ev["per_class"]]
    ylab = [e for e in root.iter(NS + "g") if e.attrib.get("class") == "ylabels"][0]
    for name, tx in zip(names, ylab.iter(NS + "text")):
        shown = tx.text or ""
        if shown != name and not (shown.endswith("\u2026") and name.startswith(shown[:-1])):
            fail("%s: label %r for class %r" % (path, shown, name))


def check_per_class(path, ev):
    root = load_svg(path)
    bars = by_class(root, "rect", "bar")
    if len(bars) != ev["classes"]:
        fail("%s: %d bars for %d classes" % (path, len(bars), ev["classes"]))
    for b in bars:
        i = int(b.attrib["data-class"])
        pc = ev["per_class"][i]
        v = b.attrib["data-value"]
        if pc["support"] == 0:
            if v != "nan":
                fail("%s: class %d without samples has value %s" % (path, i, v))
            continue
        if abs(float(v) - pc["recall"]) > 1e-5:
            fail("%s: bar %d value %s, recall %r" % (path, i, v, pc["recall"]))


def check_curves(path, history):
    root = load_svg(path)
    panels = [g for g in root.iter(NS + "g") if g.attrib.get("class") == "panel"]
    if len(panels) != 2:
        fail("%s: %d panels, expected 2" % (path, len(panels)))
    keys = {"Loss": ("train_loss", "val_loss"), "Accuracy": ("train_acc", "val_acc")}
    for p in panels:
        for series, key in zip(("train", "val"), keys[p.attrib["data-panel"]]):
            vals = [h[key] for h in history]
            measured = sum(v is not None for v in vals)
            runs, cur = [], 0
            for v in vals + [None]:
                if v is None:
                    if cur:
                        runs.append(cur)
                    cur = 0
                else:
                    cur += 1
            lines = [e for e in p.iter(NS + "polyline") if e.attrib.get("class") == series]
            got = sorted(len(e.attrib["points"].split()) for e in lines)
            want = sorted(r for r in runs if r >= 2)
            if got != want:
                fail("%s: %s %s polylines have %r points, expected %r" % (path, p.attrib["data-panel"], series,
                                                                        got, want))
            groups = [g for g in p.iter(NS + "g") if g.attrib.get("class") == series]
            if measured == 0 and groups:
                fail("%s: %s %s drawn without data" % (path, p.attrib["data-panel"], series))
            if measured and len(history) <= 60:
                dots = len(list(groups[0].iter(NS + "circle")))
                if dots != measured:
                    fail("%s: %d markers for %d measured epochs" % (path, dots, measured))


def reject_constant(name):
    fail("report.json: non-standard JSON constant %s" % name)


def main(argv):
    if len(argv) >= 2 and argv[1] == "--svg":
        for f in argv[2:]:
            load_svg(f)
        return 0
    if len(argv) != 2:
        fail("usage: check_report.py DIR | --svg FILE...")
    d = argv[1]
    with open(os.path.join(d, "report.json"), encoding="utf-8") as f:
        rep = json.load(f, parse_constant=reject_constant)
    for k in ("format", "run", "history", "evaluations"):
        if k not in rep:
            fail("report.json: no %s" % k)
    if rep["history"]:
        check_curves(os.path.join(d, "curves.svg"), rep["history"])
    elif os.path.exists(os.path.join(d, "curves.svg")):
        fail("curves.svg written without a history")
    for ev in rep["evaluations"]:
        for kind in ("confusion", "per_class"):
            name = ev["files"][kind]
            if "/" in name or not name.startswith(kind + "_") or not name.endswith(".svg"):
                fail("report.json: file name %r" % name)
        check_confusion(os.path.join(d, ev["files"]["confusion"]), ev)
        check_per_class(os.path.join(d, ev["files"]["per_class"]), ev)
        if len(ev["confusion"]) != ev["classes"] or len(ev["per_class"]) != ev["classes"]:
            fail("report.json: %s head %d has the wrong number of rows" % (ev["split"], ev["head"]))
        if sum(map(sum, ev["confusion"])) != ev["count"]:
            fail("report.json: %s confusion total differs from count" % ev["split"])
    for f in glob.glob(os.path.join(d, "*.svg")):
        load_svg(f)
    with open(os.path.join(d, "summary.txt"), encoding="utf-8") as f:
        if not f.read().startswith("neurc run report"):
            fail("summary.txt: unexpected start")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
