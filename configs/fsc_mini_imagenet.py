r"""F-SC (or a comparison head) on Mini-ImageNet's 100 classes, trained and scored on them.

See docs/methods/fsc.md#paper-datasets.

  python -m coarse2fine.main --config=configs/fsc_mini_imagenet.py --workdir=workdirs/fsc_mini_imagenet \
      --config.data.path=/data/mini_imagenet.npz --config.data.taxonomy=/data/mini_imagenet_flat.csv

The argument is the head: fsc (default), softmax, centre or softtriple. tfds has no Mini-ImageNet, so the
data come through the generic `arrays` loader (coarse2fine/data/datasets/arrays.py), from two files you build:

* `data.taxonomy`: a .csv with one `fine,coarse` row per class, e.g. `n01532829,all`: the 100 class names
  (WordNet ids) under one coarse class, as F-SC trains on the classes themselves. The row order fixes the
  fine ids 0..99.
* `data.path`: an .npz (np.savez) with
    x            uint8 [N_train, H, W, 3]  training images
    fine         int   [N_train]           class id 0..99 in the taxonomy file's order
    coarse       int   [N_train]           all 0 (arrays needs it even with `fine`)
    x_test, fine_test, coarse_test         the same for the test images
  Mini-ImageNet is 100 ImageNet classes of 600 images each, at 84 x 84 (Vinyals et al.; the usual class
  lists are Ravi & Larochelle's train/val/test CSVs, pooled here into one 100-way problem). The F-SC
  paper's train/test split of the 60,000 images is not in our sources; ours to suggest is 500 training and
  100 test images per class. Give x_test explicitly: without it arrays holds out data.test_fraction
  stratified by coarse class, which under one coarse class is not stratified by class.
  H = W = 84 keeps the native images (1.3 GB of arrays; training crops are then 84 px, not the paper's
  224). Resizing to 224 when building the file follows the recipe's 224 x 224 crops, but costs memory:
  about 9 GB of arrays, and arrays.load computes the mean and std through float64 copies of the training
  images, 16 bytes per training pixel value at the peak (about 17 GB at 84 px, 120 GB at 224 px for 50,000
  training images). Each grain worker (data.num_workers, 8) holds its own copy of the training arrays;
  lower it if memory is short.

Until data.path is set, loading fails with "data.name='arrays' needs data.path"; then it asks for
data.taxonomy. Scores: top-1 over the 100 classes on x_test. Recipe and deviations (ImageNet initial weights,
our epochs and batch): `coarse2fine.methods.fsc.recipes.fsc_paper`. The paper reports F-SC 1.07 points of top-1
above SoftTriple here (its table's numbers are not in our sources).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.fsc.recipes import fsc_paper


def get_config(arg: str = "fsc"):
  config = fsc_paper(base_config(), arg)
  config.data.name = "arrays"
  config.data.path = ""  # your .npz (see above)
  config.data.taxonomy = ""  # your .csv of the 100 classes (see above)
  return config
