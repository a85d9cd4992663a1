"""Model families: one file each (vae.py, dcgan.py, lm.py), holding its nn.Modules and its LightningModule."""
