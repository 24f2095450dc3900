"""The serving core: what a stored model needs in order to be served, in plain PyTorch.

`priors` (a(r)), `bandstop`, `gcn`, `rates` (modes and rate keys), `derive` (rate -> pruned
network), `compact`, `runtime` (execution backends), `manifest` and `store` (the model store),
`validation` (validation errors in words) and `skeleton` (layouts, the descriptor, missing
detections).
No web framework, no training: the service imports this package only.
"""
