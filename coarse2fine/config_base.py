"""The fields every coarse2fine config has, with a comment on each.

Config files in `configs/` start from `base_config()` and set what their method and
dataset need; nothing is read from anywhere else. Command-line overrides
(`--config.train.batch_size=256`) can only set fields that exist here or in the file.
"""

from __future__ import annotations

from typing import Optional

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.method = ""  # a name in coarse2fine.methods.METHODS
  config.seed = 0  # fixes initialisation, data order, augmentation and step randomness

  data = config.data = ml_collections.ConfigDict()
  data.name = ""  # a name in coarse2fine.data.DATASETS
  data.taxonomy = ""  # built-in name (e.g. "fmnist3") or a .json/.csv file; "" = the dataset's default
  data.dir = ""  # where the dataset's files are; "" = the dataset's own search path
  data.variant = ""  # dataset variant, e.g. "si" for CIFAR-SI
  data.image_size = 224  # cars196, sop: images are resized to image_size x image_size (MaskCon's Resize((224, 224)))
  data.split_file = ""  # sop: JSON {"train": [paths], "test": [paths]} (or a folder of MaskCon's *_path.json)
  data.path = ""  # data.name="arrays": the .npz file
  data.val_fraction = 0.0  # share of train held out (stratified by coarse class) as a validation split
  data.test_fraction = 0.2  # data.name="arrays" without x_test: held-out share
  data.split_seed = 1000  # seed of the validation / held-out splits and of train_examples (not of training)
  data.train_examples = 0  # > 0: train on a fixed random subset of this many examples (after carving val)
  data.extra_taxonomies = ()  # more taxonomies over the same fine classes for parts of train (FALCON, 3.6)
  data.taxonomy_assignment = "halves"  # which part follows which taxonomy: "halves" or "parity" (i mod D)
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
  synthetic = data.synthetic = ml_collections.ConfigDict()
  synthetic.kind = "vectors"  # "vectors" or "images"
  synthetic.num_coarse = 3
  synthetic.fine_per_coarse = 3
  synthetic.num_train = 2048
  synthetic.num_test = 512
  synthetic.dim = 16  # latent (and, for vectors, input) dimension
  synthetic.image_shape = (8, 8, 1)  # kind="images": [H, W, C]
  synthetic.coarse_scale = 4.0  # spread of coarse centres
  synthetic.fine_scale = 2.0  # spread of fine centres around their coarse centre
  synthetic.noise = 0.5  # per-example noise
  synthetic.seed = 0
  records = data.records = ml_collections.ConfigDict()  # data.name="records" (coarse2fine/data/records.py)
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
  model.dtype = "float32"  # computation dtype ("bfloat16" on accelerators); params stay float32

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

  scgm = config.scgm = ml_collections.ConfigDict()  # methods scgm_g and scgm_a (docs/methods/scgm.md#defaults)
  scgm.num_subclasses = 100  # r, latent sub-classes (the paper's grid: 100..500 in steps of 50)
  scgm.sigma2 = 0.1  # sigma^2, sub-class temperature ("tau" in the reference code)
  scgm.sigmabar2 = 1.0  # sigmabar^2, super-class temperature
  scgm.gamma = 0.5  # weight of the mixture terms ("alpha" in the reference code)
  scgm.lam = 25.0  # lambda, inverse entropic regularisation of the E-step transport problem
  scgm.estep_every_epochs = 5  # E-step cadence (before epochs 1, 6, 11, ... as in the reference code)
  scgm.warmup_epochs = 0  # > 0: train on L_ce alone this many epochs, then the first E-step (reference: 0)
  scgm.estep_train_mode = True  # E-step forward with BatchNorm in train mode (reference code) or eval mode
  scgm.warm_start = True  # start each E-step's Sinkhorn from the previous column potential
  scgm.use_pi = False  # paper: super-class-conditional mixing weights pi in the sub-class posterior
  scgm.detach_means = True  # scgm_a: reference code (mu_z never trained, L4 constant); False = paper

  falcon = config.falcon = ml_collections.ConfigDict()  # method falcon (docs/methods/falcon.md#defaults)
  falcon.num_fine = 0  # K, fine classes to discover (0 = the dataset's true count)
  falcon.lambda_coarse = 0.5  # lambda1
  falcon.lambda_consistency = 0.5  # lambda2, on L_conf + L_cons
  falcon.lambda_entropy = 2.0  # lambda3
  falcon.temperature = 0.9  # T of the confidence target
  falcon.ema_decay = 0.99  # teacher decay after the warm-up min(d, (1 + n) / (10 + n))
  falcon.beta = 0.1  # relation solver's balance penalty; 0 after soft_label_epochs
  falcon.solve_every = 20  # steps between relation solves, counted within each epoch
  falcon.soft_label_epochs = 30  # tau anneals 1 -> 0 over these epochs; then beta = 0
  falcon.warmup_steps = 0  # first steps on lambda2 L_cons + lambda3 L_reg only (not official; see falcon.py)
  falcon.solver = "exact"  # relation solver backend: "exact", "milp" (HiGHS) or "gurobi"
  falcon.solver_time_limit = 30.0  # seconds, for the milp and gurobi backends
  falcon.neighbours = 20  # within-coarse neighbours mined per example
  falcon.neighbours_used = 5  # of them drawn (without replacement) each time an example is loaded
  falcon.neighbour_features = "inputs"  # "inputs" (L2-normalised raw inputs) or a .npy [N_train, D] file

  scan = config.scan = ml_collections.ConfigDict()  # methods scan and scan_c (FALCON's baselines)
  scan.num_clusters = 0  # K (0 = the dataset's true number of fine classes)
  scan.entropy_weight = 5.0  # w_ent (SCAN's paper)
  scan.neighbours = 20  # mined per example (over all data for scan, within the coarse class for scan_c)
  scan.neighbour_features = "inputs"  # as falcon.neighbour_features

  contrast = config.contrast = ml_collections.ConfigDict()  # momentum contrast of scgm_a and ancor
  contrast.queue_size = 65536  # keys kept per super-class
  contrast.momentum = 0.999  # key encoder: xi <- m xi + (1 - m) theta
  contrast.temperature = 0.2  # InfoNCE temperature

  # method maskcon and its family (docs/methods/maskcon.md#defaults)
  maskcon = config.maskcon = ml_collections.ConfigDict()
  maskcon.mode = "maskcon"  # maskcon, selfcon, grafit, supcon, coins, supce or supfine (fine labels)
  maskcon.w = 0.5  # weight of the soft (maskcon, grafit) or classifier (coins) term against SelfCon
  maskcon.t1 = 0.1  # temperature of the contrastive logits
  maskcon.t2 = 0.05  # temperature of the key-to-queue similarities in MaskCon's target
  maskcon.queue_size = 8192  # keys in the FIFO queue
  maskcon.momentum = 0.99  # key encoder: xi <- m xi + (1 - m) theta (parameters only)
  maskcon.embedding_dim = 256  # e, projector output (code's 256; the paper says 128)
  maskcon.projector_hidden = 0  # projector hidden width (0 = the encoder's feature width D)
  maskcon.fill_queue = True  # fill the queue with key-encoder outputs before the first step

  # method fsc: F-SC and its comparison heads (docs/methods/fsc.md#defaults)
  fsc = config.fsc = ml_collections.ConfigDict()
  fsc.head = "fsc"  # "fsc" (fixed sub-centres), "softmax", "centre" (centre loss) or "softtriple"
  fsc.label = "coarse"  # labels the head is trained on: "coarse" or "fine"
  fsc.num_sub = 4  # s, sub-centres per class (fsc); K, centres per class (softtriple)
  fsc.sigma2 = 1e-3  # sigma^2, spread of the sub-centres around their class centre
  fsc.beta = 1e-4  # weight of the compactness term L_scc
  fsc.assign = "logit"  # sub-centre L_scc pulls to: "logit" (argmax w.x in the true class) or "euclidean"
  fsc.centre_init = "kaiming_uniform"  # class centres U(-b, b): "kaiming_uniform" b = sqrt(6/d), "linear_default" 1/sqrt(d)
  fsc.centre_lambda = 0.003  # centre: weight of the centre loss (Wen et al.)
  fsc.centre_alpha = 0.5  # centre: rate of the moving centres (Wen et al.)
  fsc.softtriple_lambda = 20.0  # softtriple: logit scale (SoftTriple paper)
  fsc.softtriple_gamma = 0.1  # softtriple: temperature of the within-class softmax
  fsc.softtriple_delta = 0.01  # softtriple: margin
  fsc.softtriple_tau = 0.2  # softtriple: weight of the centre-merging regulariser

  checkpoint = config.checkpoint = ml_collections.ConfigDict()
  checkpoint.every_steps = 1000
  checkpoint.keep = 2  # newest checkpoints kept

  logging = config.logging = ml_collections.ConfigDict()
  logging.progress = True  # progress line on stderr
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


def falcon_imagenet(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """FALCON's recipe on full-size ImageNet images (BREEDS, tieredImageNet).

  The settings are listed in docs/methods/falcon.md#paper-settings.

  ResNet-50 (ImageNet stem, bfloat16) whose online view is the strong augmentation and whose
  teacher and neighbours see the centre crop as loaded; SGD lr 0.1, momentum 0.9, no weight
  decay, cosine with warm restarts every 30 epochs down to 1e-3; lambda1 = lambda2 = 0.5,
  T 0.9, EMA 0.99, 20 neighbours mined (5 used), a solve every 20 steps, soft labels over 30
  epochs. Config files then set the dataset, epochs, batch, lambda3 and beta.
  """
  config.method = "falcon"
  config.data.views = ("strong", "none")
  config.data.augment.min_scale = 0.2
  config.data.num_workers = 16
  config.model.encoder = "resnet50"
  config.model.encoder_args.stem = "imagenet"
  config.model.embedder = "none"
  config.model.dtype = "bfloat16"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.1
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.schedule = "cosine_restarts"
  config.optimizer.restart_epochs = 30
  config.optimizer.min_lr = 1e-3
  config.train.log_every_steps = 50
  falcon = config.falcon
  falcon.lambda_coarse, falcon.lambda_consistency = 0.5, 0.5
  falcon.temperature = 0.9
  falcon.ema_decay = 0.99
  falcon.solve_every = 20
  falcon.soft_label_epochs = 30
  falcon.neighbours, falcon.neighbours_used = 20, 5
  config.eval.batch_size = 1024
  config.eval.protocols = ("classification", "clusters")
  config.checkpoint.every_steps = 1000
  return config


def maskcon_paper(config: ml_collections.ConfigDict, arg: str, best_w: dict, datasets_stem: str,
                  t2: float = 0.05, views=("autoaugment", "weak")) -> ml_collections.ConfigDict:
  """MaskCon's recipe for its paper's benchmarks; `arg` names the family member.

  The settings are listed in docs/methods/maskcon.md#paper-settings.

  ResNet-18 (CIFAR stem at 32 px, ImageNet stem at 224 px), projector 512-512-ReLU-256, queue
  8192, m = 0.99, T1 = 0.1, SGD lr 0.02, momentum 0.9, weight decay 5e-4, batch 128, 200
  epochs of per-step cosine after 5 warm-up epochs, seed 1228; query = strong view, key =
  weak view; Recall@{1, 2, 5, 10, 50, 100} on the test split from the backbone features.
  `best_w[mode]` is the paper's best w per member on that dataset (maskcon, grafit, coins);
  `t2` its best T2; `views` the (query, key) augmentation kinds of coarse2fine.data.augment:
  ("autoaugment", "weak") for CIFAR and ImageNet32 (crop with area .2-1, flip and
  AutoAugment's CIFAR-10 policy; crop and flip), ("strong_perspective", "weak_perspective")
  for Cars196 and ("perspective", "weak_perspective") for SOP, as in the official code.

  Deviations the user should know: the official code starts from ImageNet-supervised torchvision
  weights (docs/methods/maskcon.md#departures-from-the-paper-and-the-official-code); this project
  has no ImageNet weights, so the backbone starts from random weights. The augmentations are JAX
  re-implementations of torchvision's that run on the device (AutoAugment's ops checked against the
  Pillow ops torchvision applies to PIL images; the perspective warp and the Cars colour/blur ops
  against torchvision's definitions), so they match in distribution, not bit for bit; the Cars blur
  uses our `strong` preset's kernel (about 10% of the side, sigma .1-2).
  """
  from coarse2fine.methods.maskcon.method import MODES
  if arg not in MODES:
    raise ValueError(f"MaskCon configs take a mode from {MODES}, got {arg!r}.")
  config.method = "maskcon"
  config.seed = 1228
  config.data.views = tuple(views)  # (query, key)
  config.data.augment.min_scale = 0.2  # both views crop .2-1 of the area
  config.data.num_workers = 8
  config.model.encoder = "resnet18"
  config.model.encoder_args.stem = datasets_stem
  config.model.embedder = "none"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.02
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 5
  config.train.num_epochs = 200
  config.train.batch_size = 128
  maskcon = config.maskcon
  maskcon.mode = arg
  maskcon.w = best_w.get(arg, 0.5)
  maskcon.t1 = 0.1
  maskcon.t2 = t2
  maskcon.queue_size = 8192
  maskcon.momentum = 0.99
  maskcon.embedding_dim = 256
  config.eval.features = "features"
  config.eval.protocols = ("retrieval",)
  config.eval.retrieval_ks = (1, 2, 5, 10, 50, 100)
  # every 10 epochs and the final model (docs/evaluation.md#differences-from-maskcons-code)
  config.eval.every_epochs = 10
  config.eval.batch_size = 500
  return config
