"""Which engine function samples each kind of run; plain names, so importing this does not import torch."""

# KIND -> "module:function". A sampler takes run, root, seed, data_dir, device, command, plus the options that apply to it.
SAMPLERS = {
    "ae": "udlcli.tasks.sample.ae:sample_ae",
    "gan": "udlcli.tasks.sample.gan:sample_gan",
    "vae": "udlcli.tasks.sample.vae:sample_vae",
}


def sampler(kind: str):
    """The sampling function of KIND, imported on first use."""
    from importlib import import_module

    from udlcli.errors import SpecError

    if kind not in SAMPLERS:
        raise SpecError(
            f"udl sample {kind}: unknown or not yet available kind; choose one of: {', '.join(SAMPLERS)}"
        )
    module, func = SAMPLERS[kind].split(":")
    return getattr(import_module(module), func)
