"""Writes a dataset as an image folder that `data.name="image_folder"` reads (docs/datasets.md#image-folders).

  python -m coarse2fine.data.datasets.folder_export --dataset=fashion_mnist --out=ROOT \
      [--per_class=N] [--test_per_class=M] [--taxonomy=fmnist3] [--data_dir=IDX_FOLDER]

gives ROOT/{train,test}/<coarse>/<fine>/<index>.png, <index> the image's position in its split's IDX file. The
folder is written under a temporary name next to ROOT and renamed when complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Optional, Sequence

import numpy as np

from coarse2fine import storage
from coarse2fine.data.taxonomy import get_taxonomy


def folder_name(name: str) -> str:
  """A class name usable as a folder name ("T-shirt/top" -> "T-shirt_top")."""
  return name.replace("/", "_").replace(os.sep, "_")


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def export_fashion_mnist(out: str, per_class: int = 0, test_per_class: Optional[int] = None,
                         taxonomy: str = "fmnist3", data_dir: Optional[str] = None) -> dict[str, int]:
  """Writes Fashion-MNIST as out/{train,test}/<coarse>/<fine>/<index>.png; returns the images written per split.

  The first `per_class` images of each fine class in file order (0: all; `test_per_class` for test, default the
  same); `taxonomy` (a built-in or a file) names the coarse folders, and its "/" become "_" in folder names.
  """
  from PIL import Image

  from coarse2fine.data.datasets import fashion_mnist
  from coarse2fine.data.taxonomy import FASHION_MNIST_CLASSES

  if not storage.is_local(out):
    raise ValueError(f"--out={out!r}: the export writes a local folder (copy it to an object store afterwards).")
  if os.path.exists(out):
    raise FileExistsError(f"--out={out!r} already exists; remove it or choose another folder.")
  tax, index_map = get_taxonomy(taxonomy, FASHION_MNIST_CLASSES)
  names = [folder_name(n) for n in (*tax.fine_names, *tax.coarse_names)]
  if len(set(names)) != len(names):
    raise ValueError(f"Taxonomy {taxonomy!r} has class names that coincide as folder names: {names}.")
  arrays = fashion_mnist.read_arrays(data_dir)
  limits = {"train": per_class, "test": per_class if test_per_class is None else test_per_class}
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.")
  counts = {}
  try:
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folder is private; the export is an ordinary folder
    for split, (images, labels) in arrays.items():
      fine = index_map[labels]
      counts[split] = 0
      for k, fine_name in enumerate(tax.fine_names):
        members = np.flatnonzero(fine == k)
        if limits[split] > 0:
          members = members[:limits[split]]
        coarse_name = tax.coarse_names[tax.fine_to_coarse[k]]
        folder = os.path.join(tmp, split, folder_name(coarse_name), folder_name(fine_name))
        os.makedirs(folder)
        for i in members:
          Image.fromarray(images[i, :, :, 0]).save(os.path.join(folder, f"{i}.png"))
        counts[split] += len(members)
    os.rename(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return counts


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(prog="python -m coarse2fine.data.datasets.folder_export",
                                   description="Writes a dataset as an image folder (docs/datasets.md#image-folders).")
  parser.add_argument("--dataset", required=True, choices=["fashion_mnist"], help="the dataset to write")
  parser.add_argument("--out", required=True, help="the folder to create (it must not exist)")
  parser.add_argument("--per_class", type=int, default=0, help="images per fine class and split (0: all)")
  parser.add_argument("--test_per_class", type=int, default=None, help="test images per fine class (default: "
                      "--per_class)")
  parser.add_argument("--taxonomy", default="fmnist3", help="the coarse folders: a built-in taxonomy or a file")
  parser.add_argument("--data_dir", default=None, help="the Fashion-MNIST IDX files' folder (default: searched)")
  args = parser.parse_args(argv)
  counts = export_fashion_mnist(args.out, args.per_class, args.test_per_class, args.taxonomy, args.data_dir)
  print(f"Wrote {counts['train']} train and {counts['test']} test images to {args.out}. Train on them with:\n"
        f"  python -m coarse2fine.main --config=configs/scgm_fashion_mnist.py --config.data.name=image_folder "
        f"--config.data.dir={args.out} --config.data.taxonomy=folders --config.data.image_size=0")


if __name__ == "__main__":
  main(sys.argv[1:])
