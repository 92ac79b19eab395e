"""The fields every coarse2fine config has, with a comment on each.

Config files in `configs/` start from `base_config()` and set what their method and
dataset need; nothing is read from anywhere else. Command-line overrides
(`--config.train.batch_size=256`) can only set fields that exist here or in the file.
The sections of the methods (`config.scgm`, `config.falcon`, ...) are not written here: each
registered method declares its own (`Method.config_sections`, in its package's `config.py`),
and `base_config` collects them. Recipes shared by several config files live with their
method (`coarse2fine/methods/<family>/recipes.py`); the Fashion-MNIST CPU recipe is here.
"""

from __future__ import annotations

from typing import Optional

import ml_collections

from coarse2fine.methods import method_config_sections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.method = ""  # a name in coarse2fine.methods.METHODS
  config.method_modules = ()  # modules imported before config.method is looked up: methods defined outside the library
  config.seed = 0  # fixes initialisation, data order, augmentation and step randomness

  data = config.data = ml_collections.ConfigDict()
  data.name = ""  # a name in coarse2fine.data.DATASETS
  data.taxonomy = ""  # built-in name (e.g. "fmnist3") or a .json/.csv file; "" = the dataset's default
  # False: a taxonomy that leaves out fine classes of the data (their examples unused) is an error, not a warning
  data.allow_dropped_fine_classes = True
  data.dir = ""  # where the dataset's files are; "" = the dataset's own search path
  data.variant = ""  # dataset variant, e.g. "si" for CIFAR-SI
  data.image_size = 224  # cars196, sop: images are resized to image_size x image_size (MaskCon's Resize((224, 224)))
  # (image_folder too; there 0 keeps the images' own size)
  # cub2011, cars196: "official" (the dataset's train/test split) or "unseen_classes" (train = every image of the
  # first half of the classes, test = every image of the second half: SoftTriple's zero-shot retrieval protocol)
  data.split_protocol = "official"
  data.split_file = ""  # sop: JSON {"train": [paths], "test": [paths]} (or a folder of MaskCon's *_path.json)
  data.path = ""  # data.name="arrays": the .npz file; "h5ad", "pbmc": the .h5ad file
  data.list = ""  # data.name="image_folder": a .csv/.tsv of path, coarse[, fine][, split] (instead of data.dir)
  # data.name="h5ad": the obs column of the coarse labels; "tfds": a second ClassLabel feature as the coarse labels
  # ("" = data.taxonomy maps the label's names)
  data.coarse_key = ""
  data.fine_key = ""  # data.name="h5ad": the obs column of the fine labels (optional; missing = unknown)
  data.use_rep = "X"  # data.name="h5ad": the inputs: "X", "raw.X", a layer or an obsm entry (e.g. "X_pca")
  # data.name="tfds" (coarse2fine/data/datasets/tfds_generic.py): any tfds builder with a ClassLabel
  data.tfds_name = ""  # the builder, e.g. "cifar100" or "imagenet_resized/64x64"
  data.tfds_splits = ("train", "test")  # its (train, test) splits; test "" = hold out data.test_fraction of train
  data.label_key = "label"  # the ClassLabel feature of the fine labels
  data.input_key = "image"  # the inputs: an Image feature, or a Tensor of [F] numbers
  data.val_fraction = 0.0  # share of train held out (stratified by coarse class) as a validation split
  # data.name="arrays" without x_test ("tfds" without a test split, "image_folder" without test images): held-out share
  data.test_fraction = 0.2
  data.split_seed = 1000  # seed of the validation / held-out splits and of train_examples (not of training)
  data.train_examples = 0  # > 0: train on a fixed random subset of this many examples (after carving val)
  data.extra_taxonomies = ()  # more taxonomies over the same fine classes for parts of train (FALCON, 3.6)
  data.taxonomy_assignment = "halves"  # which part follows which taxonomy: "halves" or "parity" (i mod D)
  data.hide_fine_labels = False  # True: every split's fine labels become unknown (-1), e.g. sub-class discovery
  # Input mean/std: "dataset", "imagenet", or "auto" (imagenet for model.init_from torchvision/timm/moco_v3,
  # a checkpoint: run's own, else dataset). A run records the resolved value; a resume must match it.
  data.normalization = "auto"
  data.num_workers = 0  # grain worker processes for the host stage of augmentation (0 = in the main process)
  data.num_threads = 1  # threads per process building batches (decoding and cropping release the GIL)
  data.device_prefetch = 2  # global batches placed on the devices ahead of the step (0 = none)
  data.views = ("crop_flip",)  # augmentation kind of each view a training example yields
  augment = data.augment = ml_collections.ConfigDict()
  augment.padding = 2  # crop_flip: zero padding before the random crop, pixels
  augment.flip = True  # random horizontal flips
  augment.min_scale = 0.2  # weak/strong: smallest random-resized-crop area fraction
  augment.jitter = 0.4  # strong: brightness/contrast/saturation jitter strength
  augment.hue = 0.1  # strong: hue jitter
  augment.jitter_p = 0.8  # strong: probability of colour jitter
  augment.grayscale_p = 0.2  # strong: probability of grayscale
  augment.blur_p = 0.5  # strong: probability of Gaussian blur
  augment.solarize_p = 0.0  # strong: probability of solarizing (x >= solarize_threshold -> 1 - x)
  augment.solarize_threshold = 0.5  # strong: in [0, 1] image units
  augment.perspective_on = "device"  # RandomPerspective in the jitted step ("device") or in the pipeline ("host")
  augment.autoaugment_on = "device"  # AutoAugment likewise
  augment.feature_mask_p = 0.2  # vectors, mask_noise: probability of zeroing each standardised feature
  augment.feature_noise = 0.5  # vectors, mask_noise: std of the Gaussian noise added to each standardised feature
  synthetic = data.synthetic = ml_collections.ConfigDict()
  synthetic.kind = "vectors"  # "vectors" or "images"
  synthetic.num_coarse = 3
  synthetic.fine_per_coarse = 3
  synthetic.children = ()  # fine classes of each coarse class, e.g. (1, 2, 4): uneven; replaces the two above
  synthetic.num_train = 2048
  synthetic.num_test = 512
  synthetic.dim = 16  # latent (and, for vectors, input) dimension
  synthetic.image_shape = (8, 8, 1)  # kind="images": [H, W, C]
  synthetic.coarse_scale = 4.0  # spread of coarse centres
  synthetic.fine_scale = 2.0  # spread of fine centres around their coarse centre
  synthetic.noise = 0.5  # per-example noise
  synthetic.seed = 0
  records = data.records = ml_collections.ConfigDict()  # data.name="records" (coarse2fine/data/datasets/records.py)
  records.window = 5  # w, visits per window (paper: 5); also T of the generated records
  records.horizon = 1  # a window of visits t..t+w-1 takes the label of visit t+w-1+horizon (1 = next session)
  records.test_fraction = 0.5  # share of patients held out as test (paper: 50%); of examples without patient ids
  records_synthetic = records.synthetic = ml_collections.ConfigDict()  # data.variant="synthetic"
  records_synthetic.num_coarse = 2  # C (paper: binary, an event occurs or not)
  records_synthetic.fine_per_coarse = 2  # sub-types under each coarse class (paper: s = 2 event subtypes)
  records_synthetic.num_patients = 64  # patients, split between train and test
  records_synthetic.windows_per_patient = 16  # windows (examples) of each patient
  records_synthetic.static_dim = 28  # S (paper: 28 static features)
  records_synthetic.series_features = 40  # F (paper: 40 temporal features)
  records_synthetic.noise = 1.0  # per-value noise; class signals are N(0, 1) (see records.generate_arrays)
  records_synthetic.seed = 0  # fixes the generated records (the split uses data.split_seed)

  model = config.model = ml_collections.ConfigDict()
  model.encoder = "convnet"  # a name in coarse2fine.models.ENCODERS
  model.encoder_args = ml_collections.ConfigDict()  # keyword arguments of the encoder
  model.embedder = "none"  # "none", "fc" or "mlp" (D-D-e)
  model.embedding_dim = 128  # e
  # Init of the heads' linear layers (embedder, classifier): "flax" (lecun_normal weights, zero bias), "torch"
  # (torch.nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and bias) or "auto": "torch" for the smallcnn,
  # whose reference is PyTorch code, else "flax".
  model.linear_init = "auto"
  model.dtype = "float32"  # computation dtype ("bfloat16" on accelerators); params stay float32
  # Pretrained encoder (docs/pretrained.md): torchvision:/timm:/moco_v3:<file>, checkpoint:<workdir>, npz:<file>;
  # "" = random weights. Read once, when a run starts; a resumed run restores its checkpoint instead.
  model.init_from = ""
  model.init_fresh = ()  # encoder submodules (Flax names, e.g. "stem_conv") init_from leaves randomly initialised

  optimizer = config.optimizer = ml_collections.ConfigDict()
  optimizer.name = "sgd"  # "sgd" or "adamw"
  optimizer.lr = 0.1  # peak learning rate
  optimizer.momentum = 0.9  # sgd
  optimizer.nesterov = False  # sgd
  optimizer.weight_decay = 5e-4  # sgd: coupled L2; adamw: decoupled
  optimizer.b1 = 0.9  # adamw
  optimizer.b2 = 0.999  # adamw
  optimizer.schedule = "cosine"  # "constant", "cosine", "cosine_restarts" or "multistep"
  optimizer.warmup_epochs = 0.0  # linear warm-up from 0
  optimizer.restart_epochs = 20.0  # cosine_restarts: period
  optimizer.min_lr = 0.0  # cosine, cosine_restarts: the lowest learning rate (eta_min)
  optimizer.decay_epochs = (30, 60, 90)  # multistep: epochs at which lr is multiplied by decay_factor
  optimizer.decay_factor = 0.1

  train = config.train = ml_collections.ConfigDict()
  train.num_epochs = 1
  train.batch_size = 128  # global batch, split over all devices
  train.log_every_steps = 50
  train.stop_after_steps = 0  # > 0: stop (as if preempted) after this many steps; resume from the checkpoint

  evaluation = config.eval = ml_collections.ConfigDict()
  evaluation.batch_size = 512  # global evaluation batch
  evaluation.every_epochs = 0  # evaluate during training every this many epochs (0 = only at the end)
  evaluation.split = "test"  # split the evaluation reads: "test", or "val" (needs data.val_fraction > 0) to select
  evaluation.protocols = ("classification",)  # any of classification, fewshot, retrieval, kmeans
  evaluation.features = "embedding"  # embeddings to evaluate: "embedding" (embedder output) or "features"
  evaluation.fewshot_settings = ("5way", "allway", "intra")  # n-way ("5way"), all fine classes, one coarse class
  evaluation.fewshot_shots = (1,)  # support examples per class
  evaluation.fewshot_episodes = 1000
  evaluation.fewshot_queries = 15  # query examples per class
  evaluation.fewshot_augmented = 5  # augmented copies of each support example (0: the example itself)
  evaluation.fewshot_augment = "crop_flip"  # augmentation kind of the support copies
  evaluation.retrieval_ks = (1, 2, 5, 10)  # Recall@K
  evaluation.kmeans_clusters = 0  # k-means discovery: clusters overall (0 = the true number of fine classes)

  # How a method's count field set to "estimate" (falcon.num_fine, scgm.num_subclasses, scan.num_clusters) is
  # estimated before the first step: K_c per coarse class, their total used (docs/methods/falcon.md#estimated-k).
  estimate = config.estimate_k = ml_collections.ConfigDict()
  estimate.features = "inputs"  # "inputs" (raw, flattened), "checkpoint:<workdir>" (another run's features) or a .npy
  estimate.criterion = "silhouette"  # or "eigengap", "gap", "bic", "ded": chosen in benchmarks/estimate_k.py
  estimate.k_max = 10  # most fine classes per coarse class
  estimate.max_examples = 1000  # per coarse class, drawn at random (the criteria cost grows with n)
  estimate.dims = 32  # principal directions kept of the L2-normalised features
  estimate.repeats = 1  # > 1: the median K_c over this many draws of max_examples (steadier)

  checkpoint = config.checkpoint = ml_collections.ConfigDict()
  checkpoint.every_steps = 1000
  checkpoint.keep = 2  # newest checkpoints kept

  logging = config.logging = ml_collections.ConfigDict()
  logging.progress = True  # progress line on stderr
  # After results.json: the run's figures (coarse2fine.figures.plot_run) as TensorBoard images, when matplotlib
  # is installed; a few seconds on small data, mostly the t-SNE of the embedding map (at most 300 points).
  logging.figures = True

  # Each registered method family's own section (scgm, falcon, maskcon, ...), commented where it is declared.
  for name, section in method_config_sections().items():
    if name in config:
      raise ValueError(f"A method declares config section {name!r}, which is a section of every config; rename it.")
    config[name] = section
  return config


def load_config(path: str, overrides: Optional[dict] = None) -> ml_collections.ConfigDict:
  """The config of file `path[:arg]` (e.g. "configs/scgm_fashion_mnist.py" or ".../maskcon_sop.py:split1").

  `overrides` sets fields by dotted name ({"train.num_epochs": 2}); a name the config lacks
  fails, as `--config.a.b=...` does on the command line. For notebooks and scripts; the
  command line reads configs through ml_collections' config flags.
  """
  import importlib.util
  import os

  filename, _, arg = path.partition(":")
  if not os.path.isfile(filename):
    raise FileNotFoundError(f"No config file {filename!r}; configs live in the repository's configs/ folder.")
  spec = importlib.util.spec_from_file_location("coarse2fine_config", filename)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  for dotted, value in (overrides or {}).items():
    *groups, key = dotted.split(".")
    node = config
    for part in groups:
      node = node[part]
    if key not in node:
      raise KeyError(f"Config {path!r} has no field {dotted!r}.")
    node[key] = value
  return config


def fashion_mnist_cpu(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The shared recipe of the CPU-sized Fashion-MNIST configs (a few minutes on 2 cores).

  Fashion-MNIST with the `fmnist3` taxonomy, the small space-to-depth ConvNet, SGD with
  momentum and a cosine schedule over 6 epochs of batch 128. Config files apply it and
  then set their method's own fields.
  """
  config.data.name = "fashion_mnist"
  config.data.taxonomy = "fmnist3"  # Tops / Footwear / Other; or "fmnist_seasons"
  config.data.views = ("crop_flip",)  # pad-2 random crop + horizontal flip
  config.data.augment.padding = 2
  config.model.encoder = "convnet"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.05
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.train.num_epochs = 6
  config.train.batch_size = 128
  config.eval.batch_size = 1000
  config.eval.protocols = ("classification", "fewshot", "retrieval", "kmeans")
  return config
