r"""SCGM on BREEDS with the paper's hyper-parameters (Ni et al., ICLR 2022, Table 1).

The settings are listed in docs/methods/scgm.md#paper-settings.

  python -m coarse2fine.main --config=configs/scgm_breeds.py --workdir=workdirs/scgm_living17
  python -m coarse2fine.main --config=configs/scgm_breeds.py:entity30 --workdir=workdirs/scgm_entity30 \
      --config.data.dir=/data/breeds
  python -m coarse2fine.main --config=configs/scgm_breeds.py:living17,a --workdir=...   # SCGM-A

`get_config("<dataset>[,a]")`: dataset one of living17 (default), nonliving26, entity13,
entity30; ",a" selects SCGM-A (default SCGM-G). `data.dir` holds the BREEDS hierarchy files
(class_hierarchy.txt, dataset_class_info.json, node_names.txt) and optionally ImageNet's
train/ and val/ folders; without them images come from tfds `imagenet2012`
(coarse2fine/data/datasets/breeds.py). ResNet-50 at 224 px, batch 256, SGD lr 0.03 with momentum 0.9
and weight decay 1e-4, 200 epochs of cosine with warm restarts every 20 epochs, E-step every
5 epochs, r = 100 (the paper's grid: 100 to 500 in steps of 50; Living17's best is 100),
gamma 0.5, sigma^2 0.1, lambda 25. Evaluation: few-shot on the ImageNet-val images of the
BREEDS classes (1, 5, 10, 20 shots), with the embedder kept (reference code).
"""

from coarse2fine.config_base import base_config

DATASETS = ("living17", "nonliving26", "entity13", "entity30")


def get_config(arg: str = "living17"):
  dataset, _, variant = arg.partition(",")
  if dataset not in DATASETS or variant not in ("", "g", "a"):
    raise ValueError(f"scgm_breeds.py takes '<dataset>[,a]' with dataset in {DATASETS}; got {arg!r}.")
  config = base_config()
  config.method = "scgm_a" if variant == "a" else "scgm_g"
  config.seed = 0
  config.data.name = "breeds"
  config.data.variant = dataset
  config.data.views = ("strong", "strong") if variant == "a" else ("strong",)  # RRC .2-1, jitter, grey, blur, flip
  config.data.augment.min_scale = 0.2
  config.data.num_workers = 16
  config.model.encoder = "resnet50"
  config.model.encoder_args.stem = "imagenet"
  config.model.embedder = "mlp"  # D-D-128 (reference code default; the paper's App. C.1 says fc)
  config.model.embedding_dim = 128
  config.model.dtype = "bfloat16"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.03
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine_restarts"
  config.optimizer.restart_epochs = 20
  config.train.num_epochs = 200
  config.train.batch_size = 256
  config.train.log_every_steps = 100
  config.scgm.num_subclasses = 100
  config.scgm.sigma2 = 0.1
  config.scgm.gamma = 0.5
  config.scgm.lam = 25.0
  config.scgm.estep_every_epochs = 5
  config.contrast.queue_size = 65536  # SCGM-A: keys per super-class
  config.contrast.momentum = 0.999
  config.contrast.temperature = 0.2
  config.eval.batch_size = 1024
  config.eval.protocols = ("classification", "fewshot", "clusters")
  config.eval.fewshot_settings = ("5way", "allway", "intra")
  config.eval.fewshot_shots = (1, 5, 10, 20)
  config.eval.fewshot_augment = "crop_flip"  # reference: Resize256 + RandomCrop224 + flip of the support copies
  config.checkpoint.every_steps = 2000
  return config
