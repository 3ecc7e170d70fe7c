"""phonopy + ASE reference for LJ force constants, shared by the phonon tests (an independent code
path: phonopy's finite displacements with ASE's LennardJones, never our Hessian)."""

import numpy as np

RC = 2.5


def phonopy_with_ase_lj(a0: float, smooth: bool = False, supercell: int = 4):
    """phonopy finite displacements (1e-3 sigma) with ASE's LennardJones (rc = 2.5; smooth: ASE's
    switch from ro = 0.8 rc, as lj/smooth), masses 1, in a supercell^3 conventional FCC supercell.
    Frequencies come out as sqrt(eigenvalue): angular, reduced units."""
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(symbols=["Ar"] * 4, cell=np.eye(3) * a0,
                        scaled_positions=[[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]], masses=[1.0] * 4)
    phn = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * supercell, primitive_matrix="F")
    phn.unit_conversion_factor = 1.0
    phn.generate_displacements(distance=1e-3)
    calc = LennardJones(sigma=1.0, epsilon=1.0, rc=RC, ro=0.8 * RC, smooth=smooth)
    forces = []
    for sc in phn.supercells_with_displacements:
        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = calc
        forces.append(atoms.get_forces())
    phn.forces = forces
    phn.produce_force_constants()
    return phn
