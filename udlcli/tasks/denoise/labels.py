"""The names udl denoise gives its noise types in tables and figures."""

KIND_LABELS = {
    "none": "none (clean)",
    "gaussian": "gaussian",
    "saltpepper": "salt & pepper",
    "both": "both",
}
