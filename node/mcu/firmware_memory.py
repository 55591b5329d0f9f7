"""RAM ledger of the official RockNet firmware (``--profile firmware``), in bytes.

Every entry is a statically allocated buffer of the firmware (github.com/Data-Science-in-
Mechanical-Engineering/RockNet, HEAD b5d2abc), with its source:

* ``linear_classifier.c`` l. 14-19: ``weight`` and ``d_weight`` (float32, C x F_max), ``bias``
  and ``d_bias`` (C floats: every device holds one), ``features`` (F_max floats);
  l. 34-37: Adam ``m``, ``v`` as uint8 (``USE_QADAM 1``) for weights and bias; l. 40-49: four
  block-scale arrays (``n / 256 + 1`` floats each) and two 256-float block buffers;
  ``out_softmax`` (C floats).
* ``rocket_config_distributed.c.jinja``: ``biases[MAX_FEATURES_PER_DEVICE]`` (float32), and
  the two tables of pointers to the training and evaluation series
  (``training_timeseries[NUM_TRAINING_TIMESERIES]``, ``evaluation_timeseries[...]``, 4 B a
  series; the series themselves are ``const``, in flash).
* ``conv.h``: four float32 series buffers of L (``timeseries_1``, ``timeseries3``,
  ``conv_timeseries_1``, ``conv_timeseries3``).
* Messages (``GenerateCodeDistributedRocket.py`` ``generate_rocket_mixer_config``): the
  series message L + 4 B and each device's partial logits 4C + 2 B, kept as received.
* Mixer: the round's G packets plus one being sent, each a PHY payload of
  ``4 + 2 ceil(G/8) + 100`` B (:mod:`protocol.air.radio.firmware_round`).

F_max is ``MAX_FEATURES_PER_DEVICE`` (device 0's features: the first devices hold the extra
kernels). Not counted (not in the public code as a number): the stack, Mixer's own state
beyond its packets, the OS and radio driver. With these, OSULeaf and ElectricDevices land
within 3 % of the RAM table in ``GenerateCodeDistributedRocket.py`` (``offsets``, l. 421-430);
see docs/fidelity.md and tests/unit/test_fidelity_ram.py.
"""

from __future__ import annotations

from protocol.config.ram_ledger import FLOAT32_BYTES, Ledger
from protocol.air.radio.firmware_round import firmware_round
from protocol.config.model import ModelConfig, fit_dilations, kernels_of_units, unit_offsets, unit_ranges

#: 8-bit Adam's block size (``QADAM_BUFFER_SIZE``, linear_classifier.c l. 40).
QADAM_BLOCK = 256


def firmware_ledger(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int,
                    n_train: int, n_eval: int) -> Ledger:
    """The firmware's RAM of its largest device (device 0) for N devices.

    Args:
        cfg: model configuration (features; the firmware always runs 8-bit Adam).
        n_devices: N.
        series_length: L.
        n_classes: C.
        n_train: training series compiled into the firmware (one 4-B pointer each).
        n_eval: evaluation series compiled into the firmware (one 4-B pointer each).
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if n_train < 0 or n_eval < 0:
        raise ValueError(f"n_train and n_eval must be >= 0, got {n_train}, {n_eval}")
    dilations, fpd = fit_dilations(series_length, cfg)
    u0, u1 = unit_ranges(n_devices, len(dilations))[0]  # by kernel up to 84, by unit past
    k0, k1 = kernels_of_units(u0, u1, len(dilations))
    offsets = unit_offsets(fpd)
    f_max = int(offsets[u1] - offsets[u0])
    c = n_classes
    n_w = c * f_max
    e: dict[str, int] = {}
    e["weights W"] = n_w * FLOAT32_BYTES
    e["gradient d_weight"] = n_w * FLOAT32_BYTES
    e["Adam m, v (uint8)"] = 2 * n_w
    e["bias, d_bias, softmax"] = 3 * c * FLOAT32_BYTES
    e["Adam m, v of bias (uint8)"] = 2 * c
    e["Adam block scales"] = 2 * (n_w // QADAM_BLOCK + 1 + c // QADAM_BLOCK + 1) * FLOAT32_BYTES
    e["Adam block buffers"] = 2 * QADAM_BLOCK * FLOAT32_BYTES
    e["features"] = f_max * FLOAT32_BYTES
    e["kernel biases"] = f_max * FLOAT32_BYTES
    e["convolution buffers (4 L float)"] = 4 * series_length * FLOAT32_BYTES
    e["series pointer tables"] = 4 * (n_train + n_eval)
    rnd = firmware_round(n_devices, series_length, n_classes)
    e["received messages"] = rnd.series_message_bytes + n_devices * rnd.logits_message_bytes
    e["Mixer packets"] = (rnd.generation_size + 1) * rnd.phy_payload_bytes
    return Ledger(device=0, n_devices=n_devices, n_kernels=k1 - k0, n_features=f_max, entries=e,
                  total_bytes=sum(e.values()))
