"""Pretrained backbones (``train.model.backbone``) and the embeddings they produce."""
