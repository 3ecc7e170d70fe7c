"""Units: reduced Lennard-Jones units inside, argon in metal units (eV, Å, ps, amu, K) outside.

Every simulation runs in reduced LJ units (sigma = epsilon = mass = k_B = 1). A `UnitSystem`
converts between reduced values and the physical ("metal") units used in configs, datasets and
reports. Physical constants come from ASE so that cross-checks against ASE agree to round-off.

Defaults follow the paper's argon data: epsilon = 0.238 kcal/mol = 0.010321 eV, sigma = 3.4 Å,
mass = 39.948 amu, cutoff 2.5 sigma.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from ase import units as ase_units

ARGON_EPSILON_EV = 0.010321
ARGON_SIGMA_A = 3.4
ARGON_MASS_AMU = 39.948

Quantity = Literal[
    "length", "energy", "force", "time", "temperature", "pressure", "stress", "mass", "frequency",
    "velocity",
]

#: Unit labels written into every output next to physical values.
METAL_LABELS: dict[str, str] = {
    "length": "Å",
    "energy": "eV",
    "force": "eV/Å",
    "time": "ps",
    "temperature": "K",
    "pressure": "bar",
    "stress": "eV/Å^3",
    "mass": "amu",
    "frequency": "THz",
    "velocity": "Å/ps",
}
REDUCED_LABELS: dict[str, str] = {
    "length": "sigma",
    "energy": "epsilon",
    "force": "epsilon/sigma",
    "time": "tau",
    "temperature": "epsilon/k_B",
    "pressure": "epsilon/sigma^3",
    "stress": "epsilon/sigma^3",
    "mass": "m",
    "frequency": "1/tau",
    "velocity": "sigma/tau",
}


@dataclass(frozen=True)
class UnitSystem:
    """Scales of the reduced unit system, in metal units.

    Attributes:
        epsilon_ev: LJ well depth, eV.
        sigma_angstrom: LJ length, Å.
        mass_amu: particle mass, amu.
    """

    epsilon_ev: float = ARGON_EPSILON_EV
    sigma_angstrom: float = ARGON_SIGMA_A
    mass_amu: float = ARGON_MASS_AMU

    @property
    def tau_ps(self) -> float:
        """Reduced time unit sigma*sqrt(m/epsilon) in ps (about 2.15 ps for argon)."""
        tau_ase = self.sigma_angstrom * math.sqrt(self.mass_amu / self.epsilon_ev)
        return tau_ase / (1000.0 * ase_units.fs)

    @property
    def temperature_k(self) -> float:
        """epsilon/k_B in K (about 119.8 K for argon)."""
        return self.epsilon_ev / ase_units.kB

    def scale(self, quantity: Quantity) -> float:
        """Size of one reduced unit of `quantity`, expressed in metal units."""
        e, s = self.epsilon_ev, self.sigma_angstrom
        scales = {
            "length": s,
            "energy": e,
            "force": e / s,
            "time": self.tau_ps,
            "temperature": self.temperature_k,
            "pressure": e / s**3 / ase_units.bar,
            "stress": e / s**3,
            "mass": self.mass_amu,
            "frequency": 1.0 / self.tau_ps,  # 1/ps = THz (ordinary frequency: divide by 2 pi for nu)
            "velocity": s / self.tau_ps,
        }
        return scales[quantity]

    def to_metal(self, value, quantity: Quantity):
        """Reduced -> metal units. Works on floats and arrays."""
        return value * self.scale(quantity)

    def to_reduced(self, value, quantity: Quantity):
        """Metal -> reduced units. Works on floats and arrays."""
        return value / self.scale(quantity)

    def angular_to_thz(self, omega_reduced):
        """Angular frequency in 1/tau -> ordinary frequency nu in THz (nu = omega / 2 pi)."""
        return omega_reduced / (2.0 * math.pi * self.tau_ps)

    def as_dict(self) -> dict:
        """Scales echoed into results, with derived units."""
        d = asdict(self)
        d["tau_ps"] = self.tau_ps
        d["epsilon_over_kB_K"] = self.temperature_k
        return d


ARGON = UnitSystem()


def convert_input(value: float, quantity: Quantity, system: str, units: UnitSystem = ARGON) -> float:
    """A config value given in `system` ('metal' or 'lj') -> reduced units."""
    if system == "lj":
        return float(value)
    if quantity == "time":
        # configs give time steps and durations in fs (metal timestep is ps in LAMMPS; fs reads better)
        return float(value) / 1000.0 / units.tau_ps
    return float(units.to_reduced(value, quantity))
