"""Independent reference codes driven the same way by tests and benchmarks (test-only dependencies).

Nothing in the main workflows imports this package: it exists so that a test and a benchmark
ask LAMMPS or ASE the same question in the same way.
"""
