"""Class-conditional latent diffusion generator for whole-body bone scans."""
