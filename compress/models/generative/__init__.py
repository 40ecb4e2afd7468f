"""Image generation: ESRGAN-slim super-resolution and CycleGAN."""
