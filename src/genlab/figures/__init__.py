"""Pictures (and text) from a trained model, without Lightning: figures of the VAE, the GAN, the language model."""
