"""One package per command (train, tune, embed, sample, finetune, denoise, gan, evaluate, reproduce), each on udlcli.core."""
