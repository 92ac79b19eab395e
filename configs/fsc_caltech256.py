r"""F-SC (or a comparison head) on Caltech-256's 257 categories, trained and scored on them.

See docs/methods/fsc.md#paper-datasets.

  python -m coarse2fine.main --config=configs/fsc_caltech256.py --workdir=workdirs/fsc_caltech256 \
      --config.data.path=/data/caltech256.npz --config.data.taxonomy=/data/caltech256_flat.csv

The argument is the head: fsc (default), softmax, centre or softtriple. tfds has no Caltech-256, so the data
come through the generic `arrays` loader (coarse2fine/data/datasets/arrays.py), from two files you build from
256_ObjectCategories (Griffin et al. 2007: 30,607 images, 256 object categories plus `257.clutter`):

* `data.taxonomy`: a .csv with one `fine,coarse` row per category folder, e.g. `001.ak47,all`: all 257
  (clutter included) under one coarse class, as F-SC trains on the categories themselves. The row order
  fixes the fine ids 0..256.
* `data.path`: an .npz (np.savez) with
    x            uint8 [N_train, 224, 224, 3]  training images, each resized whole to 224 x 224 (as our
                                               tfds loaders do), grayscale ones converted to RGB
    fine         int   [N_train]               category id 0..256 in the taxonomy file's order
    coarse       int   [N_train]               all 0 (arrays needs it even with `fine`)
    x_test, fine_test, coarse_test             the same for the test images
  The F-SC paper's train/test split is not in our sources; ours to suggest is the usual Caltech-256 one of
  60 random training images per category (seeded) and the rest for test. Give x_test explicitly: without it
  arrays holds out data.test_fraction stratified by coarse class, which under one coarse class is not
  stratified by category. All 30,607 images are about 4.6 GB of arrays; arrays.load computes the mean and
  std through float64 copies of the training images, 16 bytes per training pixel value at the peak (about
  37 GB for 60 per category), and each grain worker (data.num_workers, 8) holds its own copy of the training
  arrays; lower it if memory is short.

Until data.path is set, loading fails with "data.name='arrays' needs data.path"; then it asks for
data.taxonomy. Scores: top-1 over the 257 categories on x_test. Recipe and deviations (ImageNet initial
weights, our epochs and batch): `coarse2fine.methods.fsc.recipes.fsc_paper`. The paper's Caltech-256 numbers are
not in our sources.
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.fsc.recipes import fsc_paper


def get_config(arg: str = "fsc"):
  config = fsc_paper(base_config(), arg)
  config.data.name = "arrays"
  config.data.path = ""  # your .npz (see above)
  config.data.taxonomy = ""  # your .csv of the 257 categories (see above)
  return config
