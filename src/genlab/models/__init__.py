"""LightningModules, one per file (vae.py, dcgan.py, lm.py, seq2seq.py, classifier.py): training, logging, optimizers.

The networks they train are in genlab.nets, their pictures in genlab.figures."""
