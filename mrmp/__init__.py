"""The serving core: what a stored model needs in order to be served, in plain PyTorch.

`priors` (a(r)), `bandstop`, `gcn`, `derive` (rate -> pruned network), `compact`, `runtime`
(execution backends), `store` (the model store) and `skeleton` (layouts and the descriptor).
No web framework, no training: the service imports this package only.
"""
