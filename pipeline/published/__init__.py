"""The authors' published checkpoints (pytorch-CycleGAN-and-pix2pix, BicycleGAN, CUT) read into our
model folders: their key names (keys), their .pth files read safely (pth), the import (importer)."""
