"""MoCo v3: self-supervised pretraining of the encoder (Chen, Xie & He, ICCV 2021)."""
