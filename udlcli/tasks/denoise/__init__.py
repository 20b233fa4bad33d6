"""`udl denoise`: a denoising AE trained and resumed with udl train's engine, scored in PSNR/SSIM, and cleaning image files."""

from udlcli.tasks.denoise.clean import clean_images
from udlcli.tasks.denoise.run import (
    denoise_spec,
    evaluate_run,
    resume_and_evaluate,
    train_and_evaluate,
)

__all__ = [
    "clean_images",
    "denoise_spec",
    "evaluate_run",
    "resume_and_evaluate",
    "train_and_evaluate",
]
