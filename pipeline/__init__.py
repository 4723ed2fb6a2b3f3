"""i2i: image-to-image translation (pix2pix, CycleGAN, BicycleGAN) as a reproducible pipeline."""
