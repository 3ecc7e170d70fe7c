"""Coarse-grained (CG) transferability benchmark (after Shinkle et al., arXiv:2406.12112).

Pipeline (reduced LJ units throughout: sigma, epsilon, tau, atomic mass m = 1):

1. `reference`: a fine-grained (FG) molecular liquid the suite simulates itself (flexible LJ
   trimers) at several state points (temperature, density) -> `AllAtomData` frames; or
   `data.load_all_atom` imports a user's all-atom npz/extxyz.
2. `mapping`: FG frames -> CG frames (one bead per molecule at its centre of mass, bead force =
   sum of its atoms' forces). New mappings implement the `Mapping` protocol there.
3. `fit`: force matching at the training state: HIP-NN-TS + fixed repulsive prior (`prior`:
   onset at the reference's smallest bead distance, stored beside the model), and the classical
   baseline (pair spline, multiscale-coarse-graining least squares).
4. `transfer`: CG Langevin MD of each model at every state point, compared with the mapped
   reference (RDF distance, pressure, diffusion ratio, force-matching error); `checks` gives the
   reference's own split-half RDF noise floor and fails a model whose beads come closer than the
   reference ever does.
"""
