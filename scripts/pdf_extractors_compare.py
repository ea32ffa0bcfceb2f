#!/usr/bin/env python3
"""Side-by-side comparison of existing PDF text extractors against poppler's pdftotext.

Extractors (install into a venv, e.g.
  python3 -m venv /tmp/pdfx && /tmp/pdfx/bin/pip install pypdfium2==5.15.2 pdf-oxide==0.3.78 pdfminer.six
and run this script with /tmp/pdfx/bin/python; pdftotext comes from Debian's poppler-utils):

  pdfium        pypdfium2: PdfDocument(path); per page page.get_textpage().get_text_range()
  oxide         pdf_oxide: PdfDocument(path); per page doc.extract_text(i)      (== Page.text)
  oxide_notab   pdf_oxide: as oxide but doc.extract_text(i, extract_tables=False)
  oxide_plain   pdf_oxide: PdfDocument(path); per page doc.to_plain_text(i)     (the converter)
  pdfminer      pdfminer.six: pdfminer.high_level.extract_text(path) (default LAParams)
  pdftotext     subprocess `pdftotext -enc UTF-8 file.pdf -` per file (timing; the reference itself)

Pages are joined with "\n" (pdfminer's own "\f" page separator is kept; it is not alphanumeric
so it does not change the tokens).

Metric (must match the Rust benchmark): lowercase the text; tokens are maximal runs of characters
for which str.isalnum() is true; compare token multisets: overlap = sum of min counts;
precision = overlap / our tokens; recall = overlap / reference tokens; F1 = harmonic mean (0 when
both are 0). Single-letter share = tokens of length 1 that are alphabetic / all tokens. Files whose
reference has fewer than 50 tokens are skipped (reported as skipped). Timing = wall time of
extraction only (open + all pages + join), summed over all files, in one process per extractor
(each extractor runs in its own worker subprocess so a crash in native code cannot take down the
whole run; a crashed worker is restarted after the offending file). CPU seconds are reported too,
since wall time is sensitive to other load on the machine.

Usage:
  /tmp/pdfx/bin/python scripts/pdf_extractors_compare.py [--only pdfium,oxide] [--dump DIR]
"""
import argparse
import collections
import hashlib
import itertools
import json
import os
import resource
import subprocess
import sys
import time

REALWORLD = "/work/shared/data/docs/realworld"
EXTRA = "/work/shared/data/docs/pdf"
MIN_REF_TOKENS = 50
EXTRACTORS = ["pdfium", "oxide", "oxide_notab", "oxide_plain", "pdfminer", "pdftotext"]


# ---------------------------------------------------------------- metric

def tokens(text):
    text = text.lower()
    return ["".join(g) for k, g in itertools.groupby(text, key=str.isalnum) if k]


def score(ours, ref):
    """Return (precision, recall, f1, n_ours, n_ref)."""
    co, cr = collections.Counter(ours), collections.Counter(ref)
    overlap = sum(min(n, cr[t]) for t, n in co.items())
    p = overlap / len(ours) if ours else 0.0
    r = overlap / len(ref) if ref else 0.0
    f = 2 * p * r / (p + r) if (p + r) > 0 else 0.0
    return p, r, f, len(ours), len(ref)


def single_letter_share(toks):
    if not toks:
        return 0.0
    return sum(1 for t in toks if len(t) == 1 and t.isalpha()) / len(toks)


# ---------------------------------------------------------------- extractors (worker side)

def make_extractor(name):
    if name == "pdfium":
        import pypdfium2 as pdfium

        def run(path):
            pdf = pdfium.PdfDocument(path)
            parts = []
            try:
                for i in range(len(pdf)):
                    page = pdf[i]
                    tp = page.get_textpage()
                    parts.append(tp.get_text_range())
                    tp.close()
                    page.close()
            finally:
                pdf.close()
            return "\n".join(parts), len(parts)
        return run
    if name in ("oxide", "oxide_notab", "oxide_plain"):
        import pdf_oxide
        try:
            pdf_oxide.disable_logging()
        except Exception:
            pass
        plain = name == "oxide_plain"

        def run(path):
            doc = pdf_oxide.PdfDocument(path)
            n = len(doc)
            if plain:
                parts = [doc.to_plain_text(i) for i in range(n)]
            elif name == "oxide_notab":
                parts = [doc.extract_text(i, extract_tables=False) for i in range(n)]
            else:
                parts = [doc.extract_text(i) for i in range(n)]
            return "\n".join(parts), n
        return run
    if name == "pdfminer":
        from pdfminer.high_level import extract_text
        from pdfminer.layout import LAParams
        import logging
        logging.getLogger("pdfminer").setLevel(logging.ERROR)

        def run(path):
            text = extract_text(path, laparams=LAParams())
            return text, text.count("\f") + (0 if text.endswith("\f") else 1)
        return run
    if name == "pdftotext":
        def run(path):
            out = subprocess.run(["pdftotext", "-enc", "UTF-8", path, "-"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
            text = out.decode("utf-8", "replace")
            return text, None
        return run
    raise SystemExit(f"unknown extractor {name}")


def worker(name, files, dump_dir, progress_path):
    """Extract each file; append one JSON line per file to stdout-file (progress_path)."""
    run = make_extractor(name)
    with open(progress_path, "a") as prog:
        for path in files:
            prog.write(json.dumps({"start": path}) + "\n")
            prog.flush()
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            rc0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            err = None
            text = ""
            try:
                text, _ = run(path)
            except Exception as e:  # record and go on
                err = f"{type(e).__name__}: {e}"[:300]
            t1 = time.perf_counter()
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            rc1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
                   + rc1.ru_utime + rc1.ru_stime - rc0.ru_utime - rc0.ru_stime)
            out = os.path.join(dump_dir, name, os.path.basename(path) + ".txt")
            with open(out, "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(text)
            prog.write(json.dumps({"done": path, "secs": t1 - t0, "cpu": cpu, "err": err}) + "\n")
            prog.flush()


def run_extractor(name, files, dump_dir, timeout_per_file):
    """Run the worker in a subprocess; restart it after a crash/hang, skipping the bad file."""
    os.makedirs(os.path.join(dump_dir, name), exist_ok=True)
    progress = os.path.join(dump_dir, name + ".progress.jsonl")
    if os.path.exists(progress):
        os.remove(progress)
    results = {}
    remaining = list(files)
    while remaining:
        listfile = os.path.join(dump_dir, name + ".files.json")
        with open(listfile, "w") as fh:
            json.dump(remaining, fh)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name,
               "--worker-files", listfile, "--dump", dump_dir, "--worker-progress", progress]
        proc = subprocess.Popen(cmd)
        try:
            proc.wait(timeout=timeout_per_file * len(remaining))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        started = None
        with open(progress) as fh:
            for line in fh:
                rec = json.loads(line)
                if "start" in rec:
                    started = rec["start"]
                else:
                    results[rec["done"]] = rec
                    started = None
        if started is not None and started not in results:
            results[started] = {"done": started, "secs": float("nan"), "cpu": float("nan"),
                                "err": f"worker died (exit {proc.returncode}) or timed out"}
        remaining = [f for f in files if f not in results]
        if remaining and proc.returncode == 0 and started is None:
            break  # should not happen
    return results


# ---------------------------------------------------------------- driver

def page_count(path):
    out = subprocess.run(["pdfinfo", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    return 0


def collect_files(refdir_extra):
    """Return list of (set, path, ref_path) plus a list of duplicate notes."""
    items, seen, notes = [], {}, []
    for name in sorted(os.listdir(REALWORLD)):
        if name.endswith(".pdf"):
            p = os.path.join(REALWORLD, name)
            seen[hashlib.sha256(open(p, "rb").read()).hexdigest()] = p
            items.append(("realworld", p, os.path.join(REALWORLD, "pdftotext", name + ".txt")))
    os.makedirs(refdir_extra, exist_ok=True)
    for name in sorted(os.listdir(EXTRA)):
        if not name.endswith(".pdf"):
            continue
        p = os.path.join(EXTRA, name)
        h = hashlib.sha256(open(p, "rb").read()).hexdigest()
        if h in seen:
            notes.append(f"{p} is byte-identical to {seen[h]}: not counted twice")
            continue
        seen[h] = p
        ref = os.path.join(refdir_extra, name + ".txt")
        if not os.path.exists(ref):
            subprocess.run(["pdftotext", "-enc", "UTF-8", p, ref], check=True)
        items.append(("extra", p, ref))
    return items, notes


def fmt_row(cols, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(EXTRACTORS))
    ap.add_argument("--dump", default="/tmp/pdf_extractors_out")
    ap.add_argument("--refdir-extra", default="/tmp/pdf_extractors_refs")
    ap.add_argument("--timeout-per-file", type=float, default=600)
    ap.add_argument("--worker")
    ap.add_argument("--worker-files")
    ap.add_argument("--worker-progress")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, json.load(open(a.worker_files)), a.dump, a.worker_progress)
        return

    items, notes = collect_files(a.refdir_extra)
    files = [p for _, p, _ in items]
    for p in files:  # warm the page cache so the first extractor is not penalised
        open(p, "rb").read()
    pages = {p: page_count(p) for p in files}
    ref_tokens = {p: tokens(open(r, encoding="utf-8", errors="replace").read()) for _, p, r in items}
    setof = {p: s for s, p, _ in items}

    print(f"# PDF extractor comparison: {len(files)} files "
          f"({sum(1 for s, *_ in items if s == 'realworld')} realworld + "
          f"{sum(1 for s, *_ in items if s == 'extra')} extra), {sum(pages.values())} pages")
    print(f"# load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    for n in notes:
        print("# note:", n)
    skipped = [p for p in files if len(ref_tokens[p]) < MIN_REF_TOKENS]
    for p in skipped:
        print(f"# skipped (reference has {len(ref_tokens[p])} < {MIN_REF_TOKENS} tokens): "
              f"{os.path.basename(p)}")
    print()

    summaries = []
    for name in [x for x in a.only.split(",") if x]:
        res = run_extractor(name, files, a.dump, a.timeout_per_file)
        rows = []
        widths = [36, 5, 8, 8, 7, 7, 7, 7, 7, 8]
        print(f"## {name}")
        print(fmt_row(["file", "pages", "tok", "ref_tok", "P", "R", "F1", "1L", "ref1L", "secs"], widths))
        for p in files:
            r = res[p]
            text = open(os.path.join(a.dump, name, os.path.basename(p) + ".txt"),
                        encoding="utf-8", errors="replace").read()
            ours = tokens(text)
            pr, rc, f1, no, nr = score(ours, ref_tokens[p])
            sl, rsl = single_letter_share(ours), single_letter_share(ref_tokens[p])
            skip = p in skipped
            rows.append(dict(file=os.path.basename(p), set=setof[p], skip=skip, p=pr, r=rc, f1=f1,
                             sl=sl, rsl=rsl, secs=r["secs"], cpu=r["cpu"], err=r["err"], pages=pages[p]))
            tag = " SKIPPED" if skip else ""
            if r["err"]:
                tag += " ERROR: " + r["err"]
            print(fmt_row([os.path.basename(p)[:36], pages[p], no, nr, f"{pr:.4f}", f"{rc:.4f}",
                           f"{f1:.4f}", f"{sl:.4f}", f"{rsl:.4f}", f"{r['secs']:.3f}"], widths) + tag)
        print()
        for label, sel in (("realworld", lambda x: x["set"] == "realworld"),
                           ("extra", lambda x: x["set"] == "extra"),
                           ("all", lambda x: True)):
            sub = [x for x in rows if sel(x)]
            ev = [x for x in sub if not x["skip"]]
            if not ev:
                continue
            mean_f1 = sum(x["f1"] for x in ev) / len(ev)
            worst = min(ev, key=lambda x: x["f1"])
            under = [x for x in ev if x["f1"] < 0.95]
            msl = sum(x["sl"] for x in ev) / len(ev)
            mrsl = sum(x["rsl"] for x in ev) / len(ev)
            secs = sum(x["secs"] for x in sub if x["secs"] == x["secs"])
            cpu = sum(x["cpu"] for x in sub if x["cpu"] == x["cpu"])
            npages = sum(x["pages"] for x in sub)
            errs = [x for x in sub if x["err"]]
            hardest = sorted(ev, key=lambda x: x["f1"])[:5]
            print(f"summary[{name} / {label}]: files={len(sub)} evaluated={len(ev)} "
                  f"skipped={len(sub) - len(ev)} errors={len(errs)}")
            print(f"  mean F1 {mean_f1:.4f} | min F1 {worst['f1']:.4f} ({worst['file']}) | "
                  f"F1<0.95: {len(under)} | mean P {sum(x['p'] for x in ev) / len(ev):.4f} "
                  f"mean R {sum(x['r'] for x in ev) / len(ev):.4f}")
            print(f"  single-letter share {msl:.4f} vs reference {mrsl:.4f}")
            print(f"  total {secs:.2f} s wall ({cpu:.2f} s CPU), {npages} pages, "
                  f"{npages / secs if secs else float('nan'):.1f} pages/s")
            print("  hardest: " + ", ".join(f"{x['file']} ({x['f1']:.3f})" for x in hardest))
            if under:
                print("  under 0.95: " + ", ".join(f"{x['file']} ({x['f1']:.3f})" for x in under))
            for x in errs:
                print(f"  error: {x['file']}: {x['err']}")
            if label == "all":
                summaries.append((name, mean_f1, worst, len(under), msl, mrsl, secs, cpu, npages, len(errs)))
        print()

    print("## overview (all evaluated files)")
    w = [12, 8, 8, 36, 6, 7, 7, 9, 9, 8, 5]
    print(fmt_row(["extractor", "meanF1", "minF1", "min file", "<0.95", "1L", "ref1L", "wall s",
                   "cpu s", "pages/s", "errs"], w))
    for name, mf, worst, nu, msl, mrsl, secs, cpu, npg, ne in summaries:
        print(fmt_row([name, f"{mf:.4f}", f"{worst['f1']:.4f}", worst["file"][:36], nu, f"{msl:.4f}",
                       f"{mrsl:.4f}", f"{secs:.2f}", f"{cpu:.2f}", f"{npg / secs:.1f}", ne], w))
    print(f"# load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
