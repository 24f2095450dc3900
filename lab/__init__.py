"""The paper's lab: experiment protocols, reproduction, ablation, release, plots and the
`mrmp` command line. Uses training and the serving core."""
