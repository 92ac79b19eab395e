"""Augmentation ops: the host stage (crop boxes, decode, flip, perspective, AutoAugment) and the device stage.

`presets` assembles each view kind a config names (`data.views`) from the two stages:
`host` cuts and flips on the host, `device` and `device_autoaugment` colour, blur, warp and
normalise inside the jitted step.
"""
