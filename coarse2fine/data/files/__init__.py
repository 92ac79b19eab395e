"""Stored images that stay files: readers of encoded images and their lazy decoding (`LazyImages`)."""
