"""udl evaluate's shipped feature networks (<name>.safetensors, listed in manifest.json); built by `python -m udlcli.featurenets.build`."""
