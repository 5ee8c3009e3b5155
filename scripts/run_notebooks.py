"""Executes notebooks headless with nbclient (no Jupyter server); fails on the first error.

usage: python scripts/run_notebooks.py NOTEBOOK... --out DIR
The executed copies (with outputs) are written to DIR; the working directory is the repository root.
"""
import argparse, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ap = argparse.ArgumentParser()
ap.add_argument("notebooks", nargs="+")
ap.add_argument("--out", required=True)
ap.add_argument("--timeout", type=int, default=600)
a = ap.parse_args()
root = Path(__file__).resolve().parent.parent
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
for nbpath in a.notebooks:
    nb = nbformat.read(nbpath, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=a.timeout, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    nbformat.write(nb, out / Path(nbpath).name)
    print(f"run-notebooks: {nbpath} ok in {time.time() - t0:.1f} s -> {out / Path(nbpath).name}", file=sys.stderr)
