"""Where and in what precision the network trains (config ``dl.device``, ``dl.precision``).

- ``fp32``: float32 throughout.
- ``bf16``: bfloat16 autocast (convolutions and linear layers in bf16; weights, optimiser
  state and loss in float32).
- ``auto``: bf16 where the hardware computes it natively (a CUDA GPU with bf16; a CPU with
  AVX512-BF16 or AMX-BF16 on x86, BF16 on Arm), fp32 otherwise. On a CPU without native
  bf16, oneDNN emulates it and is slower than fp32.

The weights are always stored and scored in float32, so a network trained in bf16 predicts
on any CPU, and its DL_E and DL_F do not depend on the scoring machine.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16")
# torch.cpu.get_capabilities() names: x86 (AVX512-BF16, AMX-BF16) and Arm (BF16, SVE-BF16).
NATIVE_BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes bf16 in hardware (not emulated)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    capabilities = torch.cpu.get_capabilities()
    return any(bool(capabilities.get(name)) for name in NATIVE_BF16_CPU_FEATURES)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for this device; ``fp32`` and ``bf16`` as asked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


@dataclass(frozen=True)
class Compute:
    """A device and a resolved precision (``fp32`` or ``bf16``)."""

    device: torch.device
    precision: str

    @classmethod
    def of(cls, device: str = "auto", precision: str = "auto") -> Compute:
        dev = pick_device(device)
        return cls(dev, resolve_precision(precision, dev))

    # channels_last in both precisions: oneDNN's fastest layout for bf16 convolutions, and
    # 12% faster than contiguous in fp32 too (CBAM-ResNet-18, batch 16, 2 threads).
    memory_format = torch.channels_last

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Wait for queued device work, so that a timing covers it."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
