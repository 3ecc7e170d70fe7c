"""A complete `kind: ase` model: any ASE calculator, here built by a factory function.

The spec names `my_ase_model:make_calculator` with its kwargs; the factory returns an ASE
`Calculator` working in eV and Å (ASE's units). mlffbench converts to its reduced units, calls the
calculator from inside its compiled loops, and uses the calculator's stress for pressure, NPT and
the lattice constant. A real model looks the same, e.g.

    def make_calculator(model_path):
        from mace.calculators import MACECalculator
        return MACECalculator(model_paths=model_path, device="cpu", default_dtype="float64")
"""

from ase.calculators.lj import LennardJones


def make_calculator(epsilon_eV: float = 0.010321, sigma_A: float = 3.4, rc_A: float = 8.5):
    """Argon Lennard-Jones, energy shifted to zero at rc (ASE's smooth=False)."""
    return LennardJones(epsilon=epsilon_eV, sigma=sigma_A, rc=rc_A, smooth=False)
